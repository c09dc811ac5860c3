/**
 * The payload of a bundle2 `stream2` part: a stream clone, version 2 (mercurial/streamclone.py,
 * `generatev2` and `_emit2`; what a v1 `getbundle` with `stream=1` answers, and what a
 * `none-v2;stream=v2` clone bundle holds). The part's mandatory parameters announce
 * `filecount`, `bytecount` (the sum of the files' data) and `requirements` (the store formats a
 * client needs, URL-quoted, comma-separated). The payload is one entry per file:
 *
 *     u8 destination ("s" store, "c" cache)
 *     uvarint name-length  uvarint data-length
 *     name  data
 *
 * StreamV2Counter checks that framing as the bytes go by (constant memory: the name is the only
 * field it keeps, and only up to MAX_NAME_BYTES) and, at the end, that the files and bytes are
 * the ones announced, so that a cut or padded stream is never stored as a clone bundle.
 */
import { Bundle2Error } from "./errors.ts";

/** Store paths are short; a longer name is not a stream clone. */
export const MAX_NAME_BYTES = 64 * 1024;
/** util.uvarintencode of a 64-bit size takes at most 10 bytes. */
const MAX_UVARINT_BYTES = 10;

export interface StreamV2Params {
  files: number;
  bytes: number;
  /** The `requirements` parameter, URL-decoded: e.g. "generaldelta,revlogv1,sparserevlog". */
  requirements: string;
}

type State =
  | { at: "destination" }
  | { at: "name-length"; value: number; shift: number; read: number }
  | { at: "data-length"; nameLength: number; value: number; shift: number; read: number }
  | { at: "name"; left: number; dataLength: number }
  | { at: "data"; left: number };

/** The `stream2` part's parameters, or a Bundle2Error saying which one is missing or wrong. */
export function streamV2Params(params: Map<string, string>, offset: number): StreamV2Params {
  const count = (name: string) => {
    const value = Number(params.get(name));
    if (!params.has(name) || !Number.isSafeInteger(value) || value < 0) throw new Bundle2Error(`the stream2 part has no valid ${name} parameter`, offset);
    return value;
  };
  const requirements = params.get("requirements");
  if (requirements === undefined) throw new Bundle2Error("the stream2 part has no requirements parameter", offset);
  return { files: count("filecount"), bytes: count("bytecount"), requirements: decodeURIComponent(requirements) };
}

export class StreamV2Counter {
  files = 0;
  bytes = 0;
  private state: State = { at: "destination" };

  constructor(readonly announced: StreamV2Params) {}

  feed(chunk: Uint8Array, offset: number): void {
    let i = 0;
    while (i < chunk.length) {
      const state = this.state;
      if (state.at === "name" || state.at === "data") {
        const n = Math.min(state.left, chunk.length - i);
        state.left -= n;
        i += n;
        if (state.at === "data") this.bytes += n;
        if (state.left > 0) continue;
        if (state.at === "name") this.startData(state.dataLength);
        else this.state = { at: "destination" };
        continue;
      }
      const byte = chunk[i++] as number;
      if (state.at === "destination") {
        // "s" (store) and "c" (cache) are the only destinations _makemap knows.
        if (byte !== 0x73 && byte !== 0x63) throw new Bundle2Error(`stream clone entry with destination byte ${byte}`, offset + i - 1);
        this.state = { at: "name-length", value: 0, shift: 0, read: 0 };
        continue;
      }
      state.value += (byte & 0x7f) * 2 ** state.shift;
      state.shift += 7;
      if (++state.read > MAX_UVARINT_BYTES) throw new Bundle2Error("stream clone entry with an overlong size", offset + i - 1);
      if (byte & 0x80) continue;
      if (state.at === "name-length") {
        if (state.value === 0 || state.value > MAX_NAME_BYTES) throw new Bundle2Error(`stream clone entry with a name of ${state.value} bytes`, offset + i - 1);
        this.state = { at: "data-length", nameLength: state.value, value: 0, shift: 0, read: 0 };
      } else {
        this.files++;
        this.state = { at: "name", left: state.nameLength, dataLength: state.value };
      }
    }
  }

  /** Throws unless the payload ended between entries with exactly the announced files and bytes. */
  finish(offset: number): void {
    if (this.state.at !== "destination") throw new Bundle2Error(`the stream clone ends inside an entry (${this.state.at})`, offset);
    const { files, bytes } = this.announced;
    if (this.files !== files || this.bytes !== bytes) {
      throw new Bundle2Error(`the stream clone announced ${files} files of ${bytes} bytes but holds ${this.files} files of ${this.bytes} bytes`, offset);
    }
  }

  private startData(length: number): void {
    this.state = length > 0 ? { at: "data", left: length } : { at: "destination" };
  }
}
