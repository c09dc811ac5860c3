/**
 * ByteReader: big reads from byte streams, the stream's own chunks otherwise, short reads in
 * buffers of their own size, and a stalled source failing with OriginStalled and cancelled.
 */
import { describe, expect, it } from "vitest";
import { ByteReader, OriginStalled, READ_BYTES, withIdleTimeout } from "../../src/io/reader.ts";
import { bytesEqual } from "../../src/protocol/cbor.ts";
import { concatBytes } from "../../src/protocol/frames.ts";

function pattern(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 7 + 3) & 0xff;
  return bytes;
}

async function readAll(reader: ByteReader): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return chunks;
    chunks.push(value);
  }
}

/** A byte stream (`type: "bytes"`) whose source enqueues `pieces` one per pull. */
function byteStreamOf(pieces: Uint8Array[]): ReadableStream<Uint8Array> {
  let index = 0;
  return new ReadableStream({
    type: "bytes",
    pull(controller) {
      const piece = pieces[index++];
      if (piece) controller.enqueue(piece.slice());
      else controller.close();
    },
  }) as ReadableStream<Uint8Array>;
}

/** A source that never answers, and says whether it was cancelled. */
function silentSource(): { stream: ReadableStream<Uint8Array>; cancelled: () => unknown } {
  let reason: unknown;
  const stream = new ReadableStream<Uint8Array>({
    pull: () => new Promise<void>(() => undefined),
    cancel(why) {
      reason = why ?? "cancelled";
    },
  });
  return { stream, cancelled: () => reason };
}

describe("ByteReader", () => {
  it("reads a runtime byte stream (a Response body) in chunks of up to READ_BYTES", async () => {
    const data = pattern(1024 * 1024 + 5);
    const chunks = await readAll(new ByteReader(new Response(data).body as ReadableStream<Uint8Array>, 60_000));
    expect(bytesEqual(concatBytes(chunks), data)).toBe(true);
    expect(Math.max(...chunks.map((c) => c.byteLength))).toBeLessThanOrEqual(READ_BYTES);
    // Far fewer trips than the default reader's socket-sized pieces would make.
    expect(chunks.length).toBeLessThanOrEqual(Math.ceil(data.length / (READ_BYTES / 2)) + 1);
  });

  it("gives a short read a buffer of its own size, so a kept chunk does not keep READ_BYTES alive", async () => {
    const pieces = [pattern(100), pattern(READ_BYTES / 2 - 1), pattern(READ_BYTES)];
    const chunks = await readAll(new ByteReader(byteStreamOf(pieces), undefined));
    expect(chunks).toEqual(pieces);
    expect(chunks.map((c) => c.buffer.byteLength)).toEqual([100, READ_BYTES / 2 - 1, READ_BYTES]);
  });

  it("reads a stream built in JavaScript chunk by chunk, as its source made them", async () => {
    const pieces = [pattern(10), pattern(20_000), pattern(3)];
    let index = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        const piece = pieces[index++];
        if (piece) controller.enqueue(piece);
        else controller.close();
      },
    });
    expect(await readAll(new ByteReader(stream, 60_000))).toEqual(pieces);
  });

  it("fails a read that waits longer than the limit with OriginStalled, and cancels the source", async () => {
    const { stream, cancelled } = silentSource();
    const reader = new ByteReader(stream, 30);
    await expect(reader.read()).rejects.toThrow(OriginStalled);
    expect(cancelled()).toMatch(/the origin sent nothing for 30 ms/);
  });

  it("limits each read, not the whole stream: a source slower in total than the limit still ends", async () => {
    let index = 0;
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        if (index++ < 12) controller.enqueue(pattern(8));
        else controller.close();
      },
    });
    // 12 reads of ~10 ms each: about 120 ms in all, against a limit of 100 ms per read.
    const chunks = await readAll(new ByteReader(stream, 100));
    expect(chunks).toHaveLength(12);
  });

  it("fails a stream wrapped by withIdleTimeout, and passes the client's cancel on to the source", async () => {
    const stalled = silentSource();
    await expect(withIdleTimeout(stalled.stream, 20).getReader().read()).rejects.toThrow(OriginStalled);

    const left = silentSource();
    await withIdleTimeout(left.stream, 60_000).cancel("client gone");
    expect(left.cancelled()).toBe("client gone");
  });
});
