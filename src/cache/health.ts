/**
 * Which redirect targets are healthy, as far as this isolate knows.
 *
 * hgedge never sees a client follow a redirect — the client fetches the URL from the target
 * itself — so it cannot learn from clients' failures. Instead it probes: when a target is about
 * to be chosen and was not probed in the last TARGET_RETRY_SECONDS, a HEAD of the target's base
 * URL goes out in the background (ctx.waitUntil), never delaying the answer. A network error, a
 * timeout or a 5xx marks the target down for TARGET_RETRY_SECONDS; any other status (a 404 for a
 * bucket's root included) means the host is up and serving. Once the period is over the target
 * is tried again (and probed again).
 *
 * Limits, on purpose: "healthy" means "its base URL answered without a server error", not "this
 * object is there" or "the client's network reaches it"; the memory is per isolate (each isolate
 * probes for itself, and learns only when a request asks for the target); a target is presumed
 * healthy until a probe says otherwise.
 */
import type { FetchFunction } from "../io/fetch.ts";
import { logEvent as log } from "../log.ts";

export type ProbeFetch = FetchFunction;

/** A probe that has not answered in this long counts as a failure. */
export const PROBE_TIMEOUT_MS = 5_000;

/** Entries are per configured target, so few; the cap only guards against a changing config. */
const MAX_TRACKED = 1_000;

export interface ProbedTarget {
  name: string;
  /** What to HEAD: the base URL redirects to this target point under. */
  url: string;
}

interface TargetState {
  /** When the last probe started (ms). */
  probedAt: number;
  /** Skip the target until then (ms); undefined: not known to be down. */
  downUntil?: number;
  probing: boolean;
}

export class TargetHealth {
  private readonly states = new Map<string, TargetState>();

  constructor(
    private readonly probeFetch: ProbeFetch,
    private readonly clock: () => number = Date.now,
  ) {}

  /** False while a target is inside the retry period after a failed probe. */
  isHealthy(target: ProbedTarget): boolean {
    const downUntil = this.states.get(stateKey(target))?.downUntil;
    return downUntil === undefined || downUntil <= this.clock();
  }

  /**
   * Starts a background probe of each target not probed in the last `retrySeconds` (and not being
   * probed now). Returns the probes, for callers without a waitUntil (and for tests).
   */
  probeIfDue(targets: readonly ProbedTarget[], retrySeconds: number, waitUntil?: (promise: Promise<unknown>) => void): Promise<void>[] {
    const now = this.clock();
    const started: Promise<void>[] = [];
    for (const target of targets) {
      const key = stateKey(target);
      const state = this.states.get(key);
      if (state && (state.probing || now - state.probedAt < retrySeconds * 1000)) continue;
      if (!state && this.states.size >= MAX_TRACKED) this.states.clear();
      const next: TargetState = { ...state, probedAt: now, probing: true };
      this.states.set(key, next);
      const probe = this.probe(target, next, retrySeconds);
      waitUntil?.(probe);
      started.push(probe);
    }
    return started;
  }

  private async probe(target: ProbedTarget, state: TargetState, retrySeconds: number): Promise<void> {
    const failure = await probeFailure(this.probeFetch, target.url);
    state.probing = false;
    const now = this.clock();
    const wasDown = state.downUntil !== undefined;
    const wasSkipped = wasDown && (state.downUntil as number) > now;
    if (failure) {
      state.downUntil = now + retrySeconds * 1000;
      if (!wasSkipped) log("warn", "target-down", { target: target.name, url: target.url, reason: failure, retrySeconds });
    } else {
      delete state.downUntil;
      if (wasDown) log("info", "target-up", { target: target.name, url: target.url });
    }
  }
}

function stateKey(target: ProbedTarget): string {
  return `${target.name} ${target.url}`;
}

/** Why the probe failed, or undefined when the target answered without a server error. */
async function probeFailure(probeFetch: ProbeFetch, url: string): Promise<string | undefined> {
  try {
    const response = await probeFetch(url, { method: "HEAD", redirect: "manual", signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    await response.body?.cancel();
    return response.status >= 500 ? `HTTP ${response.status}` : undefined;
  } catch (error) {
    return String(error);
  }
}
