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
  private readonly decompress = new ZstdDecompress((chunk) => {
    // fzstd may hand out views of its window buffer, which it reuses: copy.
    this.output.push(chunk.slice());
  });

  decode(payload: Uint8Array): Uint8Array {
    if (payload.length === 0) return EMPTY;
    checkZstdWindow(payload);
    try {
      this.decompress.push(payload);
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
 * zstd frames announce their window in the frame header; Mercurial's zstd-8mb decoder sets
 * max_window_size 8 MiB, so we refuse larger windows rather than allocate them.
 */
function checkZstdWindow(payload: Uint8Array): void {
  // Only a payload that starts a zstd frame (magic 28 b5 2f fd) carries a header to check.
  if (payload.length < 6 || payload[0] !== 0x28 || payload[1] !== 0xb5 || payload[2] !== 0x2f || payload[3] !== 0xfd) {
    return;
  }
  const descriptor = payload[4] as number;
  const singleSegment = (descriptor & 0x20) !== 0;
  if (singleSegment) return; // window = content size, which is checked against limits downstream
  const windowDescriptor = payload[5] as number;
  const exponent = windowDescriptor >> 3;
  const mantissa = windowDescriptor & 7;
  const base = 2 ** (10 + exponent);
  const windowSize = base + (base / 8) * mantissa;
  if (windowSize > ZSTD_MAX_WINDOW) {
    throw new StreamEncodingError(`zstd window of ${windowSize} bytes exceeds zstd-8mb's 8 MiB`);
  }
}

export { EMPTY as EMPTY_BYTES };
