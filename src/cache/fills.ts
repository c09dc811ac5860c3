/**
 * The objects being filled in this isolate, and who may start a fill.
 *
 * A fill holds up to one R2 part (5 MiB) in memory and an isolate has 128 MB for all its requests,
 * so only FILL_CONCURRENCY fills run at once; other misses — and a second miss for an object
 * already being filled — are answered by the origin without storing (the next request finds the
 * object).
 *
 * A fill moves at its client's pace (the origin is read as the client reads). So that a client
 * cannot hold a slot for good, a fill that needs a slot takes it from one that is past
 * FILL_SLOW_AFTER_MS and averaged under FILL_MIN_BYTES_PER_SECOND: that fill's upload is aborted
 * (its memory freed, its coalescer followers told), and its client reads on from the origin,
 * unstored. And when a client goes away, the runtime may drop its request without ever cancelling
 * the stream, so no outcome arrives: an entry idle for longer than ORIGIN_IDLE_TIMEOUT_MS is
 * forgotten, or such leftovers would block those objects (and, FILL_CONCURRENCY of them, every
 * fill) in this isolate for good.
 */
import { logEvent as log } from "../log.ts";

/** How long a fill keeps its slot whatever its pace. */
export const FILL_SLOW_AFTER_MS = 30_000;
/** The average pace under which a fill past FILL_SLOW_AFTER_MS gives its slot to another. */
export const FILL_MIN_BYTES_PER_SECOND = 64 * 1024;

/** One fill's slot: its pace, and how to stop it. */
export class FillSlot {
  readonly started: number;
  /** When a chunk last went through. */
  lastProgress: number;
  /** Bytes read from the origin (at the client's pace). */
  bytes = 0;

  constructor(
    /** Abandons the fill: aborts the upload; the client's stream goes on. */
    readonly stop: () => void,
    private readonly clock: () => number,
  ) {
    this.started = clock();
    this.lastProgress = this.started;
  }

  progressed(bytes: number): void {
    this.lastProgress = this.clock();
    this.bytes += bytes;
  }
}

export type SlotDecision = { granted: true; slot: FillSlot; release: () => void } | { granted: false; reason: string };

export class FillSlots {
  private readonly active = new Map<string, FillSlot>();

  constructor(private readonly clock: () => number = Date.now) {}

  /**
   * A slot for filling `name`, or why not. `release` gives it back (a fill that ended, whatever
   * the outcome); a slot taken over meanwhile is not touched.
   */
  acquire(name: string, limits: { concurrency: number; idleMs: number }, stop: () => void): SlotDecision {
    const now = this.clock();
    this.forgetIdle(now, limits.idleMs);
    if (this.active.has(name)) return { granted: false, reason: "already being filled in this isolate" };
    if (this.active.size >= limits.concurrency && !this.preemptSlowest(now)) {
      return { granted: false, reason: `${limits.concurrency} fills already running (FILL_CONCURRENCY)` };
    }
    const slot = new FillSlot(stop, this.clock);
    this.active.set(name, slot);
    return { granted: true, slot, release: () => void (this.active.get(name) === slot && this.active.delete(name)) };
  }

  private forgetIdle(now: number, idleMs: number): void {
    for (const [filling, slot] of this.active) {
      if (now - slot.lastProgress <= idleMs) continue;
      this.active.delete(filling);
      log("warn", "cache-fill-forgotten", { name: filling, idleMs: now - slot.lastProgress });
    }
  }

  /** Frees the slot of the slowest fill past FILL_SLOW_AFTER_MS under FILL_MIN_BYTES_PER_SECOND, if any. */
  private preemptSlowest(now: number): boolean {
    let slowest: [string, FillSlot, number] | undefined;
    for (const [filling, slot] of this.active) {
      const elapsed = now - slot.started;
      const rate = (slot.bytes * 1000) / Math.max(1, elapsed);
      if (elapsed < FILL_SLOW_AFTER_MS || rate >= FILL_MIN_BYTES_PER_SECOND) continue;
      if (!slowest || rate < slowest[2]) slowest = [filling, slot, rate];
    }
    if (!slowest) return false;
    const [filling, slot, rate] = slowest;
    this.active.delete(filling);
    slot.stop();
    log("warn", "cache-fill-preempted", { name: filling, bytesPerSecond: Math.round(rate), reason: "its client reads too slowly; another fill needs the slot" });
    return true;
  }
}
