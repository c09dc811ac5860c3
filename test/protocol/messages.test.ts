/** Command requests and responses: reading them as Mercurial does, emitting what hgedge sends. */
import { describe, expect, it } from "vitest";
import { toHex } from "../../src/protocol/hex.ts";
import { bytes, cborMap, decodeAll, encode, mapGet, text, type CborMap } from "../../src/protocol/cbor.ts";
import { ProtocolError, SequenceError } from "../../src/protocol/errors.ts";
import { DEFAULT_MAX_FRAME_SIZE, parseFrames } from "../../src/protocol/frames.ts";
import { encodeRequestBody, parseRequestBody, redirectRequest } from "../../src/protocol/requests.ts";
import {
  ResponseReader,
  collectResponses,
  commandErrorMessage,
  encodeCommandError,
  encodeErrorResponseFrame,
  encodeOkResponse,
  encodeRedirectResponse,
  type ResponseEvent,
} from "../../src/protocol/responses.ts";
import { exchanges, fixtureBytes } from "../support/fixtures.ts";


describe("reading requests", () => {
  it("reads the stock client's manifestdata request", async () => {
    const body = await fixtureBytes("cmd-manifestdata/002-request.body");
    const parsed = parseRequestBody(body);
    expect(parsed.contentEncodings).toEqual(["identity"]);
    expect(parsed.commands).toHaveLength(1);
    const [command] = parsed.commands;
    expect(command?.name).toBe("manifestdata");
    expect(command?.requestId).toBe(1);
    expect(mapGet(command?.args as CborMap, "tree")).toEqual(new Uint8Array(0));
  });

  it("reads redirect targets a client accepts", async () => {
    const [, manifest] = await exchanges("redirect-targets-filtering");
    const parsed = parseRequestBody(manifest?.request as Uint8Array);
    const redirect = redirectRequest(parsed.commands[0]!);
    expect(redirect?.targets.map(text)).toEqual(["local", "tls-ok-sni"]);
    expect(redirect?.hashes.map(text)).toEqual(["sha256", "sha1"]);
  });

  it("reads a multirequest with interleaved continuation frames", async () => {
    const all = await exchanges("errors-debugwireproto-raw");
    const multi = all.find((e) => e.meta.target.endsWith("/multirequest"));
    const parsed = parseRequestBody(multi?.request as Uint8Array);
    expect(parsed.commands.map((c) => [c.requestId, c.name])).toEqual([
      [3, "listkeys"],
      [1, "listkeys"],
    ]);
  });

  it("round-trips what it builds, splitting big requests at 32 KiB with `more`", () => {
    const nodes = Array.from({ length: 2000 }, (_, i) => new Uint8Array(20).fill(i % 256));
    const body = encodeRequestBody(
      [{ name: "manifestdata", args: cborMap({ nodes, tree: new Uint8Array(0) }), redirect: { targets: ["hgedge"], hashes: ["sha256", "sha1"] } }],
      ["zlib", "identity"],
    );
    const frames = parseFrames(body);
    expect(frames.length).toBeGreaterThan(2);
    expect(frames.every((f) => f.payload.length <= DEFAULT_MAX_FRAME_SIZE)).toBe(true);
    const parsed = parseRequestBody(body);
    expect(parsed.contentEncodings).toEqual(["zlib", "identity"]);
    expect((mapGet(parsed.commands[0]!.args, "nodes") as Uint8Array[]).length).toBe(2000);
  });

  it.each([
    ["continuation without new", "0c000001000101" + "12", /without new flag/],
    ["even stream", "0c000001000201" + "11", /even numbered stream/],
    ["no stream-begin", "0c000001000100" + "11", /without beginning of stream/],
    ["unknown frame type", "0c0000010001" + "01f0", /expected command request frame; got 15/],
    ["encoded client frame", "0c000001000105" + "11", /must not be encoded/],
  ])("refuses %s as Mercurial's server does", (_name, header, message) => {
    const payload = encode(cborMap({ name: bytes("heads") }));
    const body = new Uint8Array([...(header.match(/../g) ?? []).map((h) => parseInt(h, 16)), ...payload]);
    expect(() => parseRequestBody(body)).toThrow(message);
  });

  it("refuses a request without a name, or that never ends", () => {
    const payload = encode(cborMap({ nom: bytes("heads") }));
    const noName = new Uint8Array([payload.length, 0, 0, 1, 0, 1, 1, 0x11, ...payload]);
    expect(() => parseRequestBody(noName)).toThrow(/missing "name"/);
    const body = encodeRequestBody([{ name: "heads" }]);
    body[7] = 0x15; // new + more: a continuation is announced but never comes
    expect(() => parseRequestBody(body)).toThrow(/incomplete/);
  });
});

describe("a request's item budget", () => {
  const limits = { maxDepth: 8, maxCollectionSize: 1 << 20, maxByteStringLength: 1 << 20, maxFrames: 64, maxRequestBytes: 1 << 20 };
  const nodes = (n: number) => cborMap({ nodes: Array.from({ length: n }, () => new Uint8Array(0)) });

  it("counts every item of every command and the settings together, and refuses the request past it", () => {
    // Settings {contentencodings: [identity]}: 4 items; each command {name, args: {nodes: [n]}}: 7 + n items.
    const two = encodeRequestBody([{ name: "heads", args: nodes(40) }, { name: "heads", args: nodes(40) }], ["identity"]);
    expect(parseRequestBody(two, { ...limits, maxItems: 4 + 2 * 47 }).commands).toHaveLength(2);
    expect(() => parseRequestBody(two, { ...limits, maxItems: 4 + 2 * 47 - 1 })).toThrow(/more than 97 CBOR items in one request/);
  });

  it("refuses a million empty byte strings in 1 MiB with the default limits", () => {
    const body = encodeRequestBody([{ name: "manifestdata", args: nodes(1_000_000) }], ["identity"]);
    expect(body.length).toBeLessThan(1_100_000);
    expect(() => parseRequestBody(body)).toThrow(/more than 131072 CBOR items in one request/);
  });
});

describe("reading responses", () => {
  it("reassembles every response of the recorded clones, in every encoding", async () => {
    for (const scenario of ["clone-v2-plain", "clone-v2-zlib", "clone-v2-zstd", "clone-v2-redirect"]) {
      for (const exchange of await exchanges(scenario)) {
        if (exchange.meta.content_type !== "application/mercurial-exp-framing-0006") continue;
        const results = collectResponses(exchange.response);
        for (const [, result] of results) {
          expect(result.ended, `${scenario}/${exchange.seq}`).toBe(true);
          expect(["ok", "redirect"]).toContain(result.status);
        }
      }
    }
  });

  it("emits the bytes after the status map exactly as a redirect target serves them", async () => {
    // hgedge served this body at the redirect URL and a stock 5.6.1 client accepted it; it must
    // equal what follows the status map in the origin's inline (cold) answer to the same request.
    const cold = await fixtureBytes("cmd-filesdata-redirect/002-response.body");
    const served = await fixtureBytes("cmd-filesdata-redirect/005-response.body");
    const reader = new ResponseReader({ emitBody: true, decodeObjects: false });
    const events = [...reader.push(cold)];
    reader.finish();
    const body = events.flatMap((e) => (e.type === "body" ? [...e.bytes] : []));
    expect(toHex(new Uint8Array(body))).toBe(toHex(served));
    expect(events.at(-1)).toEqual({ type: "end", requestId: 1, clean: true });
  });

  it("reports command errors and server errors", async () => {
    const [, badArgs] = await exchanges("cmd-changesetdata-noargs");
    const result = collectResponses(badArgs?.response as Uint8Array).get(1);
    expect(result?.status).toBe("error");
    expect(commandErrorMessage(result?.statusMap as CborMap)).toBe("missing required arguments: revisions");

    const [, lookup] = await exchanges("cmd-lookup-unknown");
    const unknown = collectResponses(lookup?.response as Uint8Array).get(1);
    expect(unknown?.errorResponse).toEqual({ errorType: "server", message: "unknown revision 'nosuchrevision'" });

    const renameBug = (await exchanges("clone-v2-rename-bug")).at(-1);
    const failure = collectResponses(renameBug?.response as Uint8Array).get(1);
    // Debian's 5.6.1 (C manifest) says which KeyError; a pure-Python origin sends an empty text.
    expect(failure?.errorResponse).toEqual({ errorType: "server", message: "'No such manifest entry.'" });
  });

  it("refuses frame types stock clients refuse, and data after a redirect", () => {
    const textOutput = new Uint8Array([0, 0, 0, 1, 0, 2, 1, 0x60]);
    expect(() => new ResponseReader().push(textOutput)).toThrow(/unhandled frame type/);
    const redirect = encodeRedirectResponse(1, { url: "http://x/", mediatype: "application/mercurial-cbor" });
    const reader = new ResponseReader();
    reader.push(redirect);
    expect(() => reader.push(encodeCommandError(1, "late", undefined, false))).toThrow(SequenceError);
  });

  it("says when a response ends without its eos frame", () => {
    const body = encodeOkResponse(1, encode([1, 2, 3]));
    const reader = new ResponseReader();
    reader.push(body.subarray(0, body.length - 8 - 4));
    expect(() => reader.finish()).toThrow(ProtocolError);
  });
});

describe("emitting responses", () => {
  it("builds the redirect frame of protocol.md §8.5: one stream-begin, eos, unencoded frame", () => {
    const url = "https://cdn.example.com/hg/47abb8efa5f01b8964d74917793ad2464db0fa2c";
    const body = encodeRedirectResponse(1, { url, mediatype: "application/mercurial-cbor" });
    expect(toHex(body.subarray(0, 8))).toBe("8a0000010002" + "0132");
    expect(body.length).toBe(8 + 0x8a);
    const [status] = decodeAll(body.subarray(8)) as CborMap[];
    expect(text(mapGet(status!, "status") as Uint8Array)).toBe("redirect");
    expect(text(mapGet(mapGet(status!, "location") as CborMap, "url") as Uint8Array)).toBe(url);
  });

  it("builds command errors and error-response frames Mercurial's way", () => {
    const error = encodeCommandError(1, "unknown node: %s", ["aa"]);
    expect(toHex(error.subarray(0, 8)).slice(6)).toBe("0100020132");
    expect(commandErrorMessage(collectResponses(error).get(1)!.statusMap!)).toBe("unknown node: aa");
    const failure = collectResponses(encodeErrorResponseFrame(1, "server", "boom")).get(1);
    expect(failure?.errorResponse).toEqual({ errorType: "server", message: "boom" });
  });

  it.each(["identity", "zlib"] as const)("emits %s responses in ≤ 32 KiB frames that read back intact", (encoding) => {
    const objects = [cborMap({ totalitems: 2 }), new Uint8Array(100_000).map((_, i) => i % 13), cborMap({ node: new Uint8Array(20) })];
    const body = encodeOkResponse(5, new Uint8Array(objects.flatMap((o) => [...encode(o)])), encoding);
    const frames = parseFrames(body);
    expect(frames.every((f) => f.payload.length <= DEFAULT_MAX_FRAME_SIZE)).toBe(true);
    expect(frames.at(-1)?.flags).toBe(2);
    expect((frames[0]?.streamFlags ?? 0) & 1).toBe(1);
    expect(frames.slice(1).every((f) => (f.streamFlags & 1) === 0)).toBe(true);
    const result = collectResponses(body).get(5);
    expect(result?.status).toBe("ok");
    expect(result?.objects).toEqual(objects);
  });

  it("streams a response through the emitter in bounded pieces", () => {
    const events: ResponseEvent[] = [];
    const reader = new ResponseReader({ emitBody: true, decodeObjects: false });
    const body = encodeOkResponse(1, new Uint8Array(200_000).fill(1), "zlib");
    for (let at = 0; at < body.length; at += 1000) events.push(...reader.push(body.subarray(at, at + 1000)));
    const total = events.reduce((n, e) => n + (e.type === "body" ? e.bytes.length : 0), 0);
    expect(total).toBe(200_000);
  });
});
