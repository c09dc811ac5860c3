/** Fill slots: at most FILL_CONCURRENCY fills, slow ones give way, silent ones are forgotten. */
import { describe, expect, it, vi } from "vitest";
import { FILL_MIN_BYTES_PER_SECOND, FILL_SLOW_AFTER_MS, FillSlots } from "../../src/cache/fills.ts";

const LIMITS = { concurrency: 2, idleMs: 60_000 };

function slotsAt(start = 1_000_000) {
  let now = start;
  const slots = new FillSlots(() => now);
  return { slots, advance: (ms: number) => void (now += ms) };
}

describe("FillSlots", () => {
  it("grants one slot per object and at most `concurrency` in all; a released slot is free again", () => {
    const { slots } = slotsAt();
    const a = slots.acquire("a", LIMITS, () => undefined);
    expect(a.granted).toBe(true);
    expect(slots.acquire("a", LIMITS, () => undefined)).toEqual({ granted: false, reason: "already being filled in this isolate" });
    expect(slots.acquire("b", LIMITS, () => undefined).granted).toBe(true);
    expect(slots.acquire("c", LIMITS, () => undefined)).toEqual({ granted: false, reason: "2 fills already running (FILL_CONCURRENCY)" });
    if (a.granted) a.release();
    expect(slots.acquire("c", LIMITS, () => undefined).granted).toBe(true);
  });

  it("takes the slot of the slowest fill past FILL_SLOW_AFTER_MS, and stops that fill", () => {
    const { slots, advance } = slotsAt();
    const stopSlow = vi.fn();
    const stopFast = vi.fn();
    const slow = slots.acquire("slow", LIMITS, stopSlow);
    const fast = slots.acquire("fast", LIMITS, stopFast);
    if (!slow.granted || !fast.granted) throw new Error("both slots should be granted");
    // Young fills keep their slots whatever their pace.
    expect(slots.acquire("new", LIMITS, () => undefined).granted).toBe(false);
    advance(FILL_SLOW_AFTER_MS + 1);
    slow.slot.progressed(1024);
    fast.slot.progressed(FILL_MIN_BYTES_PER_SECOND * 40);
    expect(slots.acquire("new", LIMITS, () => undefined).granted).toBe(true);
    expect(stopSlow).toHaveBeenCalledOnce();
    expect(stopFast).not.toHaveBeenCalled();
    // The preempted fill's late release does not free the slot its successor holds.
    slow.release();
    expect(slots.acquire("other", LIMITS, () => undefined).granted).toBe(false);
  });

  it("forgets a fill that made no progress for ORIGIN_IDLE_TIMEOUT_MS (its request was dropped)", () => {
    const { slots, advance } = slotsAt();
    slots.acquire("a", LIMITS, () => undefined);
    slots.acquire("b", LIMITS, () => undefined);
    advance(LIMITS.idleMs + 1);
    expect(slots.acquire("a", LIMITS, () => undefined).granted).toBe(true);
  });
});
