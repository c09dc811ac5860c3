/**
 * Filling the cache while streaming: the client always gets the origin's bytes; an object is
 * committed only after a complete success, and every failure leaves nothing in R2.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { fillWhileStreaming, type FillOutcome } from "../../src/cache/fill.ts";
import { withIdleTimeout } from "../../src/io/reader.ts";
import { ObjectWriter } from "../../src/cache/store.ts";
import { bytesEqual, encode, encodeSequence } from "../../src/protocol/cbor.ts";
import { concatBytes } from "../../src/protocol/frames.ts";
import { encodeCommandError, encodeErrorResponseFrame, encodeOkResponse, ResponseEmitter } from "../../src/protocol/responses.ts";
import { fixtureBytes } from "../support/fixtures.ts";

let counter = 0;
const uniqueName = () => `test/fill/${Date.now()}-${counter++}`;

function streamOf(chunks: Uint8Array[], failAfter?: number): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      if (failAfter !== undefined && i === failAfter) return controller.error(new Error("connection reset"));
      if (i >= chunks.length) return controller.close();
      controller.enqueue(chunks[i++] as Uint8Array);
    },
  });
}

function split(body: Uint8Array, size: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < body.length; at += size) chunks.push(body.slice(at, at + size));
  return chunks;
}

interface Run {
  received: Uint8Array;
  outcome: FillOutcome;
  stored: Uint8Array | null;
  error?: unknown;
}

async function run(chunks: Uint8Array[], options: { failAfter?: number; bucket?: R2Bucket; partSize?: number; cancelAfter?: number; maxBytes?: number } = {}): Promise<Run> {
  const name = uniqueName();
  const pending: Promise<unknown>[] = [];
  let resolveOutcome: (o: FillOutcome) => void = () => undefined;
  const outcomePromise = new Promise<FillOutcome>((r) => (resolveOutcome = r));
  const writer = new ObjectWriter(options.bucket ?? env.OBJECTS, name, "manifestdata", options.partSize);
  const stream = fillWhileStreaming(streamOf(chunks, options.failAfter), {
    requestId: 1,
    writer,
    waitUntil: (p) => pending.push(p),
    onOutcome: resolveOutcome,
    ...(options.maxBytes !== undefined ? { maxBytes: options.maxBytes } : {}),
  });
  const reader = stream.getReader();
  const received: Uint8Array[] = [];
  let error: unknown;
  try {
    for (;;) {
      if (options.cancelAfter !== undefined && received.length === options.cancelAfter) {
        await reader.cancel("client gone");
        break;
      }
      const { done, value } = await reader.read();
      if (done) break;
      received.push(value);
    }
  } catch (e) {
    error = e;
  }
  const outcome = await outcomePromise;
  await Promise.all(pending);
  const object = await env.OBJECTS.get(name);
  const stored = object ? new Uint8Array(await object.arrayBuffer()) : null;
  return { received: concatBytes(received), outcome, stored, ...(error ? { error } : {}) };
}

const objects = [encode(new Map([[new TextEncoder().encode("totalitems"), 2]])), encode(new Uint8Array(300_000).map((_, i) => i % 7)), encode([1, 2, 3])];
const payload = concatBytes(objects);

describe("fill while streaming", () => {
  it.each(["identity", "zlib"] as const)("commits exactly the bytes after the status map (%s)", async (encoding) => {
    const body = encodeOkResponse(1, payload, encoding);
    const result = await run(split(body, 1000));
    expect(result.received).toEqual(body);
    expect(result.outcome.committed).toBe(true);
    expect(result.stored).toEqual(payload);
  });

  it("gives up the fill of an answer larger than maxBytes and still passes all of it through", async () => {
    const body = encodeOkResponse(1, payload);
    const over = await run(split(body, 1000), { maxBytes: payload.length - 1 });
    expect(over.received).toEqual(body);
    expect(over.outcome).toMatchObject({ committed: false, reason: expect.stringMatching(/larger than/) });
    expect(over.stored).toBeNull();
    const exact = await run(split(body, 1000), { maxBytes: payload.length });
    expect(exact.outcome.committed).toBe(true);
  });

  it("stores what a redirect target must serve for a real recorded response", async () => {
    const cold = await fixtureBytes("cmd-filesdata-redirect/002-response.body");
    const served = await fixtureBytes("cmd-filesdata-redirect/005-response.body");
    const result = await run(split(cold, 4096));
    expect(result.outcome.committed).toBe(true);
    expect(result.stored).toEqual(served);
  });

  it("uploads large objects in parts and commits them whole", async () => {
    // R2 wants every part but the last to be at least 5 MiB: three parts here.
    const big = encodeSequence([new Uint8Array(7_000_000).fill(3), new Uint8Array(4_000_000).fill(4)]);
    const body = encodeOkResponse(1, big);
    const result = await run(split(body, 65536), { partSize: 5 * 1024 * 1024 });
    expect(result.outcome.committed).toBe(true);
    // (toEqual on megabytes is slow and its diff can exhaust the isolate's memory.)
    expect(result.stored && bytesEqual(result.stored, big)).toBe(true);
    expect(bytesEqual(result.received, body)).toBe(true);
  });

  const failures: [string, () => Promise<Run>][] = [
    ["an error status", () => run([encodeCommandError(1, "unknown node: %s", ["aa"])])],
    ["an error frame before output", () => run([encodeErrorResponseFrame(1, "server", "boom")])],
    [
      "an error frame after output",
      async () => {
        const emitter = new ResponseEmitter(1);
        const frames = [...emitter.begin(), ...emitter.write(payload)];
        return run([...frames, encodeErrorResponseFrame(1, "server", "boom", false)]);
      },
    ],
    ["a command error after output", async () => {
      const emitter = new ResponseEmitter(1);
      return run([...emitter.begin(), ...emitter.write(payload), encodeCommandError(1, "late", undefined, false)]);
    }],
    ["a body cut inside a frame", () => run(split(encodeOkResponse(1, payload), 1000).slice(0, -1))],
    ["a body cut between frames (no eos)", async () => {
      const emitter = new ResponseEmitter(1);
      return run([...emitter.begin(), ...emitter.write(payload)]);
    }],
    ["a connection reset mid-stream", () => run(split(encodeOkResponse(1, payload), 1000), { failAfter: 5 })],
    ["a response for another request id", () => run([encodeOkResponse(3, payload)])],
    ["malformed frames", () => run([new Uint8Array([0xff, 0xff, 0xff, 1, 0, 2, 1, 0x31, 1, 2, 3])])],
    ["the client going away", () => run(split(encodeOkResponse(1, payload), 1000), { cancelAfter: 3 })],
    ["an R2 failure", () => run(split(encodeOkResponse(1, payload), 1000), { bucket: failingBucket() })],
  ];

  it.each(failures)("commits nothing after %s", async (_name, make) => {
    const result = await make();
    expect(result.outcome.committed).toBe(false);
    expect(result.stored).toBeNull();
  });

  it("gives up on an origin that stalls mid-body, committing nothing", async () => {
    const body = encodeOkResponse(1, payload);
    let sent = false;
    const stalling = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (!sent) {
          sent = true;
          controller.enqueue(body.subarray(0, 100));
        }
        return new Promise(() => undefined); // and then nothing, ever
      },
    });
    let outcome: FillOutcome | undefined;
    const name = uniqueName();
    // As forwardToOrigin hands the fill an origin body: with its idle limit.
    const stream = fillWhileStreaming(withIdleTimeout(stalling, 50), {
      requestId: 1,
      writer: new ObjectWriter(env.OBJECTS, name, "manifestdata"),
      onOutcome: (o) => (outcome = o),
    });
    const reader = stream.getReader();
    expect((await reader.read()).value?.length).toBe(100);
    await expect(reader.read()).rejects.toThrow(/sent nothing for 50 ms/);
    expect(outcome).toMatchObject({ committed: false });
    expect(await env.OBJECTS.head(name)).toBeNull();
  });

  it("passes the origin's bytes to the client even when it does not store them", async () => {
    const body = concatBytes([encodeCommandError(1, "unknown node: %s", ["aa"])]);
    const result = await run(split(body, 7));
    expect(result.received).toEqual(body);
  });
});

/** A bucket whose writes fail, reads pass through to the real one. */
function failingBucket(): R2Bucket {
  return new Proxy(env.OBJECTS, {
    get(target, property) {
      if (property === "put" || property === "createMultipartUpload") {
        return () => Promise.reject(new Error("R2 is down"));
      }
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
