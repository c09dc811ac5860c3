/**
 * Many Mercurial 5.6.1 clients cloning through one edge at once, and what the origin answered:
 * how many times each cacheable command request (same URL, same request body — so the same
 * cache key) reached it. Used by the coalescing end-to-end test and benchmark.
 */
import { createHash } from "node:crypto";
import path from "node:path";
import type { Stack } from "./edge.ts";
import { cloneArgs, runHgOk, type Exchange } from "./mercurial.ts";

export const CACHEABLE_PATH = /\/api\/exp-http-v2-0003\/ro\/(manifestdata|filesdata|filedata)$/;

export interface ConcurrentClones {
  destinations: string[];
  /** Origin answers per distinct cacheable request, keyed by path and request-body hash. */
  originAnswersPerKey: Map<string, number>;
  /** Every exchange the origin had during the clones. */
  exchanges: Exchange[];
  wallMs: number;
  /** Why each failed clone failed (empty when all succeeded). */
  failures: string[];
}

/** `edgeUrl` defaults to the stack's edge (wrangler dev's proxy in front of the runtime). */
export async function cloneConcurrently(
  hgPath: string,
  stack: Stack,
  workDir: string,
  count: number,
  timeoutMs: number,
  edgeUrl = stack.edge.url,
): Promise<ConcurrentClones> {
  // hg serve 5.6.1 imports modules lazily, and threads racing through a first import fail
  // ("module 'mercurial.ancestor' has no attribute 'lazyancestors'"): one clone straight from
  // the origin first, so that the race measured is ours, not Mercurial's import machinery.
  await runHgOk(hgPath, ["clone", "-U", ...cloneArgs({ v2: true }), stack.origin.url, path.join(workDir, "origin-primer")], { timeoutMs });
  const before = stack.recorder.exchanges.length;
  const started = Date.now();
  const destinations = Array.from({ length: count }, (_, i) => path.join(workDir, `concurrent-${i}`));
  // Every clone runs to its end before a failure is reported: none is left writing meanwhile.
  const clones = await Promise.allSettled(destinations.map((dest) => runHgOk(hgPath, ["clone", "-U", ...cloneArgs({ v2: true }), edgeUrl, dest], { timeoutMs })));
  const failures = clones.flatMap((c) => (c.status === "rejected" ? [String(c.reason)] : []));
  const wallMs = Date.now() - started;
  const exchanges = stack.recorder.exchanges.slice(before);
  const originAnswersPerKey = new Map<string, number>();
  for (const exchange of exchanges) {
    if (!CACHEABLE_PATH.test(exchange.path)) continue;
    const key = `${exchange.path} ${createHash("sha256").update(exchange.requestBody).digest("hex").slice(0, 16)}`;
    originAnswersPerKey.set(key, (originAnswersPerKey.get(key) ?? 0) + 1);
  }
  return { destinations: destinations.filter((_, i) => clones[i]?.status === "fulfilled"), originAnswersPerKey, exchanges, wallMs, failures };
}
