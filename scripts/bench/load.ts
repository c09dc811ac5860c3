/**
 * A bounded load test (not part of `npm test`): many concurrent Mercurial 5.6.1 v2 clones
 * through the local edge (`npm start`, ACCESS=public) against a real 5.6.1 origin, first with a
 * cold cache, then warm. Counts failures, times each round, and samples the resident memory of
 * the workerd process. Everything runs on loopback and stops by itself.
 *
 *   npx tsx scripts/bench/load.ts [--clients N] [--revs N] [--passthrough]
 */
import { readFileSync, readdirSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startEdge, type Edge } from "../../harness/edge.ts";
import { cloneArgs, hg56Path, projectRoot, runHg, runHgOk, serveRepo } from "../../harness/mercurial.ts";

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
}

/** Resident memory (KiB) of the workerd processes in the edge's process group. */
function workerdRssKiB(processGroup: number): number {
  let total = 0;
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after the closing ")".
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const pgrp = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      if (comm !== "workerd" || pgrp !== processGroup) continue;
      total += Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
    } catch {
      // the process ended while we looked
    }
  }
  return total;
}

interface Round {
  clients: number;
  failures: number;
  seconds: number;
  slowestSeconds: number;
  peakRssMiB: number;
  idleRssMiB: number;
}

async function round(hg: string, edge: Edge, work: string, label: string, clients: number): Promise<Round> {
  const url = edge.url;
  const idle = workerdRssKiB(edge.processGroup);
  let peak = idle;
  const sampler = setInterval(() => (peak = Math.max(peak, workerdRssKiB(edge.processGroup))), 200);
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      const t = performance.now();
      const r = await runHg(hg, ["clone", "-U", ...cloneArgs({ v2: true }), url, path.join(work, `${label}-${i}`)], { timeoutMs: 600_000 });
      const ok = r.code === 0 && (await runHg(hg, ["-R", path.join(work, `${label}-${i}`), "verify", "-q"])).code === 0;
      if (!ok) console.error(`${label} clone ${i} failed: ${r.stderr.trim()}`);
      return { ok, seconds: (performance.now() - t) / 1000 };
    }),
  );
  clearInterval(sampler);
  return {
    clients,
    failures: results.filter((r) => !r.ok).length,
    seconds: (performance.now() - started) / 1000,
    slowestSeconds: Math.max(...results.map((r) => r.seconds)),
    peakRssMiB: Math.round(peak / 1024),
    idleRssMiB: Math.round(idle / 1024),
  };
}

async function main(): Promise<void> {
  // hg serve answers requests on threads; Mercurial's lazy imports race under that load
  // ("module 'mercurial.mdiff' has no attribute 'patches'"), so the origin imports eagerly.
  process.env.HGDEMANDIMPORT = "disable";
  const hg = hg56Path();
  if (!hg) throw new Error("Mercurial 5.6.1 is missing: run `npm run install-mercurial`");
  const clients = option("clients", 24);
  const revs = option("revs", 300);
  const work = await mkdtemp(path.join(os.tmpdir(), "hgedge-load-"));
  try {
    const repo = path.join(work, "origin");
    await runHgOk(hg, ["init", repo]);
    const makerepo = `extensions.makerepo=${path.join(projectRoot, "scripts/bench/makerepo.py")}`;
    await runHgOk(hg, ["--config", makerepo, "-R", repo, "hgedge-makerepo", String(revs)], { timeoutMs: 600_000 });
    const origin = await serveRepo({ hgPath: hg, repoDir: repo, v2: true });
    // --passthrough: the same load with the cache refused (ACCESS=origin, no SIGNING_KEY), to
    // tell the cache's memory from the proxy's.
    const vars: Record<string, string> = process.argv.includes("--passthrough") ? { ACCESS: "origin" } : { ACCESS: "public", MIN_REDIRECT_BYTES: "0" };
    const edge = await startEdge(origin.url, { ...vars, CACHE_VERSION: `load-${Date.now()}` });
    try {
      const cold = await round(hg, edge, work, "cold", clients);
      const warm = await round(hg, edge, work, "warm", clients);
      report(revs, cold, warm);
      if (cold.failures + warm.failures > 0) process.exitCode = 1;
    } finally {
      await edge.stop();
      await origin.stop();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function report(revs: number, cold: Round, warm: Round): void {
  console.log(`repository: ${revs} changesets (makerepo.py); ${cold.clients} concurrent Mercurial 5.6.1 v2 clones per round, each verified`);
  console.log("| round | clones | failures | round wall time (s) | slowest clone (s) | workerd RSS idle → peak (MiB) |");
  console.log("|---|---:|---:|---:|---:|---|");
  for (const [name, r] of [["cold cache", cold], ["warm cache", warm]] as const) {
    console.log(`| ${name} | ${r.clients} | ${r.failures} | ${r.seconds.toFixed(1)} | ${r.slowestSeconds.toFixed(1)} | ${r.idleRssMiB} → ${r.peakRssMiB} |`);
  }
  const out = path.join(projectRoot, "bench-results");
  void mkdir(out, { recursive: true }).then(() => writeFile(path.join(out, "load.json"), JSON.stringify({ revs, cold, warm }, null, 2)));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
