/**
 * Fuzzing inside workerd: the codec properties of test/support/fuzz-properties.ts (frame parser,
 * CBOR decoders, request and response readers) and two properties of the v2 request handler,
 * driven through the whole app (createApp) with a scripted origin and the local R2:
 *
 *  - mutated request bodies POSTed to `<repo>/api/exp-http-v2-0003/ro|rw/<command>`: the app
 *    always answers (no exception, no hang: every step races a deadline), never with a 500, and
 *    a request it passes through gets exactly the origin's bytes;
 *  - a recorded cacheable request answered by a mutated origin body: the client gets the
 *    origin's bytes, and an object is committed to R2 exactly when the answer was a complete
 *    success as a client reads it (otherwise the next identical request is a MISS again).
 *
 * Sizes: small by default (CI). VITE_HGEDGE_FUZZ_RUNS=<total> spreads that many cases over the
 * properties, VITE_HGEDGE_FUZZ_SEED=<n> changes the seed (workerd sees only VITE_-prefixed host
 * variables); the codec's long mode runs faster in Node: test/node/fuzz-codec.test.ts.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { afterAll, describe, expect, it, vi } from "vitest";
import type { Env } from "../../src/config.ts";
import { createApp } from "../../src/edge/app.ts";
import type { OriginFetch } from "../../src/origin/client.ts";
import { decodeAll, encode, type CborValue } from "../../src/protocol/cbor.ts";
import { fromHex } from "../../src/protocol/hex.ts";
import { ProtocolError } from "../../src/protocol/errors.ts";
import { parseRequestBody } from "../../src/protocol/requests.ts";
import { ResponseReader, collectResponses, type ResponseEvent } from "../../src/protocol/responses.ts";
import { StreamEncodingError } from "../../src/protocol/errors.ts";
import { createStreamDecoder } from "../../src/protocol/streams.ts";
import { FrameParser } from "../../src/protocol/frames.ts";
import { exchanges, scenarios, type Exchange } from "../support/fixtures.ts";
import {
  FIXED_DEFECTS,
  FuzzInput,
  MAX_INPUT,
  applyMutations,
  buildCorpus,
  chunksOf,
  codecProperties,
  encodeValues,
  escaped,
  fuzzSettings,
  outcomes,
  planRuns,
  runProperty,
  seedFor,
  splitArb,
  type Corpus,
  type FuzzProperty,
  type Mutation,
} from "../support/fuzz-properties.ts";

const EDGE = "http://edge.test";
const ORIGIN = "http://origin.test";
const API = "/api/exp-http-v2-0003/";
const FRAMING = "application/mercurial-exp-framing-0006";
/** Every step of an app case (answer, body, background work) must end within this. */
const DEADLINE_MS = 10_000;

const settings = fuzzSettings();
const recorded = (await Promise.all((await scenarios()).map((s) => exchanges(s)))).flat();
const corpus = buildCorpus(recorded);

// -------------------------------------------------------------------------------------------
// The app with a scripted origin

interface V2Exchange {
  label: string;
  permission: string;
  command: string;
  request: Uint8Array;
  response: Uint8Array;
  contentType: string;
}

/** Recorded v2 command exchanges (request and framed answer), e.g. ro/heads, ro/manifestdata. */
const v2Exchanges: V2Exchange[] = recorded.flatMap((x: Exchange) => {
  const path = String(x.meta.path ?? "");
  const at = path.indexOf(API);
  if (x.meta.method !== "POST" || at < 0 || !x.request || !(x.meta.content_type ?? "").startsWith(FRAMING)) return [];
  const [permission, command] = path.slice(at + API.length).split("/");
  if (!permission || !command) return [];
  return [{ label: `${x.scenario}/${x.seq}`, permission, command, request: x.request, response: x.response, contentType: x.meta.content_type as string }];
});
const CACHEABLE = new Set(["manifestdata", "filesdata", "filedata"]);
const cacheableExchanges = v2Exchanges.filter((x) => x.permission === "ro" && CACHEABLE.has(x.command));
const COMMANDS = [...new Set(v2Exchanges.map((x) => x.command)), "pushkey", "nosuchcommand"];

let caseNumber = 0;

interface OriginScript {
  body: Uint8Array;
  contentType: string;
  /** Chunk boundaries the origin writes its body in. */
  chunks: Uint8Array[];
}

/** The app with a fresh repository path and cache generation; an origin that answers `script`. */
function harness(script: OriginScript) {
  const n = caseNumber++;
  const repo = `/fuzz-${settings.seed}-${n}`;
  let calls = 0;
  const originFetch: OriginFetch = async (_url, init) => {
    calls += 1;
    if (init.body) await new Response(init.body).arrayBuffer();
    let next = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (next < script.chunks.length) controller.enqueue(script.chunks[next++]!.slice());
        else controller.close();
      },
    });
    return new Response(body, { status: 200, headers: { "content-type": script.contentType } });
  };
  const app = createApp({ originFetch });
  const vars = {
    ORIGIN_URL: ORIGIN,
    OBJECTS: env.OBJECTS,
    ACCESS: "public",
    MIN_REDIRECT_BYTES: "0",
    CACHE_VERSION: `fuzz-${settings.seed}-${n}-${Date.now()}`,
  } as Env;
  const ctx = createExecutionContext();
  return {
    repo,
    calls: () => calls,
    /** Sends a request; the answer, its whole body, and every waitUntil promise, each within the deadline. */
    async send(request: Request): Promise<{ response: Response; body: Uint8Array }> {
      const response = await within("the app's answer", Promise.resolve().then(() => app.fetch(request, vars, ctx)));
      const body = new Uint8Array(await within("reading the answer's body", response.arrayBuffer()));
      // waitOnExecutionContext rejects once all settled: with the one reason, or an AggregateError of several.
      const failed = await within("the background work (waitUntil)", waitOnExecutionContext(ctx).then(() => undefined, (error: unknown) => ({ error })));
      if (failed) throw escaped("a waitUntil promise", failed.error instanceof AggregateError ? failed.error.errors[0] : failed.error);
      return { response, body };
    },
    /** Objects under this case's repository path. */
    async stored(): Promise<string[]> {
      const listed = await env.OBJECTS.list({ prefix: `${repo.slice(1)}/` });
      return listed.objects.map((o) => o.key);
    },
  };
}

async function within<T>(what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${DEADLINE_MS} ms: a hang`)), DEADLINE_MS);
  });
  try {
    return await Promise.race([promise, deadline]);
  } catch (error) {
    if (error instanceof Error && error.message.includes("a hang")) throw error;
    throw escaped(what, error);
  } finally {
    clearTimeout(timer);
  }
}

function v2Request(repo: string, permission: string, command: string, body: Uint8Array, framed: boolean): Request {
  return new Request(`${EDGE}${repo}${API}${permission}/${command}`, {
    method: "POST",
    headers: framed ? { accept: FRAMING, "content-type": FRAMING } : { accept: "*/*", "content-type": "application/octet-stream" },
    body,
  });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function fail(message: string): never {
  throw new Error(message);
}

/** Whether a client (a full decode) reads `body` as a complete, successful answer to `requestId`. */
function completeSuccess(body: Uint8Array, requestId: number): { ok: boolean; objects: CborValue[] } {
  const reader = new ResponseReader();
  let events: ResponseEvent[];
  try {
    events = reader.push(body);
    reader.finish();
  } catch (error) {
    if (error instanceof ProtocolError) return { ok: false, objects: [] };
    throw escaped("ResponseReader (oracle)", error);
  }
  const ok =
    events.every((e) => !("requestId" in e) || e.requestId === requestId) &&
    events.some((e) => e.type === "status" && e.status === "ok") &&
    events.some((e) => e.type === "end" && e.clean) &&
    !events.some((e) => e.type === "error-response");
  return { ok, objects: events.flatMap((e) => (e.type === "objects" ? e.values : [])) };
}

// -------------------------------------------------------------------------------------------
// The properties

/** Mutations for whole recorded bodies (positions up to 256 KiB: the recorded answers are up to ~200 KB). */
const mutationArbitrary: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat({ max: 4096 }), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("set" as const), at: fc.nat({ max: 4096 }), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("u24" as const), at: fc.nat({ max: 4096 }), value: fc.oneof(fc.constantFrom(0, 1, 8, 0x8000, 0xffff, 0x10000, 0xffffff), fc.integer({ min: 0, max: 0xffffff })) }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat({ max: 1 << 18 }), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat({ max: 1 << 18 }), length: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat({ max: 1 << 18 }) }),
  fc.record({ kind: fc.constant("copy" as const), at: fc.nat({ max: 1 << 18 }), from: fc.nat({ max: 1 << 18 }), length: fc.integer({ min: 1, max: 256 }) }),
  fc.record({ kind: fc.constant("splice" as const), at: fc.nat({ max: 1 << 18 }), donor: fc.nat(), from: fc.nat({ max: 4096 }), length: fc.integer({ min: 1, max: 256 }) }),
);

const mutationsArb = (max: number): fc.Arbitrary<Mutation[]> => fc.array(mutationArbitrary, { maxLength: max });

function requestHandlerProperty(corpus: Corpus): FuzzProperty {
  const input = fc.record({
    exchange: fc.nat({ max: v2Exchanges.length - 1 }),
    mutations: mutationsArb(5),
    command: fc.option(fc.constantFrom(...COMMANDS), { nil: undefined, freq: 4 }),
    permission: fc.constantFrom("ro", "ro", "ro", "rw"),
    framed: fc.constantFrom(true, true, true, false),
    originSplit: splitArb,
  });
  return {
    name: "v2 handler: mutated requests always get an answer, never a 500, and pass through byte for byte",
    defaultRuns: 200,
    weight: 0.04,
    property: fc.asyncProperty(input, async (c) => {
      const x = v2Exchanges[c.exchange]!;
      const body = applyMutations(x.request, c.mutations, corpus.all);
      const command = c.command ?? x.command;
      const origin = { body: x.response, contentType: x.contentType, chunks: chunksOf(x.response, c.originSplit === "bytewise" ? [] : c.originSplit) };
      const h = harness(origin);
      const { response, body: answer } = await h.send(v2Request(h.repo, c.permission, command, body, c.framed));
      const where = () => `${new FuzzInput(body, `${x.label} request mutated`).toString()} → ${c.permission}/${command}`;
      if (response.status >= 600 || response.status === 500) fail(`status ${response.status} for ${where()}`);
      const cache = response.headers.get("x-hgedge-cache");
      let parsedOk = true;
      try {
        parseRequestBody(body);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw escaped("parseRequestBody", error);
        parsedOk = false;
      }
      outcomes.set(`app requests: ${response.status} ${cache}`, (outcomes.get(`app requests: ${response.status} ${cache}`) ?? 0) + 1);
      if (!parsedOk && c.framed && !(c.permission === "ro" && command === "pushkey")) {
        // Refused at the edge with Mercurial's kind of answer, never forwarded.
        if (h.calls() !== 0 || response.status !== 200 || !(response.headers.get("content-type") ?? "").startsWith("text/plain")) {
          fail(`a malformed framed request got ${response.status} ${response.headers.get("content-type")} after ${h.calls()} origin calls: ${where()}`);
        }
      }
      if (h.calls() > 0 && (cache === "MISS" || cache === "BYPASS") && command !== "capabilities" && !sameBytes(answer, x.response)) {
        fail(`a forwarded answer (${cache}) differs from the origin's bytes (${answer.length} vs ${x.response.length}): ${where()}`);
      }
    }),
  };
}

function cacheFillProperty(corpus: Corpus): FuzzProperty {
  const input = fc.record({
    exchange: fc.nat({ max: cacheableExchanges.length - 1 }),
    mutations: fc.oneof({ weight: 1, arbitrary: fc.constant([] as Mutation[]) }, { weight: 5, arbitrary: mutationsArb(4) }),
    originSplit: splitArb,
  });
  return {
    name: "cache fill: a mutated origin answer is passed through and committed only if complete and successful",
    defaultRuns: 150,
    weight: 0.04,
    property: fc.asyncProperty(input, async (c) => {
      const x = cacheableExchanges[c.exchange]!;
      // The recorded answers are up to ~200 KB: mutations keep their length (no cut at 64 KiB).
      const answer = applyMutations(x.response, c.mutations, corpus.all, Math.max(MAX_INPUT, x.response.length));
      const requestId = parseRequestBody(x.request).commands[0]?.requestId ?? 1;
      const h = harness({ body: answer, contentType: x.contentType, chunks: chunksOf(answer, c.originSplit === "bytewise" ? [] : c.originSplit) });
      const where = () => `${new FuzzInput(answer, `${x.label} response mutated`).toString()}`;
      const first = await h.send(v2Request(h.repo, "ro", x.command, x.request, true));
      const cache = first.response.headers.get("x-hgedge-cache");
      outcomes.set(`app fill: first ${cache}`, (outcomes.get(`app fill: first ${cache}`) ?? 0) + 1);
      if (cache !== "MISS") fail(`the first request for ${x.label} was ${cache}, not a MISS`);
      if (!sameBytes(first.body, answer)) fail(`the client did not get the origin's bytes (${first.body.length} vs ${answer.length}): ${where()}`);
      const oracle = completeSuccess(answer, requestId);
      const stored = await h.stored();
      const callsBefore = h.calls();
      const second = await h.send(v2Request(h.repo, "ro", x.command, x.request, true));
      const again = second.response.headers.get("x-hgedge-cache");
      outcomes.set(`app fill: ${oracle.ok ? "complete" : "malformed"} → ${stored.length} stored, then ${again}`, (outcomes.get(`app fill: ${oracle.ok ? "complete" : "malformed"} → ${stored.length} stored, then ${again}`) ?? 0) + 1);
      if (!oracle.ok) {
        if (stored.length !== 0) fail(`an answer a client rejects was committed (${stored.join(", ")}): ${where()}`);
        if (again !== "MISS" || h.calls() === callsBefore) fail(`after a malformed answer the same request was ${again}, origin calls ${callsBefore} → ${h.calls()}: ${where()}`);
        return;
      }
      if (stored.length !== 1) fail(`a complete successful answer was not committed (${stored.length} objects): ${where()}`);
      if (again !== "HIT" && again !== "REDIRECT") fail(`after a committed answer the same request was ${again}: ${where()}`);
      const object = await env.OBJECTS.get(stored[0]!);
      const objectBytes = new Uint8Array(await object!.arrayBuffer());
      const expected = encodeValues(oracle.objects);
      if (!sameBytes(encodeValues(decodeAll(objectBytes)), expected)) fail(`the stored object decodes to other values than the client saw: ${where()}`);
      if (again === "HIT") {
        const inline = collectResponses(second.body).get(requestId);
        if (!inline || !sameBytes(encodeValues(inline.objects), expected)) fail(`the inline HIT answer differs from the origin's objects: ${where()}`);
      }
    }),
  };
}

// -------------------------------------------------------------------------------------------

const APP_PROPERTIES = new Set([requestHandlerProperty(corpus), cacheFillProperty(corpus)]);
const properties = [...codecProperties(corpus), ...APP_PROPERTIES];
const plan = planRuns(properties, settings.totalRuns);
const report: string[] = [];

describe(`fuzzing in workerd (seed ${settings.seed}, ${settings.totalRuns ?? "default"} runs)`, () => {
  it("has a corpus and recorded v2 exchanges", () => {
    expect(corpus.requests.length).toBeGreaterThan(20);
    expect(v2Exchanges.length).toBeGreaterThan(50);
    expect(cacheableExchanges.length).toBeGreaterThan(10);
  });

  for (const p of properties) {
    const runs = plan.get(p.name) as number;
    it(`${p.name} [${runs} cases]`, { timeout: settings.totalRuns === undefined ? 60_000 : 0 }, async () => {
      const start = Date.now();
      // The app logs a JSON line per refused request, fill and retry: thousands here. Errors stay visible.
      const muted = APP_PROPERTIES.has(p) ? [vi.spyOn(console, "log").mockImplementation(() => {}), vi.spyOn(console, "warn").mockImplementation(() => {})] : [];
      try {
        await runProperty(p, runs, settings.seed);
      } finally {
        for (const spy of muted) spy.mockRestore();
      }
      report.push(`${p.name}: ${runs} cases in ${((Date.now() - start) / 1000).toFixed(1)} s (seed ${seedFor(settings.seed, p.name)})`);
      if (settings.totalRuns !== undefined) console.log(`fuzz progress: ${report.at(-1)}`);
    });
  }

  afterAll(() => {
    console.log(`fuzz (workerd): seed ${settings.seed}\n  ${report.join("\n  ")}\n  outcomes: ${JSON.stringify(Object.fromEntries([...outcomes].sort()))}`);
  });
});

// -------------------------------------------------------------------------------------------
// Defects this fuzzing found, now fixed in src/, each kept as a regression test.

/** A zstd frame whose header declares `window` bytes, with a raw last block of 100 bytes. */
function zstdHeaderDeclaring(window: number, singleSegment: boolean): Uint8Array {
  const header = singleSegment
    ? [0x28, 0xb5, 0x2f, 0xfd, 0xa0, window & 0xff, (window >> 8) & 0xff, (window >> 16) & 0xff, window >>> 24] // 4-byte content size
    : [0x28, 0xb5, 0x2f, 0xfd, 0x00, (Math.log2(window) - 10) << 3]; // window descriptor
  const block = (100 << 3) | 1;
  return Uint8Array.from([...header, block & 0xff, (block >> 8) & 0xff, block >> 16, ...new Array<number>(100).fill(0x41)]);
}

describe("defects found by fuzzing, fixed", () => {
  const SIXTEEN_MIB = 16 * 1024 * 1024;

  it("zstd-8mb refuses a single-segment frame declaring 16 MiB, as Mercurial's decoder does", () => {
    // A decoder allocating the declared size would take 2 GiB for a 137-byte response body
    // (content size 0x7f000000), far beyond a Worker's 128 MB: windowLogMax refuses it first.
    expect(() => createStreamDecoder("zstd-8mb").decode(zstdHeaderDeclaring(SIXTEEN_MIB, true))).toThrow(StreamEncodingError);
  });

  it("zstd-8mb refuses a 16 MiB window whose frame header is split over two payloads", () => {
    const frame = zstdHeaderDeclaring(SIXTEEN_MIB, false);
    expect(() => createStreamDecoder("zstd-8mb").decode(frame)).toThrow(StreamEncodingError);
    const decoder = createStreamDecoder("zstd-8mb");
    expect(() => {
      decoder.decode(frame.subarray(0, 5));
      decoder.decode(frame.subarray(5));
    }).toThrow(StreamEncodingError);
  });

  describe(`zstd-8mb checks every frame of a stream (${FIXED_DEFECTS.zstdLaterFrame})`, () => {
    /**
     * A single-segment frame of `content` in one raw block, optionally with its checksum (the low
     * 4 bytes of XXH64, little-endian: zstd verifies it, as Mercurial's decoder does).
     */
    const smallFrame = (content: number[], checksum?: number[]) => {
      const block = (content.length << 3) | 1;
      return [0x28, 0xb5, 0x2f, 0xfd, checksum ? 0x24 : 0x20, content.length, block & 0xff, (block >> 8) & 0xff, block >> 16, ...content, ...(checksum ?? [])];
    };
    /** XXH64 checksums of the contents used below, as zstd computes them. */
    const CHECKSUM_OF_B = [0xf9, 0x57, 0x32, 0x06];
    const CHECKSUM_OF_10_C = [0xaf, 0xe7, 0x39, 0x2a];
    const second = zstdHeaderDeclaring(SIXTEEN_MIB, true);

    it.each([
      ["in one payload", [Uint8Array.from([...smallFrame([0x42, 0x43]), ...second])]],
      ["in the next payload", [Uint8Array.from(smallFrame([0x42, 0x43])), second]],
      ["split inside its header", [Uint8Array.from([...smallFrame([0x42, 0x43]), ...second.subarray(0, 7)]), second.subarray(7)]],
      ["after a frame with a checksum", [Uint8Array.from([...smallFrame([0x42], CHECKSUM_OF_B), ...second])]],
      ["after a skippable frame", [Uint8Array.from([...smallFrame([0x42]), 0x5e, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9, ...second])]],
    ])("refuses a 16 MiB window in a later frame %s", (_, payloads) => {
      const decoder = createStreamDecoder("zstd-8mb");
      expect(() => payloads.forEach((p) => decoder.decode(p))).toThrow(/window over zstd-8mb's 8 MiB/);
    });

    it("decodes a stream of several frames (raw, RLE, checksummed) in any split", () => {
      const rle = [0x28, 0xb5, 0x2f, 0xfd, 0x20, 5, (5 << 3) | (1 << 1) | 1, 0, 0, 0x7a]; // RLE block: "zzzzz"
      const stream = Uint8Array.from([...smallFrame([0x61, 0x62]), ...rle, ...smallFrame(new Array<number>(10).fill(0x63), CHECKSUM_OF_10_C)]);
      for (let cut = 0; cut <= stream.length; cut++) {
        const decoder = createStreamDecoder("zstd-8mb");
        const out = [...decoder.decode(stream.subarray(0, cut)), ...decoder.decode(stream.subarray(cut))];
        expect(String.fromCharCode(...out)).toBe(`abzzzzz${"c".repeat(10)}`);
      }
    });

    it("refuses a frame whose checksum does not match its content", () => {
      const decoder = createStreamDecoder("zstd-8mb");
      expect(() => decoder.decode(Uint8Array.from(smallFrame([0x42], CHECKSUM_OF_10_C)))).toThrow(/corrupt zstd stream/);
    });

    it("refuses bytes after a frame that do not start another one", () => {
      const decoder = createStreamDecoder("zstd-8mb");
      expect(() => decoder.decode(Uint8Array.from([...smallFrame([0x61]), 1, 2, 3, 4]))).toThrow(/corrupt zstd stream/);
    });
  });

  it("FrameParser reads a frame's header once, however many pieces the frame comes in", () => {
    // It used to re-join everything held back on every push (quadratic in the pieces). Not a
    // timing test: a 4 MiB frame in 1 KiB pieces must simply come out whole.
    const payload = new Uint8Array(4 * 1024 * 1024).map((_, i) => i % 251);
    const frame = new Uint8Array(8 + payload.length);
    frame.set([payload.length & 0xff, (payload.length >> 8) & 0xff, payload.length >> 16, 1, 0, 2, 1, 0x32]);
    frame.set(payload, 8);
    const parser = new FrameParser();
    const frames = [];
    for (let at = 0; at < frame.length; at += 1024) frames.push(...parser.push(frame.subarray(at, at + 1024)));
    parser.finish();
    expect(frames).toHaveLength(1);
    expect(frames[0]!.payload.length).toBe(payload.length);
    expect(frames[0]!.payload[payload.length - 1]).toBe((payload.length - 1) % 251);
  });

  const MINUS_2_POW_53 = Uint8Array.from([0x3b, 0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

  it("decodeAll's values re-encode: -2^53 comes back as a bigint, not an unsafe number", () => {
    expect(encode(decodeAll(MINUS_2_POW_53)[0]!)).toEqual(MINUS_2_POW_53);
  });

  it("the app answers a manifestdata request whose arguments hold -2^53 (app.fetch used to reject with a CborEncodeError)", async () => {
    // 92 bytes, as any client can send them: {contentencodings: [identity]}, then
    // {name: manifestdata, args: {fields: {revision}, nodes: [-2^53], tree: ''}}.
    const body = fromHex(
      "1c00000100010182a150636f6e74656e74656e636f64696e677381486964656e746974794300000100010011a24461726773a3466669656c6473" +
        "d9010281487265766973696f6e456e6f646573813b001fffffffffffff447472656540446e616d654c6d616e696665737464617461",
    );
    const h = harness({ body: new Uint8Array(0), contentType: FRAMING, chunks: [] });
    const { response } = await h.send(v2Request(h.repo, "ro", "manifestdata", body, true));
    expect(response.status).toBeLessThan(500);
  });
});
