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
    if (this.failure) throw this.failure;
    await new Promise<void>((resolve, reject) => this.engine.write(bytes, (error) => (error ? reject(error) : resolve())));
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
const zstdCompress = (zlib as unknown as { createZstdCompress?: () => NodeTransform }).createZstdCompress;

export function createCompressor(compression: BundleCompression): ChunkCompressor {
  if (compression === "gzip") return new ChunkCompressor(zlib.createDeflate() as unknown as NodeTransform);
  if (!zstdCompress) throw new Error("this runtime's node:zlib has no createZstdCompress (workerd has it; Node 20 does not)");
  return new ChunkCompressor(zstdCompress());
}
