/**
 * Clone bundles with today's Mercurial: a Mercurial 7.0.1 clone through hgedge, with each bundle
 * format, against a direct clone from the origin, in one run on one machine — wall time, bytes
 * the client downloads, bytes and requests the origin serves — plus what making the bundles
 * costs (wall, the Worker runtime's CPU, what the origin sends), how soon a push through the edge
 * is followed by fresh bundles, and that concurrent requests for a generation make one.
 *
 *   HGEDGE_BENCH_CACHE=/work/bench-cache npx tsx scripts/bench/clonebundles.ts [--revisions N] [--runs N] [--pushed N]
 *
 * The repository (40 000 changesets by default, a store of ~250 MB) is generated once by
 * scripts/bench/makerepo.py with Mercurial 5.6.1 and kept (cachedBenchRepo); the run works on a
 * copy of it, served by Mercurial 7.0.1 behind a recording proxy (what the origin sends). The
 * client reaches the edge through a second recording proxy (what it downloads besides the
 * bundle; the bundle itself comes from the content route and is counted by its size).
 */
import { appendFile, cp, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startStack } from "../../harness/edge.ts";
import { projectRoot, runHgOk, startRecordingProxy, type Exchange } from "../../harness/mercurial.ts";
import { stopDevtoolsNetworkEvents } from "./inspector.ts";
import { cachedBenchRepo, cpuSeconds, edgeProcesses, exchange, machine, measuredClone, median, option, writeResult } from "./support.ts";

const TOKEN = "bench-admin-token-0123456789abcdef0123456789";
const HG7 = path.join(projectRoot, ".tools/bin/hg-7.0.1");
const HG56 = path.join(projectRoot, ".tools/bin/hg-5.6.1");
const bytesOf = (exchanges: Exchange[]) => exchanges.reduce((n, e) => n + e.responseBody.length, 0);

interface StoredBundle {
  format: string;
  name: string;
  bundlespec: string;
  size: number;
}

interface CloneFigures {
  seconds: number;
  clientBytes: number;
  originBytes: number;
  originRequests: number;
  applied: string;
}

async function main(): Promise<void> {
  const revisions = option("revisions", 40_000);
  const runs = option("runs", 3);
  const pushed = option("pushed", 100);
  const source = await cachedBenchRepo(HG56, revisions);
  const work = await mkdtemp(path.join(os.tmpdir(), "hgedge-bench-clonebundles-"));
  const originDir = path.join(work, "origin");
  // A copy: the run pushes into it, and the cached repository must stay as generated.
  await cp(source, originDir, { recursive: true });
  const stack = await startStack(HG7, originDir, { ACCESS: "public", ADMIN_TOKEN: TOKEN, BUNDLE_MIN_NEW_CHANGESETS: String(pushed) }, {
    v2: false,
    // Its own R2 and Durable Object state: not another edge's bundles of repository "/".
    wranglerArgs: ["--persist-to", path.join(work, "wrangler-state")],
  });
  const { recorder, edge } = stack;
  const client = await startRecordingProxy(edge.url);
  const runtime = edgeProcesses(edge.processGroup, edge.url).runtime;
  // wrangler dev's DevTools Network events cost the runtime CPU per subrequest chunk; production has none.
  await stopDevtoolsNetworkEvents(edge.inspectorPort);
  try {
    // node:http, not fetch: a generation may take longer than fetch's 300 s wait for headers.
    const admin = async (body: unknown) => {
      const answer = await exchange(`${edge.url}/.hgedge/admin/bundles`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: new TextEncoder().encode(JSON.stringify(body)), keepBody: true });
      return { status: answer.status, text: () => answer.body!.toString(), json: () => JSON.parse(answer.body!.toString()) as unknown };
    };
    let n = 0;
    const clone = async (url: string, extra: string[] = [], bundles: StoredBundle[] = []): Promise<CloneFigures> => {
      const dest = path.join(work, `clone-${n++}`);
      const clientBefore = client.exchanges.length;
      const measured = await measuredClone(HG7, ["clone", "-U", "--verbose", ...extra, url, dest], recorder.exchanges);
      const applied = bundles.find((b) => measured.output.includes(path.basename(b.name)));
      await rm(dest, { recursive: true, force: true });
      const throughEdge = url === client.url ? bytesOf(client.exchanges.slice(clientBefore)) : measured.bytes;
      const usedBundle = measured.output.includes("finished applying clone bundle");
      if (process.env.HGEDGE_BENCH_VERBOSE) console.log(measured.output);
      return { seconds: measured.seconds, clientBytes: throughEdge + (applied?.size ?? 0), originBytes: measured.bytes, originRequests: measured.requests, applied: applied?.format ?? (usedBundle ? "a bundle" : "none") };
    };
    const medianOf = async (count: number, one: () => Promise<CloneFigures>): Promise<CloneFigures & { all: number[] }> => {
      const results: CloneFigures[] = [];
      for (let i = 0; i < count; i++) results.push(await one());
      const best = results.find((r) => r.seconds === median(results.map((x) => x.seconds))) ?? results[0]!;
      return { ...best, seconds: median(results.map((r) => r.seconds)), all: results.map((r) => r.seconds) };
    };

    // Direct, first: the origin's own answer (zstd transport), as a client without hgedge gets it.
    const direct = await medianOf(runs, () => clone(recorder.url));
    console.log(`direct: ${direct.seconds.toFixed(1)} s, ${direct.originBytes} bytes, ${direct.originRequests} requests`);

    // Generation, through the repository's generator (BUNDLER), asked by the admin API.
    const originBefore = recorder.exchanges.length;
    const cpuBefore = cpuSeconds(runtime);
    const started = performance.now();
    const generated = await admin({ repo: "/" });
    const generationSeconds = (performance.now() - started) / 1000;
    const generationCpu = cpuSeconds(runtime) - cpuBefore;
    if (generated.status !== 200) throw new Error(`bundle generation failed: ${generated.text()}`);
    const made = generated.json() as { bundles: StoredBundle[]; changesets: number };
    const generationOrigin = recorder.exchanges.slice(originBefore);
    console.log(`generation: ${generationSeconds.toFixed(1)} s, runtime CPU ${generationCpu.toFixed(1)} s, ${made.bundles.map((b) => `${b.format} ${b.size}`).join(", ")}`);

    const stream = await medianOf(runs, () => clone(client.url, [], made.bundles));
    console.log(`stream: ${JSON.stringify(stream)}`);
    const zstd = await medianOf(runs, () => clone(client.url, ["--config", "ui.clonebundleprefers=COMPRESSION=zstd"], made.bundles));
    console.log(`zstd: ${JSON.stringify(zstd)}`);

    // Two isolates' worth of concurrent requests for a generation: one is made, the other refused.
    const concurrentBefore = recorder.exchanges.length;
    const answers = await Promise.all([admin({ repo: "/" }), admin({ repo: "/" })]);
    const concurrentGetbundles = recorder.exchanges.slice(concurrentBefore).filter((e) => e.path.includes("cmd=getbundle")).length;
    const concurrent = { statuses: answers.map((a) => a.status).sort(), getbundles: concurrentGetbundles };

    // A push of `pushed` changesets through the edge, then the wait until the manifest lists fresh bundles.
    const pusher = path.join(work, "pusher");
    await runHgOk(HG7, ["clone", "-q", client.url, pusher], { timeoutMs: 600_000 });
    const current = await fetch(`${edge.url}/?cmd=clonebundles_manifest`).then((r) => r.text());
    await runHgOk(HG7, ["-R", pusher, "update", "-q", "default"]);
    for (let i = 0; i < pushed; i++) {
      await appendFile(path.join(pusher, "README.bench"), `pushed ${i}\n`);
      await runHgOk(HG7, ["-R", pusher, "commit", "-q", "-A", "--config", "ui.username=bench", "-m", `pushed ${i}`]);
    }
    await runHgOk(HG7, ["-R", pusher, "push", "-q", "-r", ".", client.url], { timeoutMs: 600_000 });
    const pushedAt = performance.now();
    let freshSeconds = Number.NaN;
    for (const deadline = Date.now() + 15 * 60_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 500))) {
      const manifest = await fetch(`${edge.url}/?cmd=clonebundles_manifest`).then((r) => r.text());
      if (manifest.length > 0 && manifest !== current && !current.split("\n").some((line) => line && manifest.includes(line.split(" ")[0]!.split("?")[0]!))) {
        freshSeconds = (performance.now() - pushedAt) / 1000;
        break;
      }
    }
    const afterPush = await clone(client.url, [], []);
    report({ revisions, runs, pushed, made, generationSeconds, generationCpu, generationOrigin, direct, stream, zstd, concurrent, freshSeconds, afterPush });
  } finally {
    await client.stop();
    await stack.stop();
    await rm(work, { recursive: true, force: true });
  }
}

function report(r: {
  revisions: number;
  runs: number;
  pushed: number;
  made: { bundles: StoredBundle[]; changesets: number };
  generationSeconds: number;
  generationCpu: number;
  generationOrigin: Exchange[];
  direct: CloneFigures & { all: number[] };
  stream: CloneFigures & { all: number[] };
  zstd: CloneFigures & { all: number[] };
  concurrent: { statuses: number[]; getbundles: number };
  freshSeconds: number;
  afterPush: CloneFigures;
}): void {
  const ratio = (a: number, b: number) => (a / b).toFixed(3);
  const mb = (n: number) => (n / 1e6).toFixed(1);
  const row = (name: string, c: CloneFigures) =>
    `| ${name} | ${c.applied} | ${c.seconds.toFixed(1)} | ${ratio(c.seconds, r.direct.seconds)} | ${mb(c.clientBytes)} | ${ratio(c.clientBytes, r.direct.clientBytes)} | ${c.originBytes} | ${(100 * c.originBytes / r.direct.originBytes).toFixed(3)} % | ${c.originRequests} |`;
  const lines = [
    `Mercurial 7.0.1 client and origin (hg serve), wire protocol v1; repository: ${r.revisions} changesets (scripts/bench/makerepo.py, Mercurial 5.6.1 store); wall = median of ${r.runs}`,
    "",
    "| clone | bundle applied | wall (s) | ÷ direct | client downloads (MB) | ÷ direct | origin bytes | ÷ direct | origin requests |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    `| direct (getbundle, zstd transport) | – | ${r.direct.seconds.toFixed(1)} | 1 | ${mb(r.direct.clientBytes)} | 1 | ${r.direct.originBytes} | 100 % | ${r.direct.originRequests} |`,
    row("through hgedge, stream bundle (listed first)", r.stream),
    row("through hgedge, zstd bundle (`ui.clonebundleprefers=COMPRESSION=zstd`)", r.zstd),
    "",
    `Generation (admin API → BUNDLER): ${r.generationSeconds.toFixed(1)} s wall, Worker runtime CPU ${r.generationCpu.toFixed(1)} s (workerd process: hgedge and the local R2 simulator), origin sent ${mb(bytesOf(r.generationOrigin))} MB in ${r.generationOrigin.length} requests; ` +
      r.made.bundles.map((b) => `${b.format} ${mb(b.size)} MB (${b.bundlespec})`).join(", "),
    `Push of ${r.pushed} changesets through the edge → fresh bundles listed after ${r.freshSeconds.toFixed(1)} s (${ratio(r.freshSeconds, r.generationSeconds)} of one generation's wall time); the clone after it applied ${r.afterPush.applied}, origin bytes ${r.afterPush.originBytes}.`,
    `Two concurrent generation requests: answers ${r.concurrent.statuses.join(", ")}; getbundle requests to the origin meanwhile: ${r.concurrent.getbundles} (one generation: stream + changegroup).`,
  ];
  console.log(lines.join("\n"));
  void writeResult("clonebundles", { machine: machine(), ...r, generationOrigin: { bytes: bytesOf(r.generationOrigin), requests: r.generationOrigin.length } });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
