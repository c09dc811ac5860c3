/**
 * Origin offload: what the origin serves for a Mercurial 5.6.1 v2 clone made directly, through
 * hgedge with a cold cache, and through hgedge again once the cache is warm — bytes, requests
 * and wall time, measured in one run on one machine. A recording proxy in front of the origin
 * counts what the origin sends in every case.
 *
 *   npx tsx scripts/bench/offload.ts [--revs N] [--runs N] [--devtools-network]
 *
 * --devtools-network: leave on the Network events wrangler dev asks the runtime for (one per few
 * KiB of every origin body, relayed through wrangler's proxy worker: development-only CPU that
 * production does not spend: 2.20 s against 1.76 s for a cold clone in one pair of runs).
 *
 * The repository is generated deterministically by scripts/bench/makerepo.py (source-like files
 * edited a few at a time, files added over time, some binary blobs, two branches; no removals,
 * which stock 5.x origins cannot serve over v2).
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startStack } from "../../harness/edge.ts";
import { stopDevtoolsNetworkEvents } from "./inspector.ts";
import { flag, makeBenchRepo, measuredClone, option, type MeasuredClone, writeResult } from "./support.ts";
import { cloneArgs, hg56Path, runHgOk, type Exchange } from "../../harness/mercurial.ts";

type Measured = Omit<MeasuredClone, "output">;

function clone(hg: string, url: string, dest: string, exchanges: Exchange[]): Promise<Measured> {
  return measuredClone(hg, ["clone", "-U", ...cloneArgs({ v2: true }), url, dest], exchanges);
}

async function main(): Promise<void> {
  const hg = hg56Path();
  if (!hg) throw new Error("Mercurial 5.6.1 is missing: run `npm run install-mercurial`");
  const revs = option("revs", 600);
  const work = await mkdtemp(path.join(os.tmpdir(), "hgedge-offload-"));
  const originDir = path.join(work, "origin");
  try {
    await makeBenchRepo(hg, originDir, revs);
    const stack = await startStack(hg, originDir, { ACCESS: "public", MIN_REDIRECT_BYTES: "0", CACHE_VERSION: `bench-${Date.now()}` });
    const { recorder, edge } = stack;
    try {
      if (!flag("devtools-network")) await stopDevtoolsNetworkEvents(edge.inspectorPort);
      const changesets = (await runHgOk(hg, ["-R", originDir, "log", "-T", "x"])).length;
      const direct = await clone(hg, recorder.url, path.join(work, "direct"), recorder.exchanges);
      const cold = await clone(hg, edge.url, path.join(work, "cold"), recorder.exchanges);
      const warm = await clone(hg, edge.url, path.join(work, "warm"), recorder.exchanges);
      for (const name of ["direct", "cold", "warm"]) await runHgOk(hg, ["-R", path.join(work, name), "verify"]);
      report({ changesets, direct, cold, warm });
    } finally {
      await stack.stop();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function report(r: { changesets: number; direct: Measured; cold: Measured; warm: Measured }): void {
  const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(1)} %`;
  const rows = [
    ["origin bytes", r.direct.bytes, r.cold.bytes, r.warm.bytes, pct(r.cold.bytes, r.direct.bytes), pct(r.warm.bytes, r.direct.bytes), "warm ≤ 5 %"],
    ["origin requests", r.direct.requests, r.cold.requests, r.warm.requests, pct(r.cold.requests, r.direct.requests), pct(r.warm.requests, r.direct.requests), "–"],
    ["clone wall time (s)", r.direct.seconds.toFixed(2), r.cold.seconds.toFixed(2), r.warm.seconds.toFixed(2), (r.cold.seconds / r.direct.seconds).toFixed(2), (r.warm.seconds / r.direct.seconds).toFixed(2), "cold ≤ 1.1, warm ≤ 0.5"],
  ];
  const table = [
    "| measure | direct | through hgedge, cold | through hgedge, warm | cold ÷ direct | warm ÷ direct | target |",
    "|---|---:|---:|---:|---:|---:|---|",
    ...rows.map((row) => `| ${row.join(" | ")} |`),
  ].join("\n");
  console.log(`repository: ${r.changesets} changesets (scripts/bench/makerepo.py), Mercurial 5.6.1 client and origin, wire protocol v2`);
  console.log(table);
  void writeResult("offload", r);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
