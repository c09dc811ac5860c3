/**
 * Reading a body into memory only when it is small enough to be worth it (handshakes, v2 command
 * requests, capabilities answers). A body that turns out larger than the limit is handed back as
 * a stream that replays what was read, so it can still pass through untouched.
 */
import { FrameParser, concatBytes, type Frame } from "../protocol/frames.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { ByteReader, OriginStalled, type ChunkReader } from "../io/reader.ts";

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

export type Peeked =
  | { kind: "frame"; frame: Frame; stream: ReadableStream<Uint8Array> }
  /** The body ended, broke or is not framed before a first frame: the stream replays it. */
  | { kind: "none"; stream: ReadableStream<Uint8Array> }
  /** The origin fell silent before a first frame (forwardToOrigin's body failed with OriginStalled). */
  | { kind: "stalled" };

/**
 * Reads just enough of a framed body to see its first frame; the stream handed back replays
 * those bytes (and then the rest, or the read error), so the body can still pass through as the
 * origin sent it.
 */
export async function peekFirstFrame(stream: ReadableStream<Uint8Array>): Promise<Peeked> {
  const reader = new ByteReader(stream, undefined);
  const parser = new FrameParser();
  const chunks: Uint8Array[] = [];
  for (;;) {
    let read: ReadableStreamReadResult<Uint8Array>;
    try {
      read = await reader.read();
    } catch (error) {
      if (error instanceof OriginStalled) return { kind: "stalled" };
      return { kind: "none", stream: replay(chunks, failingReader(error)) };
    }
    if (read.done) return { kind: "none", stream: replay(chunks, reader) };
    chunks.push(read.value);
    let frames: Frame[];
    try {
      frames = parser.push(read.value);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      return { kind: "none", stream: replay(chunks, reader) };
    }
    const [frame] = frames;
    if (frame) return { kind: "frame", frame, stream: replay(chunks, reader) };
  }
}

/** A reader whose next read fails as the origin's did, so the client sees the same cut. */
function failingReader(error: unknown): ChunkReader {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.error(error);
    },
  }).getReader();
}

/** A stream of `head` followed by the rest of `reader`, with backpressure. */
function replay(head: Uint8Array[], reader: ChunkReader): ReadableStream<Uint8Array> {
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

/** The same response with another body (headers and status kept; Content-Length fixed). */
export function withBody(response: Response, body: Uint8Array | ReadableStream<Uint8Array>): Response {
  const headers = new Headers(response.headers);
  if (body instanceof Uint8Array) headers.set("content-length", String(body.length));
  return new Response(body, { status: response.status, statusText: response.statusText, headers });
}
