/**
 * The last step of `npm run bench`: one table of every target in the design ("Targets"), the
 * figure this run measured (read from bench-results/<name>.json, which each benchmark writes)
 * and whether it was met. A benchmark that did not run, or failed, shows as "not measured".
 *
 *   npx tsx scripts/bench/summary.ts
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { RESULTS_DIR } from "./support.ts";

type Verdict = "met" | "MISSED" | "not measured" | "–";

interface Row {
  target: string;
  goal: string;
  measured: string;
  verdict: Verdict;
}

function load<T>(name: string): T | undefined {
  const file = path.join(RESULTS_DIR, `${name}.json`);
  return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as T) : undefined;
}

const verdict = (ok: boolean): Verdict => (ok ? "met" : "MISSED");
const f = (n: number, digits = 2) => n.toFixed(digits);

interface Offload {
  direct: { bytes: number; seconds: number };
  cold: { bytes: number; seconds: number };
  warm: { bytes: number; seconds: number };
}
interface Codec {
  results: { operation: string; oursMBps: number; ratio: number | null; meets: boolean | null }[];
}
interface HitCost {
  summary: { redirectLatencyMax: number; redirectCpuMax: number; inlineLatencyMax: number; inlineCpuMax: number; redirectMeets: boolean; inlineMeets: boolean };
  results: { label: string }[];
}
interface Memory {
  size: number;
  runs: { path: string; reader: string; idleKiB: { runtime: number }; peakKiB: { runtime: number } }[];
}

interface Coalesce {
  clients: number;
  withCoalescer: { maxAnswersPerKey: number; failedClones: number };
  without: { maxAnswersPerKey: number; failedClones: number };
}
interface CloneBundles {
  direct: { bytes: number };
  withBundle: { bytes: number };
}

export function summaryRows(): Row[] {
  const rows: Row[] = [];
  const offload = load<Offload>("offload");
  if (offload) {
    const share = offload.warm.bytes / offload.direct.bytes;
    rows.push({ target: "origin bytes, warm clone through hgedge ÷ direct", goal: "≤ 5 %", measured: `${f(100 * share, 1)} %`, verdict: verdict(share <= 0.05) });
    const warm = offload.warm.seconds / offload.direct.seconds;
    const cold = offload.cold.seconds / offload.direct.seconds;
    rows.push({ target: "clone wall time, warm through hgedge ÷ direct", goal: "≤ 0.5", measured: f(warm), verdict: verdict(warm <= 0.5) });
    rows.push({ target: "clone wall time, cold through hgedge ÷ direct", goal: "≤ 1.1", measured: f(cold), verdict: verdict(cold <= 1.1) });
  } else {
    for (const target of ["origin bytes, warm clone ÷ direct", "clone wall time, warm ÷ direct", "clone wall time, cold ÷ direct"]) {
      rows.push({ target, goal: "see design", measured: "–", verdict: "not measured" });
    }
  }
  const hit = load<HitCost>("hitcost");
  if (hit) {
    const span = `${hit.results[0]?.label} – ${hit.results.at(-1)?.label}`;
    const s = hit.summary;
    rows.push({ target: `cost of a hit, redirect (latency, CPU) ÷ origin, ${span}`, goal: "≤ 0.1, flat", measured: `worst: latency ${f(s.redirectLatencyMax)}, CPU ${f(s.redirectCpuMax)}`, verdict: verdict(s.redirectMeets) });
    rows.push({ target: `cost of a hit, inline (latency, CPU) ÷ origin, ${span}`, goal: "≤ 0.1, flat", measured: `worst: latency ${f(s.inlineLatencyMax)}, CPU ${f(s.inlineCpuMax)}`, verdict: verdict(s.inlineMeets) });
  } else {
    rows.push({ target: "cost of a hit ÷ origin", goal: "≤ 0.1, flat", measured: "–", verdict: "not measured" });
  }
  const memory = load<Memory>("memory");
  if (memory) {
    for (const pathName of ["pass-through", "fill"]) {
      const runs = memory.runs.filter((r) => r.path === pathName);
      if (runs.length === 0) continue;
      const worst = Math.max(...runs.map((r) => (r.peakKiB.runtime - r.idleKiB.runtime) / 1024));
      rows.push({
        target: `extra workerd memory streaming ${f(memory.size / 2 ** 30, 2)} GiB, ${pathName} (${runs.map((r) => r.reader).join(" and ")} reader)`,
        goal: "≤ 32 MiB",
        measured: `${f(worst, 1)} MiB`,
        verdict: verdict(worst <= 32),
      });
    }
  } else {
    rows.push({ target: "extra workerd memory streaming 1 GiB", goal: "≤ 32 MiB", measured: "–", verdict: "not measured" });
  }
  const codec = load<Codec>("codec");
  const decodes = codec?.results.filter((r) => r.operation.startsWith("frames + stream + CBOR decode")) ?? [];
  if (decodes.length) {
    for (const r of decodes) {
      rows.push({ target: r.operation.replace("frames + stream + CBOR decode", "frame scan + CBOR decode ÷ Mercurial"), goal: "≥ 20×", measured: r.ratio === null ? "no peer" : `${f(r.ratio, 1)}×`, verdict: r.meets === null ? "not measured" : verdict(r.meets) });
    }
  } else {
    rows.push({ target: "frame scan + CBOR decode ÷ Mercurial", goal: "≥ 20×", measured: "–", verdict: "not measured" });
  }
  const coalesce = load<Coalesce>("coalesce");
  if (coalesce) {
    const ours = coalesce.withCoalescer;
    rows.push({
      target: `origin fills per key under ${coalesce.clients} concurrent cold misses`,
      goal: "1",
      measured: `${ours.maxAnswersPerKey} (${coalesce.without.maxAnswersPerKey} without the coalescer)`,
      verdict: verdict(ours.maxAnswersPerKey === 1 && ours.failedClones === 0),
    });
  } else {
    rows.push({ target: "origin fills per key under 50 concurrent cold misses", goal: "1", measured: "–", verdict: "not measured" });
  }
  const bundles = load<CloneBundles>("clonebundles");
  if (bundles) {
    const share = bundles.withBundle.bytes / bundles.direct.bytes;
    rows.push({ target: "origin bytes, 6.x clone with a clone bundle ÷ direct (no design target)", goal: "–", measured: `${f(100 * share, 3)} %`, verdict: "–" });
  }
  rows.push({ target: "bytes a client downloads, warm clone ÷ direct", goal: "≤ 1", measured: "not measured by `npm run bench` yet", verdict: "not measured" });
  return rows;
}

function main(): void {
  const rows = summaryRows();
  console.log("\n== hgedge benchmark summary (this run; ratios are hgedge ÷ its peer on this machine) ==\n");
  console.log("| target | goal | measured | verdict |");
  console.log("|---|---|---|---|");
  for (const r of rows) console.log(`| ${r.target} | ${r.goal} | ${r.measured} | ${r.verdict === "MISSED" ? "**missed**" : r.verdict} |`);
  const missed = rows.filter((r) => r.verdict === "MISSED").length;
  console.log(`\n${missed} target(s) missed; BENCHMARKS.md says why.`);
}

main();
