/**
 * The clone plan against what real clones sent: from each recorded v2 clone's own answers
 * (handshake, heads, changesetdata), the planned manifestdata and filesdata requests must be the
 * ones Mercurial's client sent next — same arguments, and with the same redirect map and
 * encodings, the same request bytes.
 */
import { describe, expect, it } from "vitest";
import { bytes, cborMap, decodeOne, encode, mapGet, type CborMap, type CborValue } from "../../src/protocol/cbor.ts";
import { SequenceError } from "../../src/protocol/errors.ts";
import { fromHex, toHex } from "../../src/protocol/hex.ts";
import {
  ChangesetReader,
  DEFAULT_FILESDATA_BATCH,
  DEFAULT_MANIFESTDATA_BATCH,
  NULL_NODE,
  changesetdataArgs,
  clonePlan,
  headsFromResponse,
  manifestNodes,
  manifestOfRevision,
  recommendedBatchSizes,
  type ReceivedChangeset,
} from "../../src/protocol/clone.ts";
import { HTTP_V2_API } from "../../src/protocol/capabilities.ts";
import { encodeRequestBody, parseRequestBody, redirectRequest } from "../../src/protocol/requests.ts";
import { collectResponses } from "../../src/protocol/responses.ts";
import { exchanges, type Exchange } from "../support/fixtures.ts";

const CLONES = ["clone-v2-plain", "clone-v2-redirect-cold", "clone-v2-zlib", "clone-v2-zstd"];

function byPath(all: Exchange[], suffix: string): Exchange[] {
  return all.filter((e) => String(e.meta.path).endsWith(suffix));
}

function objectsOf(body: Uint8Array, requestId = 1): CborValue[] {
  const response = collectResponses(body).get(requestId);
  if (!response || response.status !== "ok") throw new Error(`no ok response for request ${requestId}`);
  return response.objects;
}

const loaded = new Map<string, ReturnType<typeof load>>();

/** What the recorded clone received before its cacheable requests, read as the warmer reads it (once per scenario). */
function received(scenario: string): ReturnType<typeof load> {
  let result = loaded.get(scenario);
  if (!result) loaded.set(scenario, (result = load(scenario)));
  return result;
}

async function load(scenario: string) {
  const all = await exchanges(scenario);
  const handshake = decodeOne(all[0]!.response) as CborMap;
  const descriptor = mapGet(mapGet(handshake, "apis") as CborMap, HTTP_V2_API) as CborMap;
  const discovery = byPath(all, "/ro/multirequest")[0]!;
  // The multirequest carries heads (request 1) and known (request 3).
  const heads = headsFromResponse(objectsOf(discovery.response, 1));
  const changesetdata = byPath(all, "/ro/changesetdata")[0]!;
  const reader = new ChangesetReader();
  reader.push(objectsOf(changesetdata.response));
  return { all, descriptor, heads, changesetdata, changesets: reader.finish(), totalItems: reader.totalItems };
}

describe.each(CLONES)("the clone plan matches the recorded clone %s", (scenario) => {
  it("sends the changesetdata request the client sent", async () => {
    const { heads, changesetdata } = await received(scenario);
    const [sent] = parseRequestBody(changesetdata.request!).commands;
    expect(toHex(encode(changesetdataArgs(heads)))).toBe(toHex(encode(sent!.args)));
  });

  it("plans exactly the manifestdata and filesdata requests the client sent, in order", async () => {
    const { all, descriptor, changesets, totalItems } = await received(scenario);
    expect(changesets).toHaveLength(totalItems!);
    const plan = clonePlan(changesets, recommendedBatchSizes(descriptor));
    const recorded = all.filter((e) => /\/ro\/(manifestdata|filesdata)$/.test(String(e.meta.path)));
    expect(plan.map((p) => p.command)).toEqual(recorded.map((e) => String(e.meta.path).split("/").at(-1)));
    for (const [i, request] of plan.entries()) {
      const parsed = parseRequestBody(recorded[i]!.request!);
      const [sent] = parsed.commands;
      expect(toHex(encode(request.args))).toBe(toHex(encode(sent!.args)));
      // Built with the client's redirect map and encodings, the whole body is the client's.
      const redirect = redirectRequest(sent!);
      const rebuilt = encodeRequestBody(
        [{ name: request.command, args: request.args, ...(redirect ? { redirect: textLists(redirect) } : {}) }],
        parsed.contentEncodings,
      );
      expect(toHex(rebuilt)).toBe(toHex(recorded[i]!.request!));
    }
  });
});

function textLists(redirect: { targets: Uint8Array[]; hashes: Uint8Array[] }) {
  const decoder = new TextDecoder();
  return { targets: redirect.targets.map((t) => decoder.decode(t)), hashes: redirect.hashes.map((h) => decoder.decode(h)) };
}

// --- batch boundaries and edge cases, on made-up histories ---------------------------------------

const node = (n: number) => fromHex(n.toString(16).padStart(40, "0"));
const cset = (n: number, manifest: number): ReceivedChangeset => ({ node: node(1000 + n), manifest: manifest === 0 ? NULL_NODE : node(manifest) });
const nodesOf = (args: CborMap, key: "nodes" | "revisions"): string[] => {
  const value = mapGet(args, key) as CborValue[];
  const list = key === "nodes" ? value : (mapGet(value[0] as CborMap, "nodes") as CborValue[]);
  return (list as Uint8Array[]).map(toHex);
};

describe("clone batches", () => {
  // Manifests: 1, 2, 2 (shared), 0 (no files: null), 3, 1 (back to an earlier tree), 4, 5, 6.
  const history = [cset(0, 1), cset(1, 2), cset(2, 2), cset(3, 0), cset(4, 3), cset(5, 1), cset(6, 4), cset(7, 5), cset(8, 6)];

  it("fetches each manifest once, in changeset order, never the null manifest", () => {
    expect(manifestNodes(history).map(toHex)).toEqual([1, 2, 3, 4, 5, 6].map((n) => toHex(node(n))));
  });

  it("cuts manifestdata and filesdata at the descriptor's batch sizes, manifests first", () => {
    const plan = clonePlan(history, { manifestdata: 4, filesdata: 4 });
    expect(plan.map((p) => `${p.command}#${p.batch}:${p.items}`)).toEqual([
      "manifestdata#0:4",
      "manifestdata#1:2",
      "filesdata#0:4",
      "filesdata#1:4",
      "filesdata#2:1",
    ]);
    expect(nodesOf(plan[1]!.args, "nodes")).toEqual([5, 6].map((n) => toHex(node(n))));
    expect(nodesOf(plan[4]!.args, "revisions")).toEqual([toHex(node(1008))]);
  });

  it("plans nothing for an empty repository", () => {
    expect(clonePlan([], { manifestdata: 10, filesdata: 10 })).toEqual([]);
    expect(changesetdataArgs([NULL_NODE]).size).toBe(2);
  });

  it("falls back to the client's defaults when the descriptor names no batch size", () => {
    expect(recommendedBatchSizes(new Map())).toEqual({ manifestdata: DEFAULT_MANIFESTDATA_BATCH, filesdata: DEFAULT_FILESDATA_BATCH });
  });

  it("reads changesets streamed in pieces and skips metadata-only entries", () => {
    const revision = (manifest: number) => bytes(`${toHex(node(manifest))}\nuser\n0 0\nfile\n\nmessage`);
    const entry = (n: number, following: boolean): CborMap =>
      cborMap(following ? { node: node(1000 + n), fieldsfollowing: [[bytes("revision"), 70]] } : { node: node(1000 + n) });
    const reader = new ChangesetReader();
    reader.push([cborMap({ totalitems: 3 }), entry(0, true)]);
    reader.push([revision(7), entry(1, false), entry(2, true)]);
    expect(() => reader.finish()).toThrow(SequenceError);
    reader.push([revision(8)]);
    expect(reader.finish().map((c) => [toHex(c.node), toHex(c.manifest)])).toEqual([
      [toHex(node(1000)), toHex(node(7))],
      [toHex(node(1002)), toHex(node(8))],
    ]);
  });

  it("refuses a revision that does not start with a manifest node", () => {
    expect(() => manifestOfRevision(bytes("not a changeset"))).toThrow(SequenceError);
  });
});
