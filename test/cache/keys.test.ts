import { describe, expect, it } from "vitest";
import { cacheability, cacheKey, keyMaterial, objectName, type CacheableCommand } from "../../src/cache/keys.ts";
import { bytes, cborMap, type CborMap, type CborValue } from "../../src/protocol/cbor.ts";
import { normalizeArgs, CACHEABLE_COMMANDS } from "../../src/protocol/commands.ts";
import { encodeRequestBody, parseRequestBody } from "../../src/protocol/requests.ts";
import { exchanges } from "../support/fixtures.ts";

const scope = { origin: "http://origin.test/", cacheVersion: "1" };
const node = (n: number) => new Uint8Array(20).fill(n);

function request(command: string, args: Record<string, CborValue>, extra: { redirect?: boolean; encodings?: string[]; requestId?: number } = {}) {
  const body = encodeRequestBody(
    [
      {
        name: command,
        args: cborMap(args),
        ...(extra.redirect ? { redirect: { targets: ["hgedge"], hashes: ["sha256", "sha1"] } } : {}),
        ...(extra.requestId ? { requestId: extra.requestId } : {}),
      },
    ],
    extra.encodings,
  );
  return cacheability(parseRequestBody(body), "/repo", "ro", command);
}

async function keyOf(command: string, args: Record<string, CborValue>, extra = {}): Promise<string> {
  const verdict = request(command, args, extra);
  if (!verdict.cacheable) throw new Error(verdict.reason);
  return cacheKey(scope, verdict.request);
}

describe("cache keys", () => {
  const base = { tree: new Uint8Array(0), nodes: [node(1), node(2)], fields: new Set([bytes("parents"), bytes("revision")]), haveparents: true };

  it("are the same for requests Mercurial treats as the same command", async () => {
    const key = await keyOf("manifestdata", base);
    // fields as a list, in another order, with a duplicate: normalised to the same set.
    expect(await keyOf("manifestdata", { ...base, fields: [bytes("revision"), bytes("parents"), bytes("parents")] })).toBe(key);
    // The redirect map, the content encodings and the request id are not part of the key.
    expect(await keyOf("manifestdata", base, { redirect: true, encodings: ["zlib", "identity"], requestId: 7 })).toBe(key);
  });

  it("fill in declared defaults, so an absent argument equals its default", async () => {
    const { haveparents: _, ...withoutHaveParents } = base;
    expect(await keyOf("manifestdata", withoutHaveParents)).toBe(await keyOf("manifestdata", { ...base, haveparents: false }));
    expect(await keyOf("filesdata", { revisions: [] })).toBe(await keyOf("filesdata", { revisions: [], fields: new Set(), pathfilter: null, haveparents: false }));
  });

  it("differ whenever the answer may differ", async () => {
    const key = await keyOf("manifestdata", base);
    const variants = [
      { ...base, nodes: [node(2), node(1)] }, // list order matters
      { ...base, haveparents: false },
      { ...base, fields: new Set([bytes("parents")]) },
      { ...base, tree: bytes("dir/") },
    ];
    for (const args of variants) expect(await keyOf("manifestdata", args)).not.toBe(key);
    const verdict = request("manifestdata", base);
    if (!verdict.cacheable) throw new Error(verdict.reason);
    const other = (change: Partial<typeof scope>, repo = "/repo") => cacheKey({ ...scope, ...change }, { ...verdict.request, repo });
    expect(await other({ cacheVersion: "2" })).not.toBe(key);
    expect(await other({ origin: "http://elsewhere.test/" })).not.toBe(key);
    expect(await other({}, "/other")).not.toBe(key);
  });

  it("key the recorded client requests, and the same request recorded twice alike", async () => {
    const [, first, , second] = await exchanges("cmd-manifestdata-redirect");
    const keys = [first!, second!].map((e) => {
      const verdict = cacheability(parseRequestBody(e.request!), "/", "ro", "manifestdata");
      if (!verdict.cacheable) throw new Error(verdict.reason);
      return cacheKey(scope, verdict.request);
    });
    expect(await keys[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(await keys[0]).toBe(await keys[1]);
  });

  it("hash a material that names every input", () => {
    const verdict = request("filedata", { nodes: [node(1)], path: bytes("a") });
    if (!verdict.cacheable) throw new Error(verdict.reason);
    const material = keyMaterial(scope, verdict.request) as CborMap;
    expect([...material.keys()].map((k) => new TextDecoder().decode(k as Uint8Array)).sort()).toEqual(
      ["api", "args", "cacheversion", "command", "keyformat", "localversion", "origin", "repo"].sort(),
    );
  });
});

describe("what may be cached", () => {
  it.each([
    ["a command Mercurial does not cache", () => request("heads", {}), /not cacheable/],
    ["an unknown argument", () => request("manifestdata", { tree: new Uint8Array(0), nodes: [], bogus: 1 }), /unsupported argument to command: bogus/],
    ["a missing required argument", () => request("manifestdata", { nodes: [] }), /missing required arguments: tree/],
  ])("refuses %s", (_name, make, reason) => {
    const verdict = make();
    expect(verdict.cacheable).toBe(false);
    if (!verdict.cacheable) expect(verdict.reason).toMatch(reason);
  });

  it("refuses rw/, multirequests and a URL that names another command", () => {
    const body = encodeRequestBody([{ name: "manifestdata", args: cborMap({ tree: new Uint8Array(0), nodes: [] }) }]);
    expect(cacheability(parseRequestBody(body), "/", "rw", "manifestdata").cacheable).toBe(false);
    expect(cacheability(parseRequestBody(body), "/", "ro", "filesdata").cacheable).toBe(false);
    const two = encodeRequestBody([
      { name: "manifestdata", args: cborMap({ tree: new Uint8Array(0), nodes: [] }) },
      { name: "manifestdata", args: cborMap({ tree: new Uint8Array(0), nodes: [node(1)] }) },
    ]);
    expect(cacheability(parseRequestBody(two), "/", "ro", "manifestdata").cacheable).toBe(false);
  });

  it("normalises like Mercurial's getargs", () => {
    const result = normalizeArgs(CACHEABLE_COMMANDS.filesdata!, cborMap({ revisions: [], fields: [bytes("a"), bytes("a")] }));
    expect(result.ok).toBe(true);
    if (result.ok) {
      expect([...(result.args.values() as Iterable<unknown>)]).toHaveLength(4);
    }
  });
});

describe("object names", () => {
  it("are <repo>/<command>/<key>, the root repository as .root", () => {
    expect(objectName("/team/project", "filesdata", "ab")).toBe("team/project/filesdata/ab");
    expect(objectName("/", "manifestdata", "cd")).toBe(".root/manifestdata/cd");
  });
});

export type { CacheableCommand };
