/**
 * Looking at the first frame of an origin's framed answer before deciding what to do with it
 * (the filesdata retry), without losing a byte: the stream handed back replays what was read.
 */
import { FrameParser, type Frame } from "../protocol/frames.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { ByteReader, OriginStalled } from "../io/reader.ts";
import { failingReader, replay } from "../io/bodies.ts";

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

