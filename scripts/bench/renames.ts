/**
 * What routing around the stock origin's removed-file failure costs: the bytes the origin sends
 * for a Mercurial 5.6.1 v2 clone and pull of a history with renames and removals, through hgedge
 * (filesdata retried with haveparents: false) and, as the reference, directly from an origin
 * without the bug (scripts/bench/fixedorigin.py), in one run on one machine.
 *
 *   npx tsx scripts/bench/renames.ts [--revs N]
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startEdge } from "../../harness/edge.ts";
import { option } from "./support.ts";
import { cloneArgs, hg56Path, projectRoot, runHg, runHgOk, serveRepo, startRecordingProxy, type Exchange } from "../../harness/mercurial.ts";

const TIMEOUT = 600_000;


/** Renames and removes a few files, one commit each. */
async function churn(hg: string, repo: string, commits: number, tag: string): Promise<void> {
  const run = (...args: string[]) => runHgOk(hg, ["-R", repo, ...args], { timeoutMs: TIMEOUT, cwd: repo });
  await run("update", "-C", "default");
  for (let i = 0; i < commits; i++) {
    const files = (await run("files", "-r", ".", "glob:src/**.c")).trim().split("\n").sort();
    const victim = files[(i * 7919) % files.length] as string;
    if (i % 3 === 2) await run("rm", victim);
    else await run("mv", victim, victim.replace(/\.c$/, `-${tag}${i}.c`));
    await writeFile(path.join(repo, "CHANGES"), `${tag} ${i}\n`, { flag: "a" });
    await run("commit", "-A", "-u", "bench", "-d", `${i} 0`, "-m", `${tag} ${i}`);
  }
}

function filesdataBytes(exchanges: Exchange[]): number {
  return exchanges.filter((e) => e.path.endsWith("/ro/filesdata")).reduce((n, e) => n + e.responseBody.length, 0);
}

async function measure(hg: string, url: string, recorded: Exchange[], command: string[]): Promise<{ ok: boolean; filesdata: number; total: number }> {
  const before = recorded.length;
  const result = await runHg(hg, [...command.slice(0, 1), ...cloneArgs({ v2: true }), ...command.slice(1).map((a) => (a === "URL" ? url : a))], { timeoutMs: TIMEOUT });
  const served = recorded.slice(before);
  return { ok: result.code === 0, filesdata: filesdataBytes(served), total: served.reduce((n, e) => n + e.responseBody.length, 0) };
}

async function main(): Promise<void> {
  const hg = hg56Path();
  if (!hg) throw new Error("Mercurial 5.6.1 is missing: run `npm run install-mercurial`");
  const work = await mkdtemp(path.join(os.tmpdir(), "hgedge-renames-"));
  const repo = path.join(work, "origin");
  try {
    await runHgOk(hg, ["init", repo]);
    const makerepo = `extensions.makerepo=${path.join(projectRoot, "scripts/bench/makerepo.py")}`;
    await runHgOk(hg, ["--config", makerepo, "-R", repo, "hgedge-makerepo", String(option("revs", 300))], { timeoutMs: TIMEOUT });
    await churn(hg, repo, 12, "a");

    const stock = await serveRepo({ hgPath: hg, repoDir: repo, v2: true });
    const fixed = await serveRepo({ hgPath: hg, repoDir: repo, v2: true, extraConfig: ["--config", `extensions.fixedorigin=${path.join(projectRoot, "scripts/bench/fixedorigin.py")}`] });
    const stockRecorder = await startRecordingProxy(stock.url);
    const fixedRecorder = await startRecordingProxy(fixed.url);
    const edge = await startEdge(stockRecorder.url);
    try {
      const direct = await measure(hg, stockRecorder.url, stockRecorder.exchanges, ["clone", "-U", "URL", path.join(work, "direct")]);
      const viaEdge = await measure(hg, edge.url, stockRecorder.exchanges, ["clone", "-U", "URL", path.join(work, "edge")]);
      const reference = await measure(hg, fixedRecorder.url, fixedRecorder.exchanges, ["clone", "-U", "URL", path.join(work, "fixed")]);
      await churn(hg, repo, 6, "b");
      const pullEdge = await measure(hg, edge.url, stockRecorder.exchanges, ["pull", "-R", path.join(work, "edge"), "URL"]);
      const pullReference = await measure(hg, fixedRecorder.url, fixedRecorder.exchanges, ["pull", "-R", path.join(work, "fixed"), "URL"]);
      for (const name of ["edge", "fixed"]) await runHgOk(hg, ["-R", path.join(work, name), "verify"], { timeoutMs: TIMEOUT });
      const changesets = (await runHgOk(hg, ["-R", repo, "log", "-T", "x"])).length;
      report(changesets, { direct, viaEdge, reference, pullEdge, pullReference });
    } finally {
      await edge.stop();
      await stockRecorder.stop();
      await fixedRecorder.stop();
      await stock.stop();
      await fixed.stop();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

type M = { ok: boolean; filesdata: number; total: number };

function report(changesets: number, r: { direct: M; viaEdge: M; reference: M; pullEdge: M; pullReference: M }): void {
  const ratio = (a: number, b: number) => (a / b).toFixed(2);
  console.log(`repository: ${changesets} changesets (makerepo.py + 18 commits renaming or removing files); Mercurial 5.6.1, wire protocol v2`);
  console.log(`direct clone from the stock origin: ${r.direct.ok ? "succeeded (unexpected)" : "failed, as the origin bug predicts"}`);
  console.log("| operation | filesdata bytes through hgedge (retried) | filesdata bytes from a fixed origin | ratio | all origin bytes through hgedge | all origin bytes from a fixed origin |");
  console.log("|---|---:|---:|---:|---:|---:|");
  console.log(`| clone | ${r.viaEdge.filesdata} | ${r.reference.filesdata} | ${ratio(r.viaEdge.filesdata, r.reference.filesdata)} | ${r.viaEdge.total} | ${r.reference.total} |`);
  console.log(`| pull (6 changesets) | ${r.pullEdge.filesdata} | ${r.pullReference.filesdata} | ${ratio(r.pullEdge.filesdata, r.pullReference.filesdata)} | ${r.pullEdge.total} | ${r.pullReference.total} |`);
  if (!r.viaEdge.ok || !r.pullEdge.ok || !r.reference.ok || !r.pullReference.ok) {
    console.error("a clone or pull failed:", JSON.stringify(r));
    process.exitCode = 1;
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
