/**
 * Reading a body into memory only when it is small enough to be worth it (handshakes, v2 command
 * requests, capabilities answers). A body that turns out larger than the limit is handed back as
 * a stream that replays what was read, so it can still pass through untouched.
 */
import { concatBytes } from "../protocol/frames.ts";
import { ByteReader, type ChunkReader } from "./reader.ts";

export type BoundedBody = { kind: "bytes"; bytes: Uint8Array } | { kind: "stream"; stream: ReadableStream<Uint8Array> };

export async function readBounded(stream: ReadableStream<Uint8Array> | null, limit: number): Promise<BoundedBody> {
  if (!stream) return { kind: "bytes", bytes: new Uint8Array(0) };
  const reader = new ByteReader(stream, undefined);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return { kind: "bytes", bytes: concatBytes(chunks) };
    chunks.push(value);
    total += value.length;
    if (total > limit) return { kind: "stream", stream: replay(chunks, reader) };
  }
}

/** A reader whose next read fails as the origin's did, so the client sees the same cut. */
export function failingReader(error: unknown): ChunkReader {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.error(error);
    },
  }).getReader();
}

/** A stream of `head` followed by the rest of `reader`, with backpressure. */
export function replay(head: Uint8Array[], reader: ChunkReader): ReadableStream<Uint8Array> {
  let index = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (index < head.length) {
        controller.enqueue(head[index++] as Uint8Array);
        return;
      }
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}
