/**
 * Stream content encodings (wireprotocolrpc.txt "Stream Encoding Settings"; wireprotoframing.py
 * identityencoder/zlibencoder/zstd8mbencoder and their decoders).
 *
 * A stream has at most one encoding, set by a stream-settings frame; every frame on it with the
 * `encoded` stream flag carries output of one long-lived compression context, flushed (never
 * finished) at frame batch boundaries. So decoders here are stateful, one per stream, fed every
 * encoded payload in order, and return the bytes that payload completes.
 *
 * zlib and zstd are the runtime's native ones (`node:zlib`, see native.ts): workerd has both. The
 * Workers DecompressionStream cannot be used: it cannot flush per frame, throws on close() of an
 * unfinished stream (Mercurial never finishes one) and has no zstd. Node 20, which runs the CLIs
 * and benchmarks, has no zstd: they install a decoder with `useZstdFallback`.
 */
import { bytes, text, type CborValue } from "./cbor/values.ts";
import { StreamEncodingError } from "./errors.ts";
import { FLUSH, nativeZstdAvailable, zlibDeflater, zlibInflater, zstdCompressor, zstdDecompressor, type NativeCodec } from "./native.ts";

export type EncodingName = "identity" | "zlib" | "zstd-8mb";

/** The order Mercurial's server prefers (wireprotoframing.py populatestreamencoders). */
export const MERCURIAL_SERVER_ORDER: readonly EncodingName[] = ["zstd-8mb", "zlib", "identity"];
/** What hgedge can produce, best first (Mercurial's order). */
export const HGEDGE_ENCODERS: readonly EncodingName[] = nativeZstdAvailable() ? MERCURIAL_SERVER_ORDER : ["zlib", "identity"];
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
      return zstdDecoder();
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
      return new CodecEncoder("zlib", zlibDeflater(), FLUSH.Z_NO_FLUSH, FLUSH.Z_SYNC_FLUSH);
    default:
      if (name === "zstd-8mb" && nativeZstdAvailable()) {
        return new CodecEncoder("zstd-8mb", zstdCompressor(), FLUSH.ZSTD_e_continue, FLUSH.ZSTD_e_flush);
      }
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

/** A zstd-8mb decoder that a runtime without native zstd uses instead (Node 20: the CLIs). */
let zstdFallback: (() => StreamDecoder) | undefined;

/**
 * Installs the zstd-8mb decoder used where `node:zlib` has no zstd. Only code that runs in such a
 * runtime calls it (scripts/zstd-fallback.ts for Node 20); in workerd the native one is always used.
 */
export function useZstdFallback(factory: () => StreamDecoder): void {
  zstdFallback = factory;
}

function zstdDecoder(): StreamDecoder {
  if (nativeZstdAvailable()) return new ZstdDecoder();
  if (zstdFallback) return zstdFallback();
  throw new StreamEncodingError(
    "this runtime's node:zlib has no zstd (Node < 22.15): run in workerd, or install a decoder with useZstdFallback (scripts/zstd-fallback.ts)",
  );
}

class ZlibDecoder implements StreamDecoder {
  readonly name = "zlib";
  private readonly inflate = zlibInflater();
  /** The zlib stream's end marker went by: Mercurial never finishes a stream, nothing may follow. */
  private ended = false;

  decode(payload: Uint8Array): Uint8Array {
    if (payload.length === 0) return EMPTY;
    if (this.ended) {
      throw new StreamEncodingError("zlib stream continued after its end marker; the sender finished it early");
    }
    const out = this.inflate.process(payload, FLUSH.Z_SYNC_FLUSH);
    // Input left over is past the end marker: ignored here as Python's decompressobj does (it
    // becomes unused_data), refused from the next payload on.
    if (this.inflate.unconsumed > 0) {
      this.ended = true;
      if (this.inflate.unconsumed === payload.length) {
        throw new StreamEncodingError("zlib stream continued after its end marker; the sender finished it early");
      }
    }
    return out;
  }
}

/**
 * zstd-8mb: the decompressor itself refuses frames whose window is over 8 MiB (windowLogMax 23)
 * before allocating anything, and decodes each block as soon as it is whole, however short.
 */
class ZstdDecoder implements StreamDecoder {
  readonly name = "zstd-8mb";
  private readonly decompress = zstdDecompressor();

  decode(payload: Uint8Array): Uint8Array {
    if (payload.length === 0) return EMPTY;
    try {
      return this.decompress.process(payload, FLUSH.ZSTD_e_continue);
    } catch (error) {
      // zstd's ZSTD_error_frameParameter_windowTooLarge, the one refusal worth its own words.
      if (error instanceof StreamEncodingError && /too much memory/i.test(error.message)) {
        throw new StreamEncodingError(`zstd frame declares a window over zstd-8mb's 8 MiB (${error.reason})`);
      }
      throw error;
    }
  }
}

/** zlib or zstd-8mb output: compressed as it comes, flushed so that the receiver decodes everything so far. */
class CodecEncoder implements StreamEncoder {
  constructor(
    readonly name: EncodingName,
    private readonly codec: NativeCodec,
    private readonly keep: number,
    private readonly flushMode: number,
  ) {}

  encode(data: Uint8Array): Uint8Array {
    return data.length > 0 ? this.codec.process(data, this.keep) : EMPTY;
  }

  /** zlib: Z_SYNC_FLUSH, as Mercurial's zlibencoder.flush (output ends 00 00 ff ff); zstd: a block flush. */
  flush(): Uint8Array {
    return this.codec.process(EMPTY, this.flushMode);
  }
}

export { EMPTY as EMPTY_BYTES };
