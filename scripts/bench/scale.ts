/**
 * At the size of a real repository: clones of a generated 40 000-changeset repository, through
 * `npm start` exactly as shipped (no timeout or limit overridden), measured in one run.
 *
 *   npm run bench:scale [-- --revisions N] [--bundles N]
 *
 * - Mercurial 5.6.1 over wire protocol v2: direct from the origin, through hgedge with a cold
 *   cache, and again warm.
 * - Mercurial 7.0.1 (wire protocol v1): direct, and through hgedge once it made a clone bundle
 *   (`POST /.hgedge/admin/bundles`, done --bundles times, 10 by default: every one must answer 200).
 *
 * For each: wall time, bytes the client received (through a counting proxy in front of the edge,
 * which hgedge's redirects point back at), bytes the origin sent (a counting proxy in front of
 * it), peak resident memory of hgedge's own workerd and of the local stack's other processes
 * (wrangler's proxy workerd, wrangler's Node process, npm start's), and the most sockets the
 * local stack held at once. Every clone is checked with `hg verify` (not timed). Also the time of the first requests after the edge started, and the first warm clone
 * after a restart of the edge on its filled local state.
 *
 * The repository is generated once by scripts/bench/makerepo.py and kept (cachedBenchRepo;
 * HGEDGE_BENCH_CACHE says where); the origin is a 5.6.1 `hg serve` with v2 enabled.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startEdge } from "../../harness/edge.ts";
import { cloneArgs, hg56Path, projectRoot, runHgOk, serveRepo } from "../../harness/mercurial.ts";
import {
  cachedBenchRepo,
  edgeProcesses,
  exchange,
  machine,
  option,
  sampleGroup,
  startCountingProxy,
  writeResult,
  type CountingProxy,
  type GroupPeaks,
} from "./support.ts";

const TOKEN = "bench-admin-token-0123456789abcdef0123456789";
const HG7 = path.join(projectRoot, ".tools/bin/hg-7.0.1");
/** A clone of 40 000 changesets takes minutes; this only catches a hung one. */
const CLONE_TIMEOUT_MS = 60 * 60_000;

interface Measured {
  name: string;
  seconds: number;
  clientBytes: number;
  originBytes: number;
  originRequests: number;
  peaks?: GroupPeaks;
  note?: string;
}

interface Counters {
  client?: CountingProxy;
  origin: CountingProxy;
}

/** Runs `run`, measuring its time and what went through the proxies meanwhile. */
async function measure(name: string, counters: Counters, run: () => Promise<string | void>, sampler?: ReturnType<typeof sampleGroup>): Promise<Measured> {
  const origin0 = counters.origin.counts();
  const client0 = counters.client?.counts();
  sampler?.take();
  const started = performance.now();
  const note = await run();
  const seconds = (performance.now() - started) / 1000;
  const origin1 = counters.origin.counts();
  const client1 = counters.client?.counts();
  const originBytes = origin1.bytes - origin0.bytes;
  const result: Measured = {
    name,
    seconds,
    clientBytes: client0 && client1 ? client1.bytes - client0.bytes : originBytes,
    originBytes,
    originRequests: origin1.requests - origin0.requests,
  };
  if (sampler) result.peaks = sampler.take();
  if (note) result.note = note;
  console.error(`${name}: ${seconds.toFixed(1)} s, client ${result.clientBytes} B, origin ${originBytes} B${result.peaks ? `, peaks ${JSON.stringify(result.peaks)}` : ""}`);
  return result;
}

/** Clones made and not yet verified (a verify of 40 000 changesets takes minutes: never timed). */
const clones: { hg: string; dest: string }[] = [];
let verified = 0;

async function clone(hg: string, args: string[], url: string, dest: string): Promise<string> {
  const output = await runHgOk(hg, ["clone", "-U", ...args, url, dest], { timeoutMs: CLONE_TIMEOUT_MS });
  clones.push({ hg, dest });
  return output;
}

/** `hg verify` of every clone, two at a time (the machine has two cores); throws on the first failure. */
async function verifyClones(): Promise<void> {
  const queue = clones.splice(0);
  verified += queue.length;
  const worker = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      await runHgOk(next.hg, ["-R", next.dest, "verify"], { timeoutMs: CLONE_TIMEOUT_MS });
      console.error(`verified ${path.basename(next.dest)}`);
      await rm(next.dest, { recursive: true, force: true });
    }
  };
  await Promise.all([worker(), worker()]);
}

async function main(): Promise<void> {
  const hg56 = hg56Path();
  if (!hg56) throw new Error("Mercurial 5.6.1 is missing: run `npm run install-mercurial`");
  const revisions = option("revisions", 40_000);
  const bundleRuns = option("bundles", 10);
  console.error(`repository of ${revisions} changesets (generated once, then kept)…`);
  const repo = await cachedBenchRepo(hg56, revisions);
  const work = await mkdtemp(path.join(os.tmpdir(), "hgedge-scale-"));
  const served = await serveRepo({ hgPath: hg56, repoDir: repo, v2: true });
  const origin = await startCountingProxy(served.url);
  // Local state (R2, Durable Objects) of this run only: a 40 000-changeset cache is gigabytes.
  const vars = { ACCESS: "public", ADMIN_TOKEN: TOKEN, CACHE_VERSION: `scale-${Date.now()}` };
  const state = ["--persist-to", path.join(work, "state")];
  let local = await startLocal(origin, vars, state);
  const results: Measured[] = [];
  const bundles: { status: number; seconds: number; size?: number }[] = [];
  try {
    const firstRequests = await timeFirstRequests(local.edge.url);
    const v2 = cloneArgs({ v2: true });
    const direct = { origin };
    const through = () => ({ origin, client: local.client });
    // Each clone is verified (untimed) before the next, and what is measured is saved as it
    // comes: at this size a run takes an hour, and a stopped one still says what it saw.
    let restartSeconds = 0;
    const step = async (measured: Measured) => {
      results.push(measured);
      await verifyClones();
      await writeResult("scale-partial", { revisions, firstRequests, restartSeconds, bundles, results });
    };
    // Today's clients first: the clone bundle, made --bundles times, then used.
    await step(await measure("7.0.1, direct", direct, () => clone(HG7, [], origin.url, path.join(work, "v1-direct"))));
    for (let i = 0; i < bundleRuns; i++) {
      await step(
        await measure(`bundle generation ${i + 1}`, through(), async () => {
          const answer = await exchange(`${local.client.url}/.hgedge/admin/bundles`, {
            method: "POST",
            headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
            body: new TextEncoder().encode(JSON.stringify({ repo: "/" })),
            keepBody: true,
            timeoutMs: CLONE_TIMEOUT_MS,
          });
          const text = answer.body?.toString() ?? "";
          const size = answer.status === 200 ? (JSON.parse(text) as { bundle: { size: number } }).bundle.size : undefined;
          bundles.push({ status: answer.status, seconds: answer.ms / 1000, ...(size ? { size } : {}) });
          if (answer.status !== 200) console.error(`bundle generation ${i + 1}: ${answer.status} ${text}`);
          return `status ${answer.status}`;
        }, local.sampler),
      );
    }
    await step(
      await measure("7.0.1, through hgedge (clone bundle)", through(), async () => {
        const output = await clone(HG7, ["--verbose"], local.client.url, path.join(work, "v1-bundle"));
        if (!output.includes("finished applying clone bundle")) throw new Error(`the clone did not use the bundle:\n${output}`);
      }, local.sampler),
    );
    await step(await measure("5.6.1 v2, direct", direct, () => clone(hg56, v2, origin.url, path.join(work, "v2-direct"))));
    await step(await measure("5.6.1 v2, through hgedge, cold", through(), () => clone(hg56, v2, local.client.url, path.join(work, "v2-cold")), local.sampler));
    await step(await measure("5.6.1 v2, through hgedge, warm", through(), () => clone(hg56, v2, local.client.url, path.join(work, "v2-warm")), local.sampler));
    // The first clone after a restart of the edge (same local state): is it slower than the rest?
    await local.stop();
    const restarting = performance.now();
    local = await startLocal(origin, vars, state);
    restartSeconds = (performance.now() - restarting) / 1000;
    await step(await measure("5.6.1 v2, through hgedge, warm, first after a restart", through(), () => clone(hg56, v2, local.client.url, path.join(work, "v2-restart")), local.sampler));
    await local.stop();
    await verifyClones();
    const result = { machine: machine(), revisions, firstRequests, restartSeconds, bundles, results, verified };
    await writeResult("scale", result);
    console.log(report(result));
  } finally {
    await local.stop();
    await origin.stop();
    await served.stop();
    await rm(work, { recursive: true, force: true });
  }
}

/** `npm start` in front of `origin`, a counting proxy for its clients, and a sampler of its processes. */
async function startLocal(origin: CountingProxy, vars: Record<string, string>, wranglerArgs: string[]) {
  const edge = await startEdge(origin.url, vars, wranglerArgs);
  const client = await startCountingProxy(edge.url);
  const processes = edgeProcesses(edge.processGroup, edge.url);
  const sampler = sampleGroup(edge.processGroup, { hgedge: processes.runtime, proxy: processes.proxy, wrangler: processes.wrangler });
  return {
    edge,
    client,
    sampler,
    async stop() {
      sampler.stop();
      await client.stop();
      await edge.stop();
    },
  };
}

/** The first few requests after the edge said it is ready (v1 capabilities, through the origin). */
async function timeFirstRequests(edgeUrl: string): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const answer = await exchange(`${edgeUrl}/?cmd=capabilities`, { headers: { accept: "application/mercurial-0.1" }, timeoutMs: 120_000 });
    if (answer.status !== 200) throw new Error(`capabilities answered ${answer.status}`);
    times.push(Math.round(answer.ms));
  }
  return times;
}

function report(r: { machine: Record<string, string | number>; revisions: number; verified: number; firstRequests: number[]; restartSeconds: number; bundles: { status: number; seconds: number; size?: number }[]; results: Measured[] }): string {
  const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
  const mib = (kib: number | undefined) => (kib === undefined ? "–" : (kib / 1024).toFixed(0));
  const byName = (name: string) => r.results.find((m) => m.name === name);
  const ratio = (a: Measured | undefined, b: Measured | undefined) => (a && b ? (a.seconds / b.seconds).toFixed(2) : "–");
  const rows = r.results
    .filter((m) => !m.name.startsWith("bundle generation"))
    .map((m) => {
      const direct = m.name.startsWith("5.6.1") ? byName("5.6.1 v2, direct") : byName("7.0.1, direct");
      const origin = direct && m !== direct ? `${mb(m.originBytes)} (${((100 * m.originBytes) / direct.originBytes).toFixed(2)} %)` : mb(m.originBytes);
      return `| ${m.name} | ${m.seconds.toFixed(1)} | ${m === direct ? "1.00" : ratio(m, direct)} | ${mb(m.clientBytes)} | ${origin} | ${mib(m.peaks?.rssKiB.hgedge)} | ${mib(m.peaks?.rssKiB.proxy)} | ${mib(m.peaks?.rssKiB.wrangler)} | ${mib(m.peaks?.othersRssKiB)} | ${m.peaks?.sockets ?? "–"} |`;
    });
  const generations = r.results.filter((m) => m.name.startsWith("bundle generation"));
  const ok = r.bundles.filter((b) => b.status === 200).length;
  const seconds = r.bundles.map((b) => b.seconds);
  const peak = (pick: (p: GroupPeaks) => number) => Math.max(...generations.map((g) => (g.peaks ? pick(g.peaks) : 0)));
  return [
    `repository: ${r.revisions} changesets (scripts/bench/makerepo.py); origin: Mercurial 5.6.1 hg serve (v2 enabled); edge: npm start with the shipped defaults`,
    `machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB, load ${r.machine.loadAverage}`,
    "",
    "| clone | wall (s) | ÷ direct | client MB | origin MB (% of direct) | hgedge workerd peak MiB | proxy workerd peak MiB | wrangler Node peak MiB | rest of the stack peak MiB | sockets peak |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...rows,
    "",
    `bundle generation (POST /.hgedge/admin/bundles): ${ok} of ${r.bundles.length} answered 200, ${Math.min(...seconds).toFixed(1)}–${Math.max(...seconds).toFixed(1)} s, ` +
      `bundle ${mb(r.bundles.find((b) => b.size)?.size ?? 0)} MB; peaks: hgedge workerd ${mib(peak((p) => p.rssKiB.hgedge ?? 0))} MiB, ` +
      `proxy workerd ${mib(peak((p) => p.rssKiB.proxy ?? 0))} MiB, wrangler Node ${mib(peak((p) => p.rssKiB.wrangler ?? 0))} MiB, sockets ${peak((p) => p.sockets)}`,
    `every clone verified with hg verify (${r.verified})`,
    `first requests after the start (v1 capabilities, ms): ${r.firstRequests.join(", ")}; a restart of npm start on the filled local state took ${r.restartSeconds.toFixed(1)} s to be ready`,
  ].join("\n");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
