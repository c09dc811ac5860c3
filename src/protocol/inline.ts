/**
 * Frames for an identity-encoded `{status: ok}` answer whose payload bytes are read elsewhere
 * in large contiguous pieces: the frames are cut out of those pieces as views, with the 8-byte
 * headers written beside them, so no byte of the payload is copied. The same frames
 * ResponseEmitter makes for an identity stream — the status map, then the output, in payloads
 * of DEFAULT_MAX_FRAME_SIZE, the eos frame the first that is not full — byte for byte.
 */
import { encode } from "./cbor/encode.ts";
import { DEFAULT_MAX_FRAME_SIZE, FLAGS, FRAME_HEADER_SIZE, FRAME_TYPES, STREAM_FLAGS, writeFrameHeader } from "./frames.ts";
import { OK_STATUS, SERVER_STREAM_ID } from "./responses/write.ts";

export class IdentityFramer {
  private readonly status = encode(OK_STATUS());
  private begun = false;
  /** Payload bytes already in the current (not yet full) frame: the status map at first. */
  private inFrame = 0;

  constructor(
    private readonly requestId: number,
    private readonly streamId = SERVER_STREAM_ID,
  ) {}

  /**
   * The chunks that send `data` (the next stored bytes, any length): headers, the status map in
   * the first frame, and views of `data`. With `last`, the final frame carries eos; otherwise
   * `data`'s length must leave the frames full, i.e. be `room()` plus a multiple of the frame size.
   */
  frames(data: Uint8Array, last: boolean): Uint8Array[] {
    const out: Uint8Array[] = [];
    let at = 0;
    for (;;) {
      const first = !this.begun;
      const prefix = first ? this.status.length : 0;
      const take = Math.min(DEFAULT_MAX_FRAME_SIZE - prefix, data.length - at);
      const full = prefix + take === DEFAULT_MAX_FRAME_SIZE;
      if (!full && !last) throw new Error("IdentityFramer.frames: only the last piece may end inside a frame");
      out.push(this.header(prefix + take, first, !full));
      if (first) out.push(this.status);
      if (take > 0) out.push(data.subarray(at, at + take));
      this.begun = true;
      at += take;
      if (!full) return out;
      if (at === data.length && !last) return out;
    }
  }

  /** Payload bytes that fill the frames exactly: `room()` + k × DEFAULT_MAX_FRAME_SIZE. */
  room(): number {
    return this.begun ? DEFAULT_MAX_FRAME_SIZE : DEFAULT_MAX_FRAME_SIZE - this.status.length;
  }

  private header(length: number, first: boolean, eos: boolean): Uint8Array {
    const header = new Uint8Array(FRAME_HEADER_SIZE);
    writeFrameHeader(header, 0, {
      length,
      requestId: this.requestId,
      streamId: this.streamId,
      streamFlags: first ? STREAM_FLAGS["stream-begin"] : 0,
      typeId: FRAME_TYPES["command-response"],
      flags: eos ? FLAGS.COMMAND_RESPONSE_EOS : FLAGS.COMMAND_RESPONSE_CONTINUATION,
    });
    return header;
  }
}
