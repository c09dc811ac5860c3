/**
 * A cache miss: the origin's framed answer streams to the client as it arrives while, from the
 * same pump (no `tee()`, whose slower branch buffers without bound), it is reassembled and the
 * bare CBOR sequence after the status map — what a redirect target serves — goes to R2.
 *
 * The object is committed only when the origin's answer was a complete success: status `ok`,
 * its eos frame on a CBOR value boundary, no error frame, no other request id, no malformed
 * bytes, the origin's body ended cleanly and the client read it all. Anything else aborts the
 * upload; the client still gets exactly the origin's bytes.
 */
import { ProtocolError } from "../protocol/errors.ts";
import { ResponseReader, type ResponseEvent } from "../protocol/responses.ts";
import { ByteReader } from "../io/reader.ts";
import type { CommittedObject, ObjectWriter } from "./store.ts";

export type FillOutcome =
  | { committed: true; object: CommittedObject }
  | { committed: false; reason: string };

export interface FillOptions {
  requestId: number;
  writer: ObjectWriter;
  /** Keeps the commit running after the client's stream closed (ctx.waitUntil). */
  waitUntil?: (promise: Promise<unknown>) => void;
  /** Told once what happened, for logs and stats. */
  onOutcome?: (outcome: FillOutcome) => void;
  /** Told each time a chunk passes, with its size: the fill is alive (the runtime may drop a request silently). */
  onProgress?: (bytes: number) => void;
  /** Stored bytes beyond which the fill stops and the answer only passes through (FILL_MAX_BYTES). */
  maxBytes?: number;
}

/**
 * The largest object a fill stores. A fill costs CPU for every byte it stores (about 85 s per
 * GiB measured locally: BENCHMARKS.md "Worker CPU per fill and per hit") and an invocation that
 * exceeds `limits.cpu_ms` (300 s in wrangler.toml) is cut off — its client's answer broken, for
 * every client asking for that object. Past this size the fill is given up (nothing is written:
 * the upload is aborted) and the origin's answer passes through, which costs far less.
 */
export const FILL_MAX_BYTES = 2 * 1024 * 1024 * 1024;

/**
 * `upstream` is an origin body as forwardToOrigin returns it, which already fails with
 * OriginStalled when the origin falls silent: that abandons the fill like any broken stream.
 */
export function fillWhileStreaming(upstream: ReadableStream<Uint8Array>, options: FillOptions): ReadableStream<Uint8Array> {
  const reader = new ByteReader(upstream, undefined);
  const fill = new Fill(options);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (error) {
        // The origin's connection broke: the client sees the same failure.
        await fill.abandon(`origin stream failed: ${String(error)}`);
        controller.error(error);
        return;
      }
      if (chunk.done) {
        controller.close();
        fill.finish();
        return;
      }
      await fill.consume(chunk.value);
      options.onProgress?.(chunk.value.byteLength);
      controller.enqueue(chunk.value);
    },
    async cancel(reason) {
      await fill.abandon("the client went away before the end");
      await reader.cancel(reason);
    },
  });
}

class Fill {
  // Validate, don't decode: a stored value may be far larger than a Worker's memory.
  private readonly responses = new ResponseReader({ emitBody: true, decodeObjects: false });
  private failure: string | undefined;
  private status: string | undefined;
  private ended = false;
  private settled = false;
  private stored = 0;

  constructor(private readonly options: FillOptions) {}

  /** Inspects a chunk and writes its body bytes; a problem only stops the fill. */
  async consume(chunk: Uint8Array): Promise<void> {
    if (this.failure) return;
    let events: ResponseEvent[];
    try {
      events = this.responses.push(chunk);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      return this.abandon(`malformed origin response: ${error.message}`);
    }
    for (const event of events) {
      const problem = this.check(event);
      if (problem) return this.abandon(problem);
      if (event.type === "body") {
        this.stored += event.bytes.length;
        if (this.stored > (this.options.maxBytes ?? FILL_MAX_BYTES)) {
          return this.abandon(`the answer is larger than ${this.options.maxBytes ?? FILL_MAX_BYTES} bytes, the most a fill stores within the CPU limit`);
        }
        try {
          await this.options.writer.write(event.bytes);
        } catch (error) {
          return this.abandon(`R2 write failed: ${String(error)}`);
        }
      }
    }
  }

  private check(event: ResponseEvent): string | undefined {
    if ("requestId" in event && event.requestId !== this.options.requestId) {
      return `response for request ${event.requestId}, expected ${this.options.requestId}`;
    }
    switch (event.type) {
      case "status":
        this.status = event.status;
        return event.status === "ok" ? undefined : `origin answered with status ${event.status}`;
      case "error-response":
        return `origin failed: ${event.errorType} ${event.message}`;
      case "end":
        this.ended = true;
        return event.clean ? undefined : "the response ended inside a CBOR value";
      default:
        return undefined;
    }
  }

  /** The origin's body ended: commit if everything was right (in the background if possible). */
  finish(): void {
    let problem = this.failure;
    if (!problem) {
      try {
        this.responses.finish();
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        problem = `truncated origin response: ${error.message}`;
      }
    }
    if (!problem && (this.status !== "ok" || !this.ended)) problem = "the origin's answer was not a complete success";
    const settle = problem ? this.abandon(problem) : this.commit();
    if (this.options.waitUntil) this.options.waitUntil(settle);
  }

  private async commit(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    try {
      const object = await this.options.writer.commit();
      this.options.onOutcome?.({ committed: true, object });
    } catch (error) {
      await this.options.writer.abort().catch(() => undefined);
      this.options.onOutcome?.({ committed: false, reason: `R2 commit failed: ${String(error)}` });
    }
  }

  async abandon(reason: string): Promise<void> {
    this.failure ??= reason;
    if (this.settled) return;
    this.settled = true;
    await this.options.writer.abort().catch(() => undefined);
    this.options.onOutcome?.({ committed: false, reason });
  }
}
