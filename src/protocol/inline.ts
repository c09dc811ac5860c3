/**
 * Frames for an identity-encoded `{status: ok}` answer whose payload bytes someone else writes:
 * the buffers are laid out up front (8-byte header, then room for the payload), the caller has
 * the bytes read straight into that room, and `seal` writes the header once their count and
 * whether more follow are known. The same frames ResponseEmitter makes for an identity stream —
 * the status map, then the output, in payloads of DEFAULT_MAX_FRAME_SIZE — with no byte copied.
 */
import { encode } from "./cbor.ts";
import { DEFAULT_MAX_FRAME_SIZE, FLAGS, FRAME_HEADER_SIZE, FRAME_TYPES, STREAM_FLAGS, writeFrameHeader } from "./frames.ts";
import { OK_STATUS, SERVER_STREAM_ID } from "./responses.ts";

/** One frame being filled: `bytes` from `at` on is room for `room` payload bytes. */
export interface FrameSlot {
  bytes: Uint8Array;
  at: number;
  room: number;
  first: boolean;
}

export class IdentityFramer {
  private readonly status = encode(OK_STATUS());
  private begun = false;

  constructor(
    private readonly requestId: number,
    private readonly streamId = SERVER_STREAM_ID,
  ) {}

  /** A fresh frame buffer; the first one starts with the status map. */
  next(): FrameSlot {
    const first = !this.begun;
    this.begun = true;
    const bytes = new Uint8Array(FRAME_HEADER_SIZE + DEFAULT_MAX_FRAME_SIZE);
    if (!first) return { bytes, at: FRAME_HEADER_SIZE, room: DEFAULT_MAX_FRAME_SIZE, first };
    bytes.set(this.status, FRAME_HEADER_SIZE);
    const at = FRAME_HEADER_SIZE + this.status.length;
    return { bytes, at, room: DEFAULT_MAX_FRAME_SIZE - this.status.length, first };
  }

  /**
   * The frame of `slot` (whose buffer may have been transferred: `bytes` is the one to use)
   * holding `filled` payload bytes, flagged eos when `last`.
   */
  seal(slot: FrameSlot, bytes: Uint8Array, filled: number, last: boolean): Uint8Array {
    const end = slot.at + filled;
    writeFrameHeader(bytes, 0, {
      length: end - FRAME_HEADER_SIZE,
      requestId: this.requestId,
      streamId: this.streamId,
      streamFlags: slot.first ? STREAM_FLAGS["stream-begin"] : 0,
      typeId: FRAME_TYPES["command-response"],
      flags: last ? FLAGS.COMMAND_RESPONSE_EOS : FLAGS.COMMAND_RESPONSE_CONTINUATION,
    });
    return bytes.subarray(0, end);
  }
}
