/**
 * Streaming compression for clone bundles with workerd's native `node:zlib` (the Worker's own
 * thread; its CPU time is the invocation's): zstd for `zstd-v2` bundles, zlib's deflate for
 * `gzip-v2` (Mercurial's "gzip" bundle engine writes the zlib format: zlib.compressobj()).
 *
 * Streaming because workerd's one-shot `zstdCompressSync` fails on inputs of about 1 MiB and
 * more, and because a bundle must never be held whole: each pushed chunk gives back what the
 * engine produced so far, and the caller writes it on. Levels are the engines' defaults, which
 * are Mercurial's own (zstd 3, zlib 6), so a bundle is about the size the origin would send.
 */
import * as zlib from "node:zlib";

export type BundleCompression = "zstd" | "gzip";

/**
 * workerd's zstd compressor fails ("Unexpected end of file") once one write's output fills its
 * output buffer (the default 16 KiB chunkSize): so the buffer is OUTPUT_BUFFER_BYTES and no write
 * is larger than MAX_WRITE_BYTES, whose output (at most its size plus a few bytes) always fits.
 */
const OUTPUT_BUFFER_BYTES = 1 << 20;
const MAX_WRITE_BYTES = 256 * 1024;

/** The subset of a Node Transform stream this uses. */
interface NodeTransform {
  on(event: "data", listener: (chunk: Uint8Array) => void): unknown;
  once(event: "end", listener: () => void): unknown;
  once(event: "error", listener: (error: Error) => void): unknown;
  write(chunk: Uint8Array, callback: (error?: Error | null) => void): boolean;
  end(): unknown;
  destroy(): unknown;
}

export class ChunkCompressor {
  private output: Uint8Array[] = [];
  private failure: Error | undefined;
  private readonly ended: Promise<void>;

  constructor(private readonly engine: NodeTransform) {
    // Copied: the engine may hand out views of a buffer it reuses.
    engine.on("data", (chunk) => this.output.push(new Uint8Array(chunk)));
    this.ended = new Promise((resolve, reject) => {
      engine.once("end", resolve);
      engine.once("error", (error) => {
        this.failure = error;
        reject(error);
      });
    });
    this.ended.catch(() => undefined);
  }

  /** Compresses `bytes`; answers the compressed bytes the engine has produced since the last call. */
  async push(bytes: Uint8Array): Promise<Uint8Array[]> {
    for (let at = 0; at < bytes.length; at += MAX_WRITE_BYTES) {
      if (this.failure) throw this.failure;
      const piece = bytes.subarray(at, at + MAX_WRITE_BYTES);
      await new Promise<void>((resolve, reject) => this.engine.write(piece, (error) => (error ? reject(error) : resolve())));
    }
    return this.take();
  }

  /** Ends the stream; answers the rest of it. */
  async finish(): Promise<Uint8Array[]> {
    this.engine.end();
    await this.ended;
    return this.take();
  }

  abort(): void {
    this.engine.destroy();
  }

  private take(): Uint8Array[] {
    const out = this.output;
    this.output = [];
    return out;
  }
}

/** workerd's node:zlib has zstd; the Node 20 type definitions this project builds with do not. */
const zstdCompress = (zlib as unknown as { createZstdCompress?: (options: { chunkSize: number }) => NodeTransform }).createZstdCompress;

export function createCompressor(compression: BundleCompression): ChunkCompressor {
  if (compression === "gzip") return new ChunkCompressor(zlib.createDeflate() as unknown as NodeTransform);
  if (!zstdCompress) throw new Error("this runtime's node:zlib has no createZstdCompress (workerd has it; Node 20 does not)");
  return new ChunkCompressor(zstdCompress({ chunkSize: OUTPUT_BUFFER_BYTES }));
}
