/**
 * Inline hits: an identity answer is exactly the frames ResponseEmitter makes for the stored
 * bytes — whatever the object's size against the frame boundaries, from R2 (the runtime fills the
 * frames) or from a stream built in JavaScript — and a client that does not take identity still
 * gets the bytes back through its encoding.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { inlineAnswer } from "../../src/cache/answers.ts";
import { bytesEqual, encode } from "../../src/protocol/cbor.ts";
import { DEFAULT_MAX_FRAME_SIZE, parseFrames } from "../../src/protocol/frames.ts";
import { collectResponses, encodeOkResponse, ResponseReader } from "../../src/protocol/responses.ts";

const bucket = (env as unknown as { OBJECTS: R2Bucket }).OBJECTS;
const STATUS_BYTES = 11; // {status: ok}
const FIRST_ROOM = DEFAULT_MAX_FRAME_SIZE - STATUS_BYTES;

function pattern(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 7 + 3) & 0xff;
  return bytes;
}

/** A JavaScript stream handing out `data` in pieces of `step` bytes. */
function jsStream(data: Uint8Array, step: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= data.length) return controller.close();
      controller.enqueue(data.slice(at, at + step));
      at += step;
    },
  });
}

async function bodyOf(response: Response): Promise<Uint8Array> {
  return new Uint8Array(await response.arrayBuffer());
}

const SIZES = [0, 1, FIRST_ROOM - 1, FIRST_ROOM, FIRST_ROOM + 1, FIRST_ROOM + DEFAULT_MAX_FRAME_SIZE, FIRST_ROOM + 2 * DEFAULT_MAX_FRAME_SIZE + 5, 1_000_003];

describe("inline answers", () => {
  it.each(SIZES)("an identity answer of %i bytes from R2 is byte for byte ResponseEmitter's", async (size) => {
    const data = pattern(size);
    const name = `answers-test/${size}`;
    await bucket.put(name, data);
    const object = await bucket.get(name);
    const answer = await bodyOf(inlineAnswer(7, object!.body, ["zstd-8mb", "zlib", "identity"]));
    const expected = encodeOkResponse(7, data);
    expect(answer.length).toBe(expected.length);
    expect(bytesEqual(answer, expected)).toBe(true);
    // Every frame but the last is full; only the last, never full, carries eos.
    const frames = parseFrames(answer);
    expect(frames.slice(0, -1).every((f) => f.length === DEFAULT_MAX_FRAME_SIZE && f.flags === 1)).toBe(true);
    expect(frames.at(-1)!.flags).toBe(2);
    expect(frames.at(-1)!.length).toBeLessThan(DEFAULT_MAX_FRAME_SIZE);
  });

  it.each([1, 1000, 40_000])("an identity answer from a JavaScript stream in %i-byte pieces is the same", async (step) => {
    const data = pattern(FIRST_ROOM + 3 * DEFAULT_MAX_FRAME_SIZE + 17);
    const answer = await bodyOf(inlineAnswer(1, jsStream(data, step), []));
    expect(bytesEqual(answer, encodeOkResponse(1, data))).toBe(true);
  });

  it("a client that does not take identity gets its encoding, and the same bytes decoded", async () => {
    const data = encode(pattern(200_000)); // the reader checks that the body is CBOR
    const answer = await bodyOf(inlineAnswer(3, jsStream(data, 65536), ["zlib"]));
    const reader = new ResponseReader({ emitBody: true, decodeObjects: false });
    const events = reader.push(answer);
    reader.finish();
    expect(events.find((e) => e.type === "stream-settings")).toMatchObject({ encoding: "zlib" });
    const body = events.flatMap((e) => (e.type === "body" ? [...e.bytes] : []));
    expect(bytesEqual(Uint8Array.from(body), data)).toBe(true);
    expect(collectResponses(answer).get(3)?.status).toBe("ok");
  });

  it("cancelling the answer cancels the stored object's stream", async () => {
    let cancelled: unknown;
    const stored = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(pattern(DEFAULT_MAX_FRAME_SIZE));
      },
      cancel(reason) {
        cancelled = reason;
      },
    });
    const reader = inlineAnswer(1, stored, ["identity"]).body!.getReader();
    await reader.read();
    await reader.cancel("client gone");
    expect(cancelled).toBe("client gone");
  });
});
