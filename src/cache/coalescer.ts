/**
 * Single-flight of concurrent misses: one Durable Object per cache object name (binding
 * COALESCER). When a release tag lands and hundreds of CI machines ask for the same
 * `manifestdata`/`filesdata` at once, the first request to join becomes the *leader* and fills
 * the object from the origin; the others are *followers*: they wait here until the leader says
 * how its fill ended, then read the object from R2 — or, if it failed or takes longer than the
 * wait allows, go to the origin as they would have without the binding.
 *
 * Joining and waiting are one call, so no outcome can slip between "someone else is filling"
 * and "tell me when it is done". State lives in memory: the object stays alive while anyone
 * waits on it, and if it is evicted during a fill nobody waits (the cost is a second fill of the
 * same bytes, never a wrong answer). A leader that vanishes (isolate gone) is replaced when its
 * lease runs out.
 */
import type { DurableObjectBinding } from "../config/env.ts";
import { DurableObject } from "cloudflare:workers";

/** How a join ended for the caller. */
export type JoinResult =
  /** Fill the object, then call `settle(lease, committed)`. */
  | { role: "leader"; lease: string }
  /** The leader committed the object: read it from R2. */
  | { role: "follower"; outcome: "committed" }
  /** The leader's fill did not commit, or did not end within the wait: ask the origin. */
  | { role: "follower"; outcome: "failed" | "timeout" };

type Outcome = "committed" | "failed" | "timeout";

export class Coalescer extends DurableObject {
  private leader: { lease: string; expires: number } | undefined;
  private readonly waiters = new Set<(outcome: Outcome) => void>();
  private leaseTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Becomes the leader if no live leader exists; otherwise waits (at most `waitMs`, and never
   * past the leader's lease) for the leader's outcome.
   */
  async join(leaseMs: number, waitMs: number): Promise<JoinResult> {
    const now = Date.now();
    if (!this.leader || this.leader.expires <= now) return { role: "leader", lease: this.elect(now, leaseMs) };
    const outcome = await new Promise<Outcome>((resolve) => {
      const timer = setTimeout(() => done("timeout"), Math.min(waitMs, this.leader ? this.leader.expires - now : 0));
      const done = (result: Outcome) => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve(result);
      };
      this.waiters.add(done);
    });
    return { role: "follower", outcome };
  }

  /** The leader's report. A stale lease (a replaced leader) changes nothing. */
  async settle(lease: string, committed: boolean): Promise<void> {
    if (this.leader?.lease !== lease) return;
    this.release(committed ? "committed" : "failed");
  }

  private elect(now: number, leaseMs: number): string {
    const lease = crypto.randomUUID();
    this.leader = { lease, expires: now + leaseMs };
    clearTimeout(this.leaseTimer);
    // Waiters never outlive the lease (see join), but a new leader's lease must not be cut short.
    this.leaseTimer = setTimeout(() => {
      if (this.leader?.lease === lease) this.release("timeout");
    }, leaseMs);
    return lease;
  }

  private release(outcome: Outcome): void {
    this.leader = undefined;
    clearTimeout(this.leaseTimer);
    for (const wake of [...this.waiters]) wake(outcome);
  }
}

/**
 * The single flight of object `name`. The binding is declared untyped in Env (config sits below
 * the cache layer), so its class is named here, where it is defined.
 */
export function coalescerStub(namespace: DurableObjectBinding, name: string): DurableObjectStub<Coalescer> {
  const typed: DurableObjectNamespace<Coalescer> = namespace;
  return typed.get(typed.idFromName(name));
}
