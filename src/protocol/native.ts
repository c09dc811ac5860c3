/**
 * The runtime's own zlib and zstd (`node:zlib`: native in workerd under `nodejs_compat`, and in
 * Node), driven one call at a time and synchronously, so that the protocol layer stays
 * synchronous (bytes in, values out) and a stream's compression context lives across frames.
 *
 * Why not the public API: `node:zlib` offers one-shot synchronous calls (which start a new
 * context each time: useless for Mercurial's one context per stream, flushed per frame) and
 * Transform streams (asynchronous: every frame would cost a trip through the event loop and every
 * caller up to the HTTP layer would become asynchronous). Both runtimes build those on the same
 * engine method, `_handle.writeSync(flush, in, inOff, inLen, out, outOff, outLen)`, which leaves
 * `[availOut, availIn]` in `_writeState` and, on failure, destroys the engine with the error
 * (`errored`). NativeCodec calls it the way their own synchronous path does, without closing the
 * engine afterwards. Every codec test runs
 * through here in both runtimes, so a runtime that changes it fails loudly, never silently.
 */
import * as zlib from "node:zlib";
import { StreamEncodingError } from "./errors.ts";
import { concatBytes } from "./frames.ts";

/** The flush modes used here (zlib.h and zstd.h values, the same in every runtime). */
export const FLUSH = {
  /** zlib: keep what fits the next block. */
  Z_NO_FLUSH: 0,
  /** zlib: emit everything so far, ending on a byte boundary with an empty stored block (00 00 ff ff). */
  Z_SYNC_FLUSH: 2,
  /** zstd: keep what fits the next block. */
  ZSTD_e_continue: 0,
  /** zstd: close the current block so that the receiver can decode everything so far. */
  ZSTD_e_flush: 1,
} as const;

/** What `writeSync` needs of a `node:zlib` engine (not in the public typings). */
interface Engine {
  _handle: { writeSync(flush: number, input: Uint8Array, inOff: number, inLen: number, out: Uint8Array, outOff: number, outLen: number): void } | null;
  _writeState: Uint32Array;
  destroyed: boolean;
  errored: Error | null;
  on(event: "error", listener: (error: Error) => void): unknown;
  destroy(): unknown;
}

/** Output buffer size: large enough that a 32 KiB frame rarely needs more than one or two. */
const OUTPUT_BYTES = 64 * 1024;
const EMPTY = new Uint8Array(0);

/** `node:zlib` with the zstd additions workerd and Node ≥ 22.15 have (absent from Node 20's typings). */
export interface NodeZlib {
  createInflate(options?: object): unknown;
  createDeflate(options?: object): unknown;
  createZstdDecompress?(options?: object): unknown;
  createZstdCompress?(options?: object): unknown;
  constants: Record<string, number>;
}

const runtimeZlib = zlib as unknown as NodeZlib;

/** True when this runtime's `node:zlib` has zstd (workerd does; Node 20 does not). */
export function nativeZstdAvailable(): boolean {
  return typeof runtimeZlib.createZstdDecompress === "function" && typeof runtimeZlib.createZstdCompress === "function";
}

/** zstd's parameter numbers (zstd.h), the same in every runtime that has zstd. */
const ZSTD_c_compressionLevel = 100;
const ZSTD_c_windowLog = 101;
const ZSTD_d_windowLogMax = 100;

/** Mercurial's zstd-8mb: decoders refuse windows over 8 MiB = 2^23 (max_window_size). */
export const ZSTD_WINDOW_LOG_MAX = 23;

/** A long-lived compression or decompression context, fed synchronously. */
export class NativeCodec {
  private readonly engine: Engine;
  private spare: Uint8Array | undefined;
  private failure: StreamEncodingError | undefined;
  /**
   * Input bytes the last `process` call left untaken: the engine wants no more (a zlib stream
   * past its end marker).
   */
  unconsumed = 0;

  constructor(
    engine: unknown,
    /** What to call the codec in error messages ("zlib stream", "zstd stream", ...). */
    private readonly what: string,
  ) {
    this.engine = engine as Engine;
    if (typeof this.engine._handle?.writeSync !== "function" || !(this.engine._writeState instanceof Uint32Array)) {
      throw new StreamEncodingError(`this runtime's node:zlib has no synchronous engine for ${what}: hgedge needs workerd (nodejs_compat) or Node`);
    }
    // The engine also emits its failure as an 'error' event later on; it was already thrown here.
    this.engine.on("error", () => undefined);
  }

  /** Feeds `input` with `flush`; returns all the output it produced (possibly nothing). */
  process(input: Uint8Array, flush: number): Uint8Array {
    if (this.failure) throw this.failure;
    const handle = this.engine._handle;
    if (!handle) throw this.fail(`${this.what} was already closed`);
    const state = this.engine._writeState;
    const pieces: Uint8Array[] = [];
    let inOff = 0;
    let inLen = input.length;
    for (;;) {
      const out = this.spare ?? new Uint8Array(OUTPUT_BYTES);
      this.spare = undefined;
      handle.writeSync(flush, input, inOff, inLen, out, 0, out.length);
      if (this.engine.destroyed) throw this.fail(`corrupt ${this.what}: ${this.engine.errored?.message ?? "the engine failed"}`);
      const availOut = state[0] as number;
      const availIn = state[1] as number;
      const produced = out.length - availOut;
      const taken = inLen - availIn;
      pieces.push(this.keep(out, produced));
      inOff += taken;
      inLen = availIn;
      // A full output buffer means there may be more. Input left over after progress is the next
      // zstd frame (the engine stops at each frame's end); left over without progress, the engine
      // wants no more (a zlib stream past its end marker).
      if (availOut !== 0 && (availIn === 0 || (taken === 0 && produced === 0))) break;
    }
    this.unconsumed = inLen;
    return join(pieces);
  }

  /** Frees the native context (its window and tables) now rather than at collection. */
  close(): void {
    if (!this.engine.destroyed) this.engine.destroy();
  }

  /**
   * The produced part of `out`: itself when it is mostly full (no copy), else a copy of its own
   * size while the buffer serves the next call (a 64 KiB buffer must not stay alive for a few bytes).
   */
  private keep(out: Uint8Array, produced: number): Uint8Array {
    if (produced >= out.length / 2) return out.subarray(0, produced);
    this.spare = out;
    return produced === 0 ? EMPTY : out.slice(0, produced);
  }

  private fail(message: string): StreamEncodingError {
    this.failure = new StreamEncodingError(message);
    this.close();
    return this.failure;
  }
}

function join(pieces: Uint8Array[]): Uint8Array {
  const filled = pieces.filter((p) => p.length > 0);
  return filled.length === 0 ? EMPTY : concatBytes(filled);
}

/** A zlib (RFC 1950) decompression context. */
export function zlibInflater(): NativeCodec {
  return new NativeCodec(runtimeZlib.createInflate(), "zlib stream");
}

/** A zlib compression context at zlib's default level, as Mercurial's zlib.compressobj(). */
export function zlibDeflater(): NativeCodec {
  return new NativeCodec(runtimeZlib.createDeflate(), "zlib encoder");
}

/** A zstd decompression context refusing windows over 8 MiB by itself (zstd-8mb). */
export function zstdDecompressor(): NativeCodec {
  const create = runtimeZlib.createZstdDecompress;
  if (!create) throw new StreamEncodingError("this runtime's node:zlib has no zstd");
  return new NativeCodec(create({ params: { [ZSTD_d_windowLogMax]: ZSTD_WINDOW_LOG_MAX } }), "zstd stream");
}

/**
 * A zstd compression context at level 3 (Mercurial's zstd8mbencoder) whose window stays within
 * 8 MiB, so that zstd-8mb decoders accept its output. Streaming, never `zstdCompressSync`, which
 * fails in workerd on inputs of about 1 MiB and more.
 */
export function zstdCompressor(): NativeCodec {
  const create = runtimeZlib.createZstdCompress;
  if (!create) throw new StreamEncodingError("this runtime's node:zlib has no zstd");
  return new NativeCodec(create({ params: { [ZSTD_c_compressionLevel]: 3, [ZSTD_c_windowLog]: ZSTD_WINDOW_LOG_MAX } }), "zstd encoder");
}
