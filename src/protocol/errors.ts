/**
 * The only errors the protocol layer throws. Each carries a stable `code` (for logs, metrics and
 * tests) and, where the input was a byte stream, the `offset` of the first byte that could not be
 * accepted. Messages say what was wrong and, where it helps, what a caller should do about it.
 */

export type ProtocolErrorCode =
  /** A frame header or payload does not fit the framing rules (wireprotocolrpc.txt). */
  | "frame"
  /** The input ended in the middle of a frame. */
  | "truncated"
  /** Bytes are not the CBOR subset Mercurial's cborutil accepts. */
  | "cbor-decode"
  /** A value cannot be encoded in Mercurial's CBOR subset (text string, float, ...). */
  | "cbor-encode"
  /** A stream content encoding is unknown, misconfigured or its data is corrupt. */
  | "stream-encoding"
  /** Frames arrived in an order or shape that the response/request model forbids. */
  | "sequence"
  /** A bundle2 stream is malformed, truncated, or carries an error part (bundle2.py). */
  | "bundle2"
  /** A wire protocol v1 answer is not what the command returns (wireprotoserver.py). */
  | "v1-response";

export class ProtocolError extends Error {
  override readonly name: string = "ProtocolError";
  constructor(
    readonly code: ProtocolErrorCode,
    /** What was wrong, without the offset. */
    readonly reason: string,
    /** Byte offset of the offending input, counted from the start of the stream fed so far. */
    readonly offset?: number,
  ) {
    super(offset === undefined ? reason : `${reason} (at byte ${offset})`);
  }
}

export class FrameError extends ProtocolError {
  override readonly name = "FrameError";
}

export class CborDecodeError extends ProtocolError {
  override readonly name = "CborDecodeError";
  constructor(message: string, offset?: number) {
    super("cbor-decode", message, offset);
  }
}

export class CborEncodeError extends ProtocolError {
  override readonly name = "CborEncodeError";
  constructor(message: string) {
    super("cbor-encode", message);
  }
}

export class StreamEncodingError extends ProtocolError {
  override readonly name = "StreamEncodingError";
  constructor(message: string) {
    super("stream-encoding", message);
  }
}

export class SequenceError extends ProtocolError {
  override readonly name = "SequenceError";
  constructor(message: string, offset?: number) {
    super("sequence", message, offset);
  }
}

export class Bundle2Error extends ProtocolError {
  override readonly name = "Bundle2Error";
  constructor(message: string, offset?: number) {
    super("bundle2", message, offset);
  }
}

export class V1ResponseError extends ProtocolError {
  override readonly name = "V1ResponseError";
  constructor(message: string) {
    super("v1-response", message);
  }
}
