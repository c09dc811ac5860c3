/**
 * Clone bundles: what the origin serves for a Mercurial 6.x clone (wire protocol v1) made
 * directly, and through hgedge once it made a clone bundle — bytes, requests and wall time,
 * measured in one run on one machine; plus the same after the origin moved on by a few
 * changesets (a stale bundle). A recording proxy in front of a 6.x `hg serve` counts what the
 * origin sends in every case.
 *
 *   npx tsx scripts/bench/clonebundles.ts [--revs N] [--later N]
 *
 * The repository is generated deterministically by scripts/bench/makerepo.py.
 */
import { appendFile, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startStack } from "../../test/support/edge.ts";
import { makeBenchRepo, measuredClone, option, type MeasuredClone, writeResult } from "./support.ts";
import { hg6Path, runHgOk, type Exchange } from "../../test/support/mercurial.ts";

const TOKEN = "bench-admin-token-0123456789abcdef0123456789";

type Measured = MeasuredClone;

function clone(hg: string, url: string, dest: string, exchanges: Exchange[]): Promise<Measured> {
  return measuredClone(hg, ["clone", "-U", "--verbose", url, dest], exchanges);
}

async function main(): Promise<void> {
  const hg = hg6Path();
  if (!hg) throw new Error("Mercurial 6.x is missing: run `npm run install-mercurial`");
  const revs = option("revs", 600);
  const later = option("later", 20);
  const work = await mkdtemp(path.join(os.tmpdir(), "hgedge-clonebundles-"));
  const originDir = path.join(work, "origin");
  try {
    await makeBenchRepo(hg, originDir, revs);
    const stack = await startStack(hg, originDir, { ACCESS: "public", ADMIN_TOKEN: TOKEN }, { v2: false });
    const { recorder, edge } = stack;
    try {
      const direct = await clone(hg, recorder.url, path.join(work, "direct"), recorder.exchanges);
      const started = performance.now();
      const generated = await fetch(`${edge.url}/.hgedge/admin/bundles`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ repo: "/" }) });
      if (generated.status !== 200) throw new Error(`bundle generation failed: ${await generated.text()}`);
      const bundle = ((await generated.json()) as { bundle: { size: number; changesets: number } }).bundle;
      const generationSeconds = (performance.now() - started) / 1000;
      const withBundle = await clone(hg, edge.url, path.join(work, "with-bundle"), recorder.exchanges);
      if (!withBundle.output.includes("finished applying clone bundle")) throw new Error(`the clone did not use the bundle:\n${withBundle.output}`);

      // The origin moves on: a few more changesets, each editing one file; the bundle is now stale.
      await runHgOk(hg, ["-R", originDir, "update", "default"]);
      for (let i = 0; i < later; i++) {
        await appendFile(path.join(originDir, "src/mod00/file000.c"), `    later change ${i};\n`);
        await runHgOk(hg, ["-R", originDir, "commit", "--config", "ui.username=bench", "-d", `${(revs + i) * 3600} 0`, "-m", `later ${i}`]);
      }
      const directLater = await clone(hg, recorder.url, path.join(work, "direct-later"), recorder.exchanges);
      const stale = await clone(hg, edge.url, path.join(work, "stale"), recorder.exchanges);
      for (const name of ["direct", "with-bundle", "direct-later", "stale"]) await runHgOk(hg, ["-R", path.join(work, name), "verify"]);
      const changesets = (await runHgOk(hg, ["-R", originDir, "log", "-T", "x"])).length;
      report({ revs: changesets - later, later, bundle, generationSeconds, direct, withBundle, directLater, stale });
    } finally {
      await stack.stop();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function report(r: { revs: number; later: number; bundle: { size: number; changesets: number }; generationSeconds: number; direct: Measured; withBundle: Measured; directLater: Measured; stale: Measured }): void {
  const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(1)} %`;
  const rows = [
    ["origin bytes", r.direct.bytes, r.withBundle.bytes, pct(r.withBundle.bytes, r.direct.bytes), r.directLater.bytes, r.stale.bytes, pct(r.stale.bytes, r.directLater.bytes)],
    ["origin requests", r.direct.requests, r.withBundle.requests, "–", r.directLater.requests, r.stale.requests, "–"],
    ["clone wall time (s)", r.direct.seconds.toFixed(2), r.withBundle.seconds.toFixed(2), (r.withBundle.seconds / r.direct.seconds).toFixed(2), r.directLater.seconds.toFixed(2), r.stale.seconds.toFixed(2), (r.stale.seconds / r.directLater.seconds).toFixed(2)],
  ];
  const table = [
    "| measure | direct | through hgedge, bundle current | ratio | direct, after the origin moved on | through hgedge, bundle stale | ratio |",
    "|---|---:|---:|---:|---:|---:|---:|",
    ...rows.map((row) => `| ${row.join(" | ")} |`),
  ].join("\n");
  console.log(
    `repository: ${r.revs} changesets (scripts/bench/makerepo.py), then ${r.later} more; Mercurial 6.x client and origin, wire protocol v1; ` +
      `bundle: ${r.bundle.changesets} changesets, ${r.bundle.size} bytes (none-v2), made in ${r.generationSeconds.toFixed(2)} s`,
  );
  console.log(table);
  void writeResult("clonebundles", r);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
