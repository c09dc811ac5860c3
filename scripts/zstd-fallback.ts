/**
 * zstd-8mb decoding for Node 20, whose `node:zlib` has no zstd: the CLIs, benchmarks and Node
 * tests install it with `installZstdFallback()`. Never imported by the Worker (workerd's native
 * decoder enforces the window itself and decodes short frames at once).
 *
 * fzstd is a small, dependency-free streaming Zstandard decoder in JavaScript. It allocates the
 * window each frame header declares (up to 2 GiB), so every header is checked here first against
 * zstd-8mb's 8 MiB before fzstd sees any of the frame. Its known limit: it holds back the start of
 * a stream until it has 18 bytes, so a flushed first block shorter than that comes out with the
 * next bytes (test/node/differential.test.ts pins it).
 */
import { Decompress } from "fzstd";
import { StreamEncodingError } from "../src/protocol/errors.ts";
import { concatBytes } from "../src/protocol/frames.ts";
import { ZSTD_MAX_WINDOW, useZstdFallback, type StreamDecoder } from "../src/protocol/streams.ts";
import { nativeZstdAvailable } from "../src/protocol/native.ts";

const EMPTY = new Uint8Array(0);

/** Makes zstd-8mb decodable in this process when its `node:zlib` has no zstd (no-op otherwise). */
export function installZstdFallback(): void {
  if (!nativeZstdAvailable()) useZstdFallback(() => new FzstdDecoder());
}

// Importing the module is enough: entry points need only `import "./zstd-fallback.ts"`.
installZstdFallback();

class FzstdDecoder implements StreamDecoder {
  readonly name = "zstd-8mb";
  private output: Uint8Array[] = [];
  /** The start of a frame or block header that is not whole yet: not given to fzstd before it is. */
  private held: Uint8Array = EMPTY;
  private readonly frames = new ZstdFrameScanner();
  private readonly decompress = new Decompress((chunk) => {
    // fzstd may hand out views of its window buffer, which it reuses: copy.
    this.output.push(chunk.slice());
  });

  decode(payload: Uint8Array): Uint8Array {
    if (payload.length === 0) return EMPTY;
    const input = this.held.length === 0 ? payload : concatBytes([this.held, payload]);
    const whole = this.frames.scan(input);
    this.held = input.subarray(whole);
    if (whole === 0) return EMPTY;
    try {
      this.decompress.push(input.subarray(0, whole));
    } catch (error) {
      throw new StreamEncodingError(`corrupt zstd stream: ${(error as Error).message}`);
    }
    if (this.output.length === 0) return EMPTY;
    const out = concatBytes(this.output);
    this.output = [];
    return out;
  }
}

const ZSTD_MAGIC = 0xfd2fb528;
/** Skippable frames (RFC 8878 §3.1.2): magic 0x184D2A5?, a 4-byte size, that many bytes. */
const ZSTD_SKIPPABLE_MASK = 0xfffffff0;
const ZSTD_SKIPPABLE_MAGIC = 0x184d2a50;

/**
 * Follows a zstd stream's structure (RFC 8878 §3.1) — frame header, blocks (3-byte headers with
 * their sizes), optional checksum, next frame — without decompressing, so that the window of
 * every frame is known before its bytes reach the decoder. State carries over between calls;
 * each call is given the bytes the previous one did not take, then new ones.
 */
class ZstdFrameScanner {
  /** Bytes of the current block, checksum or skippable frame still to pass over. */
  private skip = 0;
  /** What the next header is, once `skip` is done. */
  private phase: "frame" | "block" = "frame";
  /** The current frame has a 4-byte checksum after its last block. */
  private checksum = false;
  private checksumNext = false;

  /** How many bytes of `input`, from its start, are past the headers checked so far. */
  scan(input: Uint8Array): number {
    let at = 0;
    for (;;) {
      if (this.skip > 0) {
        const passed = Math.min(this.skip, input.length - at);
        this.skip -= passed;
        at += passed;
        if (this.skip > 0) return at;
      }
      if (this.checksumNext) {
        this.checksumNext = false;
        this.skip = 4;
        continue;
      }
      if (at === input.length) return at;
      const headerLength = this.phase === "frame" ? this.frameHeader(input.subarray(at)) : this.blockHeader(input.subarray(at));
      if (headerLength === undefined) return at; // hold the incomplete header
      at += headerLength;
    }
  }

  private frameHeader(b: Uint8Array): number | undefined {
    if (b.length < 4) return undefined;
    const magic = littleEndian32(b, 0);
    if ((magic & ZSTD_SKIPPABLE_MASK) >>> 0 === ZSTD_SKIPPABLE_MAGIC) {
      if (b.length < 8) return undefined;
      this.skip = littleEndian32(b, 4);
      return 8; // then another frame
    }
    if (magic !== ZSTD_MAGIC) throw new StreamEncodingError("not a zstd frame: each frame must start with the zstd magic number");
    const length = zstdFrameHeaderLength(b);
    if (length === undefined || b.length < length) return undefined;
    const window = zstdWindowSize(b) as number;
    if (window > ZSTD_MAX_WINDOW) throw new StreamEncodingError(`zstd frame declares a ${window}-byte window, over zstd-8mb's 8 MiB`);
    this.checksum = zstdFrameLayout(b[4] as number).checksum;
    this.phase = "block";
    return length;
  }

  private blockHeader(b: Uint8Array): number | undefined {
    if (b.length < 3) return undefined;
    const header = (b[0] as number) | ((b[1] as number) << 8) | ((b[2] as number) << 16);
    const type = (header >> 1) & 3;
    if (type === 3) throw new StreamEncodingError("corrupt zstd stream: reserved block type");
    const last = (header & 1) === 1;
    // An RLE block carries one byte, repeated Block_Size times; raw and compressed ones carry Block_Size bytes.
    this.skip = type === 1 ? 1 : header >>> 3;
    this.phase = last ? "frame" : "block";
    this.checksumNext = last && this.checksum;
    return 3;
  }
}

function littleEndian32(b: Uint8Array, at: number): number {
  return ((b[at] as number) | ((b[at + 1] as number) << 8) | ((b[at + 2] as number) << 16) | ((b[at + 3] as number) << 24)) >>> 0;
}

/** What a frame header's descriptor byte (RFC 8878 §3.1.1.1.1) says about the header's layout. */
function zstdFrameLayout(descriptor: number) {
  const singleSegment = (descriptor & 0x20) !== 0;
  const fcsFlag = descriptor >> 6;
  const dictionaryBytes = [0, 1, 2, 4][descriptor & 3] as number;
  const fcsBytes = fcsFlag === 0 ? (singleSegment ? 1 : 0) : 1 << fcsFlag;
  const fcsAt = 5 + (singleSegment ? 0 : 1) + dictionaryBytes;
  return { singleSegment, fcsBytes, fcsAt, headerLength: fcsAt + fcsBytes, checksum: (descriptor & 0x04) !== 0 };
}

/** The length of the frame header starting `b` (magic included), once its descriptor is there. */
function zstdFrameHeaderLength(b: Uint8Array): number | undefined {
  return b.length < 5 ? undefined : zstdFrameLayout(b[4] as number).headerLength;
}

/**
 * The window a zstd frame header declares (RFC 8878 §3.1.1.1), or undefined while the header is
 * incomplete. A single-segment frame's window is its content size. Mercurial's zstd-8mb decoder
 * refuses windows over 8 MiB (max_window_size), and so do we, before anything is allocated.
 * Every frame of a stream is checked (ZstdFrameScanner), though Mercurial writes one per stream.
 */
export function zstdWindowSize(b: Uint8Array): number | undefined {
  if (b.length < 5) return undefined;
  if (b[0] !== 0x28 || b[1] !== 0xb5 || b[2] !== 0x2f || b[3] !== 0xfd) {
    throw new StreamEncodingError("not a zstd frame: the stream must start with the zstd magic number");
  }
  const { singleSegment, fcsBytes, fcsAt, headerLength } = zstdFrameLayout(b[4] as number);
  if (b.length < headerLength) return undefined;
  if (!singleSegment) {
    const windowDescriptor = b[5] as number;
    const base = 2 ** (10 + (windowDescriptor >> 3));
    return base + (base / 8) * (windowDescriptor & 7);
  }
  let size = 0;
  for (let i = fcsBytes - 1; i >= 0; i--) size = size * 256 + (b[fcsAt + i] as number);
  return fcsBytes === 2 ? size + 256 : size;
}

