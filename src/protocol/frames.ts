/**
 * Frames of Mercurial's "unified frame-based protocol" (wire protocol version 2), as specified in
 * mercurial/helptext/internals/wireprotocolrpc.txt and implemented in wireprotoframing.py.
 *
 * A frame is an 8-byte header followed by its payload:
 *
 *   byte 0..2  payload length, unsigned 24-bit little-endian (header not included)
 *   byte 3..4  request id, unsigned 16-bit little-endian
 *   byte 5     stream id
 *   byte 6     stream flags
 *   byte 7     high nibble: frame type, low nibble: frame flags
 *
 * Names below are Mercurial's own (FRAME_TYPES, FRAME_TYPE_FLAGS, STREAM_FLAGS).
 */
import { FrameError, ProtocolError } from "./errors.ts";

export const FRAME_HEADER_SIZE = 8;
/**
 * Mercurial's DEFAULT_MAX_FRAME_SIZE. We never emit more: the 5.x reader weighs the third length
 * byte by 16384 instead of 65536 (wireprotoframing.py:282), so any payload of 64 KiB or more is
 * mis-framed by stock peers, and the spec forbids > 65535 without negotiation anyway.
 */
export const DEFAULT_MAX_FRAME_SIZE = 32768;
/** The largest length a header can express; we parse the 24-bit field correctly. */
export const MAX_FRAME_PAYLOAD = 0xffffff;

export const STREAM_FLAGS = {
  "stream-begin": 0x01,
  "stream-end": 0x02,
  encoded: 0x04,
} as const;

export const FRAME_TYPES = {
  "command-request": 0x1,
  "command-data": 0x2,
  "command-response": 0x3,
  "error-response": 0x5,
  "text-output": 0x6,
  progress: 0x7,
  "sender-protocol-settings": 0x8,
  "stream-settings": 0x9,
} as const;

export type FrameTypeName = keyof typeof FRAME_TYPES;

const CONTINUATION_EOS = { continuation: 0x1, eos: 0x2 } as const;

export const FRAME_TYPE_FLAGS: Record<number, Record<string, number>> = {
  [FRAME_TYPES["command-request"]]: { new: 0x1, continuation: 0x2, more: 0x4, "have-data": 0x8 },
  [FRAME_TYPES["command-data"]]: CONTINUATION_EOS,
  [FRAME_TYPES["command-response"]]: CONTINUATION_EOS,
  [FRAME_TYPES["error-response"]]: {},
  [FRAME_TYPES["text-output"]]: {},
  [FRAME_TYPES.progress]: {},
  [FRAME_TYPES["sender-protocol-settings"]]: CONTINUATION_EOS,
  [FRAME_TYPES["stream-settings"]]: CONTINUATION_EOS,
};

/** Flag values used by this project, named after Mercurial's FLAG_* constants. */
export const FLAGS = {
  COMMAND_REQUEST_NEW: 0x1,
  COMMAND_REQUEST_CONTINUATION: 0x2,
  COMMAND_REQUEST_MORE_FRAMES: 0x4,
  COMMAND_REQUEST_EXPECT_DATA: 0x8,
  COMMAND_RESPONSE_CONTINUATION: 0x1,
  COMMAND_RESPONSE_EOS: 0x2,
  SETTINGS_CONTINUATION: 0x1,
  SETTINGS_EOS: 0x2,
} as const;

export interface FrameHeader {
  /** Payload length on the wire (after stream content encoding). */
  length: number;
  requestId: number;
  streamId: number;
  streamFlags: number;
  typeId: number;
  flags: number;
}

export interface Frame extends FrameHeader {
  payload: Uint8Array;
  /** Offset of the frame header from the start of the stream it was parsed from. */
  offset: number;
}

export type FrameInit = Omit<FrameHeader, "length"> & { payload: Uint8Array };

const TYPE_NAMES = new Map<number, FrameTypeName>(
  Object.entries(FRAME_TYPES).map(([name, id]) => [id, name as FrameTypeName]),
);

/** Mercurial's name for a frame type, or `<unknown 0xNN>` like its debug output. */
export function frameTypeName(typeId: number): string {
  return TYPE_NAMES.get(typeId) ?? `<unknown 0x${hex2(typeId)}>`;
}

/** Names of the bits set in `value`, lowest bit first, as wireprotoframing.humanflags. */
export function flagNames(mapping: Record<string, number>, value: number): string[] {
  const byValue = new Map(Object.entries(mapping).map(([name, bit]) => [bit, name]));
  const names: string[] = [];
  for (let bit = 1; bit <= value; bit <<= 1) {
    if (value & bit) names.push(byValue.get(bit) ?? `<unknown 0x${hex2(bit)}>`);
  }
  return names;
}

export function frameFlagNames(typeId: number, flags: number): string[] {
  return flagNames(FRAME_TYPE_FLAGS[typeId] ?? {}, flags);
}

export function streamFlagNames(streamFlags: number): string[] {
  return flagNames(STREAM_FLAGS, streamFlags);
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}

/** Reads the 8-byte header at `offset`; the caller guarantees 8 bytes are there. */
export function parseFrameHeader(bytes: Uint8Array, offset = 0): FrameHeader {
  if (bytes.length - offset < FRAME_HEADER_SIZE) {
    throw new FrameError("truncated", "a frame header needs 8 bytes", offset);
  }
  const b = (i: number) => bytes[offset + i] as number;
  const typeAndFlags = b(7);
  return {
    length: b(0) | (b(1) << 8) | (b(2) << 16),
    requestId: b(3) | (b(4) << 8),
    streamId: b(5),
    streamFlags: b(6),
    typeId: typeAndFlags >> 4,
    flags: typeAndFlags & 0x0f,
  };
}

/** Writes a frame header into `out` at `offset` (8 bytes). */
export function writeFrameHeader(out: Uint8Array, offset: number, header: FrameHeader): void {
  checkField("payload length", header.length, MAX_FRAME_PAYLOAD);
  checkField("request id", header.requestId, 0xffff);
  checkField("stream id", header.streamId, 0xff);
  checkField("stream flags", header.streamFlags, 0xff);
  checkField("frame type", header.typeId, 0xf);
  checkField("frame flags", header.flags, 0xf);
  out[offset] = header.length & 0xff;
  out[offset + 1] = (header.length >> 8) & 0xff;
  out[offset + 2] = header.length >> 16;
  out[offset + 3] = header.requestId & 0xff;
  out[offset + 4] = header.requestId >> 8;
  out[offset + 5] = header.streamId;
  out[offset + 6] = header.streamFlags;
  out[offset + 7] = (header.typeId << 4) | header.flags;
}

function checkField(what: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new FrameError("frame", `${what} ${value} does not fit its header field (0..${max})`);
  }
}

/**
 * Encodes one frame. Refuses payloads over DEFAULT_MAX_FRAME_SIZE: stock Mercurial peers cannot
 * read them (see DEFAULT_MAX_FRAME_SIZE); split larger data with `chunkPayload`.
 */
export function encodeFrame(frame: FrameInit): Uint8Array {
  if (frame.payload.length > DEFAULT_MAX_FRAME_SIZE) {
    throw new FrameError(
      "frame",
      `refusing to emit a ${frame.payload.length}-byte frame payload: ` +
        `Mercurial peers read at most ${DEFAULT_MAX_FRAME_SIZE} safely; split the data first`,
    );
  }
  const out = new Uint8Array(FRAME_HEADER_SIZE + frame.payload.length);
  writeFrameHeader(out, 0, { ...frame, length: frame.payload.length });
  out.set(frame.payload, FRAME_HEADER_SIZE);
  return out;
}

/** Splits data into payload-sized views (no copy), at least one (possibly empty) piece. */
export function chunkPayload(data: Uint8Array, maxSize = DEFAULT_MAX_FRAME_SIZE): Uint8Array[] {
  if (maxSize < 1 || maxSize > DEFAULT_MAX_FRAME_SIZE) {
    throw new FrameError("frame", `frame size ${maxSize} is outside 1..${DEFAULT_MAX_FRAME_SIZE}`);
  }
  if (data.length === 0) return [data];
  const pieces: Uint8Array[] = [];
  for (let at = 0; at < data.length; at += maxSize) pieces.push(data.subarray(at, at + maxSize));
  return pieces;
}

/** Concatenates byte arrays into one new array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array;
  let total = 0;
  for (const part of parts) total += part.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * Incremental frame parser: feed it chunks split anywhere (one byte at a time included); it
 * returns each frame as soon as its last byte arrived. Payloads are views into the chunk when a
 * frame lies within one chunk, otherwise one copy. Memory held between calls is bounded by the
 * largest frame.
 *
 * Errors (a FrameError with the byte offset) are sticky: once malformed input was seen the parser
 * refuses further input, as Mercurial's reactors move to a permanent error state.
 */
export class FrameParser {
  /** Bytes of an incomplete frame carried over between chunks. */
  private pending: Uint8Array[] = [];
  private pendingLength = 0;
  /** The header of the held-back frame, once its 8 bytes are in. */
  private pendingHeader: FrameHeader | undefined;
  /** Offset (in the whole stream) of the first byte not yet part of a returned frame. */
  private consumed = 0;
  private failure: ProtocolError | undefined;

  constructor(private readonly maxPayload = MAX_FRAME_PAYLOAD) {}

  /** Total bytes that form complete frames so far. */
  get offset(): number {
    return this.consumed;
  }

  /** Bytes held back because they do not yet form a whole frame. */
  get buffered(): number {
    return this.pendingLength;
  }

  push(chunk: Uint8Array): Frame[] {
    if (this.failure) throw this.failure;
    const frames: Frame[] = [];
    let data = chunk;
    if (this.pendingLength > 0) {
      data = this.completePending(chunk, frames);
      if (data.length === 0) return frames;
    }
    let at = 0;
    while (data.length - at >= FRAME_HEADER_SIZE) {
      const header = parseFrameHeader(data, at);
      this.checkLength(header);
      const end = at + FRAME_HEADER_SIZE + header.length;
      if (end > data.length) break;
      frames.push({ ...header, payload: data.subarray(at + FRAME_HEADER_SIZE, end), offset: this.consumed });
      this.consumed += end - at;
      at = end;
    }
    if (at < data.length) this.hold(data.subarray(at));
    return frames;
  }

  /**
   * Declares the end of input. Throws a FrameError if it ended inside a frame; zero bytes at a
   * frame boundary is a clean end, as in Mercurial's readframe.
   */
  finish(): void {
    if (this.failure) throw this.failure;
    if (this.pendingLength === 0) return;
    const joined = concatBytes(this.pending);
    const message =
      joined.length < FRAME_HEADER_SIZE
        ? `input ended inside a frame header (${joined.length} of 8 bytes)`
        : `input ended inside a frame: header announces ${parseFrameHeader(joined).length} payload bytes, ` +
          `${joined.length - FRAME_HEADER_SIZE} arrived`;
    throw this.fail(new FrameError("truncated", message, this.consumed));
  }

  /** Fills the held-back frame from the new chunk; returns what is left of the chunk. */
  private completePending(chunk: Uint8Array, frames: Frame[]): Uint8Array {
    let headerBytes = this.pendingLength;
    let taken = 0;
    if (headerBytes < FRAME_HEADER_SIZE) {
      taken = Math.min(FRAME_HEADER_SIZE - headerBytes, chunk.length);
      this.hold(chunk.subarray(0, taken));
      headerBytes = this.pendingLength;
      if (headerBytes < FRAME_HEADER_SIZE) return chunk.subarray(taken);
    }
    // The header is read once per frame; later pushes only append (a frame fed in many small
    // pieces must cost its size, not pieces × size).
    if (!this.pendingHeader) {
      const headerView = this.pending.length === 1 ? (this.pending[0] as Uint8Array) : concatBytes(this.pending);
      this.pending = [headerView];
      this.pendingHeader = parseFrameHeader(headerView);
      this.checkLength(this.pendingHeader);
    }
    const header = this.pendingHeader;
    const missing = FRAME_HEADER_SIZE + header.length - this.pendingLength;
    const available = chunk.length - taken;
    if (available < missing) {
      this.hold(chunk.subarray(taken));
      return chunk.subarray(chunk.length);
    }
    this.hold(chunk.subarray(taken, taken + missing));
    const whole = concatBytes(this.pending);
    frames.push({ ...header, payload: whole.subarray(FRAME_HEADER_SIZE), offset: this.consumed });
    this.consumed += whole.length;
    this.pending = [];
    this.pendingLength = 0;
    this.pendingHeader = undefined;
    return chunk.subarray(taken + missing);
  }

  private hold(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.pending.push(bytes);
    this.pendingLength += bytes.length;
  }

  private checkLength(header: FrameHeader): void {
    if (header.length > this.maxPayload) {
      throw this.fail(
        new FrameError(
          "frame",
          `frame payload of ${header.length} bytes exceeds the limit of ${this.maxPayload}`,
          this.consumed,
        ),
      );
    }
  }

  private fail(error: ProtocolError): ProtocolError {
    this.failure = error;
    return error;
  }
}

/** Parses a complete body into frames; throws a FrameError with the offset if it is malformed. */
export function parseFrames(body: Uint8Array): Frame[] {
  const parser = new FrameParser();
  const frames = parser.push(body);
  parser.finish();
  return frames;
}
