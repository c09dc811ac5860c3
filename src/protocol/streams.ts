/**
 * Stream content encodings (wireprotocolrpc.txt "Stream Encoding Settings"; wireprotoframing.py
 * identityencoder/zlibencoder/zstd8mbencoder and their decoders).
 *
 * A stream has at most one encoding, set by a stream-settings frame; every frame on it with the
 * `encoded` stream flag carries output of one long-lived compression context, flushed (never
 * finished) at frame batch boundaries. So decoders here are stateful, one per stream, fed every
 * encoded payload in order, and return the bytes that payload completes.
 *
 * zlib uses pako (a faithful JS port of zlib, identical in workerd and Node; the Workers
 * DecompressionStream has no way to sync-flush per frame and no backpressure). zstd-8mb decoding
 * uses fzstd, a small, dependency-free streaming Zstandard decoder: workerd has no zstd, and the
 * WebAssembly builds are far larger for the one thing we need. hgedge never *emits* zstd.
 */
import { Decompress as ZstdDecompress } from "fzstd";
import { Deflate, Inflate, Z_NO_FLUSH, Z_SYNC_FLUSH } from "pako";
import { bytes, text, type CborValue } from "./cbor.ts";
import { StreamEncodingError } from "./errors.ts";
import { concatBytes } from "./frames.ts";

export type EncodingName = "identity" | "zlib" | "zstd-8mb";

/** The order Mercurial's server prefers (wireprotoframing.py populatestreamencoders). */
export const MERCURIAL_SERVER_ORDER: readonly EncodingName[] = ["zstd-8mb", "zlib", "identity"];
/** What hgedge can produce, best first. */
export const HGEDGE_ENCODERS: readonly EncodingName[] = ["zlib", "identity"];
/** zstd-8mb decoders refuse windows larger than 8 MiB, as Mercurial's does. */
export const ZSTD_MAX_WINDOW = 8 * 1024 * 1024;

export interface StreamDecoder {
  readonly name: EncodingName;
  /** Decodes one encoded payload; returns what it completes (possibly nothing). */
  decode(payload: Uint8Array): Uint8Array;
}

export interface StreamEncoder {
  readonly name: EncodingName;
  /** Compresses data; may return nothing while the compressor buffers. */
  encode(data: Uint8Array): Uint8Array;
  /** Emits everything buffered so that the receiver can decode all input so far. */
  flush(): Uint8Array;
}

const EMPTY = new Uint8Array(0);

/**
 * A decoder for the profile a stream-settings frame named. `settings` are the values after the
 * name; Mercurial defines none and its decoders refuse any.
 */
export function createStreamDecoder(name: string, settings: readonly CborValue[] = []): StreamDecoder {
  if (settings.length > 0) {
    throw new StreamEncodingError(`${name} decoder takes no settings, got ${settings.length} value(s)`);
  }
  switch (name) {
    case "identity":
      return { name, decode: (payload) => payload };
    case "zlib":
      return new ZlibDecoder();
    case "zstd-8mb":
      return new ZstdDecoder();
    default:
      throw new StreamEncodingError(
        `unknown stream encoding "${name}": Mercurial defines identity, zlib and zstd-8mb`,
      );
  }
}

export function createStreamEncoder(name: string): StreamEncoder {
  switch (name) {
    case "identity":
      return { name, encode: (data) => data, flush: () => EMPTY };
    case "zlib":
      return new ZlibEncoder();
    default:
      throw new StreamEncodingError(`hgedge cannot encode "${name}"; it encodes ${HGEDGE_ENCODERS.join(", ")}`);
  }
}

/**
 * The encoding a Mercurial server would pick: the first name of the *server's* order that appears
 * anywhere in the client's list (wireprotoframing.py:1361-1366; the client's order is ignored).
 * `undefined` when there is none in common.
 */
export function negotiateEncoding(
  clientEncodings: readonly (string | Uint8Array)[],
  serverOrder: readonly EncodingName[] = HGEDGE_ENCODERS,
): EncodingName | undefined {
  const offered = new Set(clientEncodings.map((e) => (typeof e === "string" ? e : text(e))));
  return serverOrder.find((name) => offered.has(name));
}

/** The byte string naming an encoding in a stream-settings payload. */
export function encodingNameBytes(name: EncodingName): Uint8Array {
  return bytes(name);
}

class ZlibDecoder implements StreamDecoder {
  readonly name = "zlib";
  private readonly inflate = new Inflate();
  private output: Uint8Array[] = [];

  constructor() {
    this.inflate.onData = (chunk: Uint8Array) => this.output.push(chunk);
  }

  decode(payload: Uint8Array): Uint8Array {
    if (payload.length === 0) return EMPTY;
    if (this.inflate.ended) {
      throw new StreamEncodingError("zlib stream continued after its end marker; the sender finished it early");
    }
    this.inflate.push(payload, Z_SYNC_FLUSH);
    if (this.inflate.err) {
      throw new StreamEncodingError(`corrupt zlib stream: ${this.inflate.msg || this.inflate.err}`);
    }
    return this.take();
  }

  private take(): Uint8Array {
    if (this.output.length === 0) return EMPTY;
    const out = concatBytes(this.output);
    this.output = [];
    return out;
  }
}

class ZlibEncoder implements StreamEncoder {
  readonly name = "zlib";
  private readonly deflate = new Deflate();
  private output: Uint8Array[] = [];

  constructor() {
    this.deflate.onData = (chunk: Uint8Array) => this.output.push(chunk);
  }

  encode(data: Uint8Array): Uint8Array {
    if (data.length > 0) this.deflate.push(data, Z_NO_FLUSH);
    return this.take();
  }

  /** Z_SYNC_FLUSH, as Mercurial's zlibencoder.flush: output ends with 00 00 ff ff. */
  flush(): Uint8Array {
    this.deflate.push(EMPTY, Z_SYNC_FLUSH);
    return this.take();
  }

  private take(): Uint8Array {
    if (this.deflate.err) throw new StreamEncodingError(`zlib encoder failed: ${this.deflate.msg}`);
    if (this.output.length === 0) return EMPTY;
    const out = concatBytes(this.output);
    this.output = [];
    return out;
  }
}

class ZstdDecoder implements StreamDecoder {
  readonly name = "zstd-8mb";
  private output: Uint8Array[] = [];
  /** Bytes held until the stream's frame header is whole and its window checked. */
  private header: Uint8Array[] | undefined = [];
  private readonly decompress = new ZstdDecompress((chunk) => {
    // fzstd may hand out views of its window buffer, which it reuses: copy.
    this.output.push(chunk.slice());
  });

  decode(payload: Uint8Array): Uint8Array {
    if (payload.length === 0) return EMPTY;
    let input = payload;
    if (this.header) {
      // fzstd allocates the window a frame header declares (up to 2 GiB): check it first.
      this.header.push(payload);
      input = concatBytes(this.header);
      const window = zstdWindowSize(input);
      if (window === undefined) {
        this.header = [input];
        return EMPTY;
      }
      if (window > ZSTD_MAX_WINDOW) {
        throw new StreamEncodingError(`zstd frame declares a ${window}-byte window, over zstd-8mb's 8 MiB`);
      }
      this.header = undefined;
    }
    try {
      this.decompress.push(input);
    } catch (error) {
      throw new StreamEncodingError(`corrupt zstd stream: ${(error as Error).message}`);
    }
    if (this.output.length === 0) return EMPTY;
    const out = concatBytes(this.output);
    this.output = [];
    return out;
  }
}

/**
 * The window a zstd frame header declares (RFC 8878 §3.1.1.1), or undefined while the header is
 * incomplete. A single-segment frame's window is its content size. Mercurial's zstd-8mb decoder
 * refuses windows over 8 MiB (max_window_size), and so do we, before anything is allocated.
 * Mercurial's encoder writes one frame per stream, so the first frame header is the one checked.
 */
export function zstdWindowSize(b: Uint8Array): number | undefined {
  if (b.length < 5) return undefined;
  if (b[0] !== 0x28 || b[1] !== 0xb5 || b[2] !== 0x2f || b[3] !== 0xfd) {
    throw new StreamEncodingError("not a zstd frame: the stream must start with the zstd magic number");
  }
  const descriptor = b[4] as number;
  const singleSegment = (descriptor & 0x20) !== 0;
  const fcsFlag = descriptor >> 6;
  const dictionaryBytes = [0, 1, 2, 4][descriptor & 3] as number;
  const fcsBytes = fcsFlag === 0 ? (singleSegment ? 1 : 0) : 1 << fcsFlag;
  const windowAt = 5;
  const fcsAt = windowAt + (singleSegment ? 0 : 1) + dictionaryBytes;
  if (b.length < fcsAt + fcsBytes) return undefined;
  if (!singleSegment) {
    const windowDescriptor = b[windowAt] as number;
    const base = 2 ** (10 + (windowDescriptor >> 3));
    return base + (base / 8) * (windowDescriptor & 7);
  }
  let size = 0;
  for (let i = fcsBytes - 1; i >= 0; i--) size = size * 256 + (b[fcsAt + i] as number);
  return fcsBytes === 2 ? size + 256 : size;
}

export { EMPTY as EMPTY_BYTES };
