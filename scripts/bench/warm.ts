/**
 * Warm-up: what `npm run warm` costs and what it saves — measured in one run on one machine.
 *
 *   npx tsx scripts/bench/warm.ts [--revs N] [--concurrency N]
 *
 * A Mercurial 5.6.1 origin (`hg serve` with the v2 API, default batch sizes) holds the
 * deterministic repository of scripts/bench/makerepo.py; a recording proxy in front of it counts
 * what it serves; hgedge runs under `npm start` (wrangler dev, local R2). In order:
 *   1. a direct clone from the origin (the reference for origin bytes);
 *   2. the warm-up through the edge, cache empty (time, objects, bytes, origin bytes);
 *   3. the warm-up again with its state (everything skipped) and with a new state (all hits);
 *   4. the first real clone through the edge after the warm-up (origin bytes and requests).
 * Every clone is checked with `hg verify`. Results also go to bench-results/warm.json.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startStack } from "../../harness/edge.ts";
import { makeBenchRepo, option, writeResult } from "./support.ts";
import { cloneArgs, hg56Path, runHgOk, type Exchange } from "../../harness/mercurial.ts";
import { formatBytes } from "../warm/progress.ts";
import { warm, type WarmSummary } from "../warm/run.ts";
import { MERCURIAL_SERVER_ORDER } from "../../src/protocol/streams.ts";

const CACHEABLE = /\/ro\/(manifestdata|filesdata|filedata)$/;

interface OriginCost {
  bytes: number;
  requests: number;
  cacheableRequests: number;
}

interface Clone extends OriginCost {
  seconds: number;
}


function costOf(exchanges: Exchange[]): OriginCost {
  return {
    bytes: exchanges.reduce((n, e) => n + e.responseBody.length, 0),
    requests: exchanges.length,
    cacheableRequests: exchanges.filter((e) => CACHEABLE.test(e.path)).length,
  };
}

async function clone(hg: string, url: string, dest: string, exchanges: Exchange[]): Promise<Clone> {
  const before = exchanges.length;
  const started = performance.now();
  await runHgOk(hg, ["clone", "-U", ...cloneArgs({ v2: true }), url, dest], { timeoutMs: 600_000 });
  const seconds = (performance.now() - started) / 1000;
  await runHgOk(hg, ["-R", dest, "verify"], { timeoutMs: 600_000 });
  return { ...costOf(exchanges.slice(before)), seconds };
}

async function warmUp(repoUrl: string, statePath: string, concurrency: number, exchanges: Exchange[]) {
  const before = exchanges.length;
  const summary = await warm({
    repoUrl,
    headers: [],
    encodings: [...MERCURIAL_SERVER_ORDER],
    concurrency,
    statePath,
    fresh: false,
    verify: false,
    progress: { write: () => undefined, isTTY: false },
    intervalMs: 60_000,
  });
  if (summary.failed.length > 0 || summary.notStored > 0) throw new Error(`warm-up incomplete: ${JSON.stringify(summary)}`);
  return { summary, origin: costOf(exchanges.slice(before)) };
}

async function main(): Promise<void> {
  const hg = hg56Path();
  if (!hg) throw new Error("Mercurial 5.6.1 is missing: run `npm run install-mercurial`");
  const revs = option("revs", 600);
  const concurrency = option("concurrency", 2);
  const work = await mkdtemp(path.join(os.tmpdir(), "hgedge-bench-warm-"));
  const originDir = path.join(work, "origin");
  try {
    await makeBenchRepo(hg, originDir, revs);
    const stack = await startStack(hg, originDir, { ACCESS: "public", MIN_REDIRECT_BYTES: "0", CACHE_VERSION: `bench-warm-${Date.now()}` });
    const { recorder, edge } = stack;
    try {
      const direct = await clone(hg, recorder.url, path.join(work, "direct"), recorder.exchanges);
      const state = path.join(work, "state.json");
      const cold = await warmUp(`${edge.url}/`, state, concurrency, recorder.exchanges);
      const resumed = await warmUp(`${edge.url}/`, state, concurrency, recorder.exchanges);
      const hits = await warmUp(`${edge.url}/`, path.join(work, "state2.json"), concurrency, recorder.exchanges);
      const first = await clone(hg, edge.url, path.join(work, "first"), recorder.exchanges);
      report({ revs, concurrency, direct, cold, resumed, hits, first });
    } finally {
      await stack.stop();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

type WarmRun = { summary: WarmSummary; origin: OriginCost };

function report(r: { revs: number; concurrency: number; direct: Clone; cold: WarmRun; resumed: WarmRun; hits: WarmRun; first: Clone }): void {
  const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(1)} %`;
  const warmRow = (name: string, w: WarmRun) => {
    const s = w.summary;
    return `| ${name} | ${s.seconds.toFixed(2)} | ${s.planned} (${s.skipped} skipped, ${s.hits} hit, ${s.misses} miss) | ${s.objectBytes} | ${s.wireBytes + s.discoveryBytes} | ${w.origin.bytes} (${pct(w.origin.bytes, r.direct.bytes)}) | ${w.origin.requests} (${w.origin.cacheableRequests} cacheable) |`;
  };
  const lines = [
    `repository: ${r.cold.summary.changesets} changesets (scripts/bench/makerepo.py ${r.revs}), Mercurial 5.6.1 origin with default batch sizes ` +
      `(manifestdata ${r.cold.summary.batchSizes.manifestdata}, filesdata ${r.cold.summary.batchSizes.filesdata}), warm --concurrency ${r.concurrency}`,
    "",
    "| run | wall time (s) | objects | object bytes | bytes received | origin bytes (÷ direct clone) | origin requests |",
    "|---|---:|---|---:|---:|---:|---:|",
    warmRow("warm-up, empty cache", r.cold),
    warmRow("warm-up again, same state (resume: all done)", r.resumed),
    warmRow("warm-up again, new state (all hits)", r.hits),
    "",
    "| clone | wall time (s) | origin bytes | origin requests | cacheable requests at the origin |",
    "|---|---:|---:|---:|---:|",
    `| direct from the origin | ${r.direct.seconds.toFixed(2)} | ${r.direct.bytes} | ${r.direct.requests} | ${r.direct.cacheableRequests} |`,
    `| first clone through hgedge after the warm-up | ${r.first.seconds.toFixed(2)} | ${r.first.bytes} (${pct(r.first.bytes, r.direct.bytes)}) | ${r.first.requests} | ${r.first.cacheableRequests} |`,
    "",
    `warm-up object bytes ${formatBytes(r.cold.summary.objectBytes)}; origin bytes of the warm-up ÷ a direct clone ${pct(r.cold.origin.bytes, r.direct.bytes)}`,
  ];
  console.log(lines.join("\n"));
  void writeResult("warm", r);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
