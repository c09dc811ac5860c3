/**
 * Reading the streams hgedge passes on (origin and R2 bodies), cheaply per byte, and with a limit
 * on silence: an origin that stalls must not hold a client, an upload or a Worker invocation
 * open forever.
 */

export class OriginStalled extends Error {
  override readonly name = "OriginStalled";
}

/** How much one read of a byte stream asks for. */
export const READ_BYTES = 64 * 1024;

/** What reads a stream of bytes chunk by chunk (a stream's default reader, or a ByteReader). */
export interface ChunkReader {
  read(): Promise<ReadableStreamReadResult<Uint8Array>>;
  cancel(reason?: unknown): Promise<void>;
}

/**
 * Reads a stream of bytes in chunks of up to READ_BYTES; a read that gets no answer for `ms`
 * fails with OriginStalled, and the source is cancelled (no limit when `ms` is undefined).
 *
 * Two things keep the cost per byte down; both matter because every chunk of a fast origin
 * passes through JavaScript (BENCHMARKS.md, "Memory while streaming"):
 * - A byte stream (a fetch or R2 body) is read with a BYOB reader into READ_BYTES buffers. Its
 *   default reader hands out whatever the socket gave, about 4 KiB: 260 000 trips through the
 *   isolate per GiB instead of 16 000, each leaving garbage behind.
 * - One watchdog timer per stream, re-armed only when it fires, instead of a timer and a racing
 *   promise per read.
 */
export class ByteReader implements ChunkReader {
  private readonly reader: ReadableStreamBYOBReader | ReadableStreamDefaultReader<Uint8Array>;
  private readonly byob: boolean;
  /** A read buffer given back by a short read, for the next one. */
  private spare: ArrayBuffer | undefined;
  private waitingSince: number | undefined;
  private failWaiting: ((error: OriginStalled) => void) | undefined;
  private watchdog: ReturnType<typeof setTimeout> | undefined;

  constructor(
    stream: ReadableStream<Uint8Array>,
    private readonly ms: number | undefined,
  ) {
    let byob: ReadableStreamBYOBReader | undefined;
    try {
      byob = stream.getReader({ mode: "byob" });
    } catch {
      // Not a byte stream (one built in JavaScript): its chunks are what its source made.
    }
    this.byob = byob !== undefined;
    this.reader = byob ?? stream.getReader();
  }

  read(): Promise<ReadableStreamReadResult<Uint8Array>> {
    const ms = this.ms;
    if (ms === undefined) return this.readChunk();
    this.waitingSince = Date.now();
    this.watchdog ??= setTimeout(() => this.check(ms), ms);
    return new Promise((resolve, reject) => {
      this.failWaiting = reject;
      this.readChunk().then(
        (result) => {
          this.answered();
          if (result.done) this.stop();
          resolve(result);
        },
        (error: unknown) => {
          this.answered();
          this.stop();
          reject(error);
        },
      );
    });
  }

  private async readChunk(): Promise<ReadableStreamReadResult<Uint8Array>> {
    if (!this.byob) return (this.reader as ReadableStreamDefaultReader<Uint8Array>).read();
    const buffer = this.spare ?? new ArrayBuffer(READ_BYTES);
    this.spare = undefined;
    const result = await (this.reader as ReadableStreamBYOBReader).read(new Uint8Array(buffer));
    if (result.done) return { done: true, value: undefined };
    const chunk = result.value;
    if (chunk.byteLength >= READ_BYTES / 2) return { done: false, value: chunk };
    // A short read would keep its whole buffer alive wherever the chunk is kept (a fill buffers a
    // part): it gets a copy of its own size, and the buffer serves the next read (a fresh one
    // costs zeroing 64 KiB, which for a source of small pieces was most of the time spent here).
    this.spare = chunk.buffer as ArrayBuffer;
    return { done: false, value: chunk.slice() };
  }

  /** Cancels the source (the reader's consumer went away). */
  cancel(reason?: unknown): Promise<void> {
    this.stop();
    return this.reader.cancel(reason);
  }

  /** Ends the watchdog: the stream ended, failed or was cancelled. */
  private stop(): void {
    clearTimeout(this.watchdog);
    this.watchdog = undefined;
  }

  private answered(): void {
    this.waitingSince = undefined;
    this.failWaiting = undefined;
  }

  private check(ms: number): void {
    this.watchdog = undefined;
    // Nothing waiting: the next read arms the watchdog again.
    if (this.waitingSince === undefined) return;
    const waited = Date.now() - this.waitingSince;
    if (waited < ms) {
      this.watchdog = setTimeout(() => this.check(ms), ms - waited);
      return;
    }
    const fail = this.failWaiting;
    this.answered();
    const error = new OriginStalled(`the origin sent nothing for ${ms} ms`);
    void this.reader.cancel(error.message).catch(() => undefined);
    fail?.(error);
  }
}

/** The same stream, erroring with OriginStalled when the source is silent for `ms`. */
export function withIdleTimeout(stream: ReadableStream<Uint8Array>, ms: number): ReadableStream<Uint8Array> {
  const reader = new ByteReader(stream, ms);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (error) {
        controller.error(error);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/**
 * Fills regions of caller-owned buffers straight from a byte stream, for answers that send
 * stored bytes as they are (an inline hit): with a byte stream (an R2 body) the runtime reads
 * into the region itself — workerd's `readAtLeast` fills a whole region per call — so no byte
 * passes through JavaScript. A stream built in JavaScript is copied in.
 */
export class RegionFiller {
  private readonly byob: ReadableStreamBYOBReader | undefined;
  private readonly reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  /** The rest of a chunk of a JavaScript stream that did not fit the last region. */
  private leftover: Uint8Array | undefined;
  private ended = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    try {
      this.byob = stream.getReader({ mode: "byob" });
    } catch {
      this.reader = stream.getReader();
    }
  }

  /**
   * Fills `room` bytes of `bytes` from `at`, fewer only at the end of the stream. A BYOB read
   * transfers the buffer: the answer's `bytes` is the same memory under its new owner.
   */
  async fill(bytes: Uint8Array, at: number, room: number): Promise<{ bytes: Uint8Array; filled: number }> {
    if (!this.byob) return { bytes, filled: await this.copyInto(bytes.subarray(at, at + room)) };
    // Read before the first read: a view of a transferred buffer reads as empty.
    const { byteOffset, length } = bytes;
    let buffer = bytes.buffer as ArrayBuffer;
    let filled = 0;
    while (filled < room && !this.ended) {
      const view = new Uint8Array(buffer, byteOffset + at + filled, room - filled);
      const result = await this.byob.readAtLeast(view.length, view);
      if (!result.value) throw new Error("the stored object's stream was cancelled while being read");
      buffer = result.value.buffer as ArrayBuffer;
      filled += result.value.byteLength;
      if (result.done) this.ended = true;
    }
    return { bytes: new Uint8Array(buffer, byteOffset, length), filled };
  }

  private async copyInto(region: Uint8Array): Promise<number> {
    let filled = 0;
    while (filled < region.length) {
      let chunk = this.leftover;
      this.leftover = undefined;
      if (!chunk) {
        const result = await (this.reader as ReadableStreamDefaultReader<Uint8Array>).read();
        if (result.done) break;
        chunk = result.value;
      }
      const taken = Math.min(chunk.length, region.length - filled);
      region.set(chunk.subarray(0, taken), filled);
      filled += taken;
      if (taken < chunk.length) this.leftover = chunk.subarray(taken);
    }
    return filled;
  }

  cancel(reason?: unknown): Promise<void> {
    return (this.byob ?? (this.reader as ReadableStreamDefaultReader<Uint8Array>)).cancel(reason);
  }
}
