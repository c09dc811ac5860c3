/**
 * Worker CPU time (not wall time) of hgedge's own isolate per fill, per inline hit and per
 * redirect hit of one `filedata` object, read with V8's sampling CPU profiler through the
 * inspector (scripts/bench/inspector.ts): the time the isolate's thread ran for it — JavaScript,
 * garbage collection and the native work it calls (zlib, SHA-256, stream copies) — without the
 * simulated R2, wrangler's proxy or the origin, which run elsewhere or in other isolates.
 * That is the figure Cloudflare bills and limits (`limits.cpu_ms`), so it gives the largest
 * object a fill can store within a limit.
 *
 *   npx tsx scripts/bench/cpu.ts [--max-mb N] [--hits N] [--r2-process] [--bundle-revisions N]
 *
 * The origin is `hg serve` 5.6.1 with one commit of incompressible files (1, 10, 100 MB by
 * default); the edge runs under `npm start` with ACCESS=public and MIN_REDIRECT_BYTES=0. For each
 * size: a MISS (the fill, streamed to the client while stored), then `--hits` inline hits and
 * redirect hits, each profiled on its own.
 *
 * Under plain `npm start` the simulated R2 is another isolate of hgedge's workerd process, on the
 * same thread, and the profiler's samples are wall-clock intervals: its figure can hold the
 * simulator's work. `--r2-process` moves the bucket to a workerd process of its own
 * (scripts/bench/r2process.ts): hgedge's process then runs hgedge's isolate and workerd's own
 * plumbing only, and its /proc CPU time (user + system, read around each request beside the
 * profile) is an upper bound on hgedge's CPU with none of the simulator's in it.
 *
 * `--bundle-revisions N` also measures one clone-bundle generation (admin API → BUNDLER, both
 * formats) of scripts/bench/makerepo.py's repository of N changesets (generated once, kept like
 * bench:clonebundles's), served by Mercurial 7.0.1, in the same layout.
 */
import { createCipheriv, createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startEdge, startStack } from "../../harness/edge.ts";
import { hg56Path, projectRoot, runHgOk, serveRepo } from "../../harness/mercurial.ts";
import { FRAMING_MEDIA_TYPE } from "../../src/protocol/capabilities.ts";
import { bytes, cborMap } from "../../src/protocol/cbor.ts";
import { fromHex } from "../../src/protocol/hex.ts";
import { encodeRequestBody } from "../../src/protocol/requests.ts";
import { connectInspector, type CpuProfileSummary, type Inspector } from "./inspector.ts";
import { configWithR2At, startR2Process, type R2Process } from "./r2process.ts";
import { cachedBenchRepo, cpuSeconds, edgeProcesses, exchange, flag, machine, option, runtimeUrl, writeResult } from "./support.ts";
import { cp } from "node:fs/promises";

const API = "/api/exp-http-v2-0003/ro/filedata";
const FRAMED = { accept: FRAMING_MEDIA_TYPE, "content-type": FRAMING_MEDIA_TYPE };

function incompressible(size: number, seed: string): Buffer {
  const key = createHash("sha256").update("hgedge-cpu").digest().subarray(0, 16);
  const iv = createHash("sha256").update(seed).digest().subarray(0, 16);
  return createCipheriv("aes-128-ctr", key, iv).update(Buffer.alloc(size));
}

function requestBody(file: string, node: string, redirect: boolean): Uint8Array {
  const args = cborMap({ path: bytes(file), nodes: [fromHex(node)], fields: [bytes("parents"), bytes("revision")] });
  return encodeRequestBody([{ name: "filedata", args, ...(redirect ? { redirect: { targets: ["hgedge"], hashes: ["sha256", "sha1"] } } : {}) }], ["identity"]);
}

interface Measured {
  mode: "fill" | "inline" | "redirect";
  megabytes: number;
  /** Median CPU ms per request of hgedge's isolate (V8's profiler). */
  cpuMs: number;
  /** CPU ms of hgedge's workerd process (/proc) and of the R2 process (0 without one), same request. */
  processCpuMs: number;
  r2ProcessCpuMs: number;
  wallMs: number;
  top: CpuProfileSummary["top"];
}

/** The processes whose /proc CPU is read around each profile. */
interface Watched {
  runtime: number;
  r2?: number;
}

type Profiled = CpuProfileSummary & { processCpuMs: number; r2ProcessCpuMs: number };

async function profiled(inspector: Inspector, watched: Watched, send: () => Promise<{ status: number; headers: Record<string, unknown> }>, expect: string, intervalUs = 100): Promise<Profiled> {
  const cpu = () => ({ runtime: cpuSeconds(watched.runtime), r2: watched.r2 === undefined ? 0 : cpuSeconds(watched.r2) });
  await inspector.startProfiling(intervalUs);
  const before = cpu();
  const answer = await send();
  const after = cpu();
  const summary = await inspector.stopProfiling();
  if (answer.status !== 200 || answer.headers["x-hgedge-cache"] !== expect) {
    throw new Error(`expected ${expect}, got HTTP ${answer.status} ${String(answer.headers["x-hgedge-cache"])}`);
  }
  return { ...summary, processCpuMs: (after.runtime - before.runtime) * 1000, r2ProcessCpuMs: (after.r2 - before.r2) * 1000 };
}

async function main(): Promise<void> {
  const hg = hg56Path();
  if (!hg) throw new Error("Mercurial 5.6.1 is missing: run `npm run install-mercurial`");
  const maxMb = option("max-mb", 100);
  const hits = option("hits", 3);
  const sizes = [1, 10, 100, 1000].filter((mb) => mb <= maxMb);
  const work = await mkdtemp(path.join(os.tmpdir(), "hgedge-cpu-"));
  const results: Measured[] = [];
  let r2: R2Process | undefined;
  let bundle: BundleGeneration | undefined;
  try {
    const repo = path.join(work, "origin");
    await runHgOk(hg, ["init", repo]);
    for (const mb of sizes) await writeFile(path.join(repo, `f${mb}`), incompressible(mb * 1e6, String(mb)));
    await runHgOk(hg, ["-R", repo, "commit", "-A", "--config", "ui.username=bench", "-d", "0 0", "-m", "objects"], { timeoutMs: 1_200_000 });
    const nodes = new Map<string, string>();
    for (const line of (await runHgOk(hg, ["-R", repo, "manifest", "--debug", "-r", "tip"])).trim().split("\n")) {
      const [node, , name] = line.split(/\s+/);
      if (node && name) nodes.set(name, node);
    }
    const origin = await serveRepo({ hgPath: hg, repoDir: repo, v2: true });
    r2 = flag("r2-process") ? await startR2Process(path.join(work, "r2")) : undefined;
    const edge = await startEdge(origin.url, { ACCESS: "public", MIN_REDIRECT_BYTES: "0", CACHE_VERSION: `cpu-${Date.now()}` }, await r2Args(r2));
    const inspector = await connectInspector(edge.inspectorPort);
    try {
      await inspector.stopNetworkEvents();
      const runtime = edgeProcesses(edge.processGroup, edge.url).runtime;
      const watched: Watched = { runtime, ...(r2 ? { r2: r2.pid } : {}) };
      const edgeUrl = await runtimeUrl(runtime);
      const post = (body: Uint8Array) => () => exchange(edgeUrl + API, { method: "POST", headers: FRAMED, body });
      for (const mb of sizes) {
        const node = nodes.get(`f${mb}`) as string;
        const plain = requestBody(`f${mb}`, node, false);
        const redirecting = requestBody(`f${mb}`, node, true);
        const fill = await profiled(inspector, watched, post(plain), "MISS");
        results.push(measured("fill", mb, fill));
        // The commit finishes after the response: wait for the object.
        for (let tries = 0; ; tries++) {
          const answer = await post(redirecting)();
          if (answer.headers["x-hgedge-cache"] === "REDIRECT") break;
          if (tries > 100) throw new Error(`${mb} MB: the object was never committed`);
          await new Promise((r) => setTimeout(r, 200));
        }
        for (const [mode, body, expect] of [["inline", plain, "HIT"], ["redirect", redirecting, "REDIRECT"]] as const) {
          const runs: Profiled[] = [];
          for (let i = 0; i < hits; i++) runs.push(await profiled(inspector, watched, post(body), expect));
          // The median by the process's CPU with --r2-process (the figure that excludes the simulator), else by the profile's.
          runs.sort((a, b) => (r2 ? a.processCpuMs - b.processCpuMs : a.cpuMs - b.cpuMs));
          results.push(measured(mode, mb, runs[runs.length >> 1] as Profiled));
        }
        for (const r of results.filter((x) => x.megabytes === mb)) {
          console.log(
            `${mb} MB ${r.mode}: isolate ${r.cpuMs.toFixed(1)} ms CPU (${(r.cpuMs / mb).toFixed(2)} ms/MB), hgedge's process ${r.processCpuMs.toFixed(0)} ms, R2 process ${r.r2ProcessCpuMs.toFixed(0)} ms, wall ${r.wallMs.toFixed(0)} ms; ` +
              `top: ${r.top.slice(0, 4).map((t) => `${t.name} ${t.ms.toFixed(1)}`).join(", ")}`,
          );
        }
      }
    } finally {
      inspector.close();
      await edge.stop();
      await origin.stop();
    }
    const bundleRevisions = option("bundle-revisions", 0);
    if (bundleRevisions > 0) bundle = await measureBundleGeneration(bundleRevisions, work, r2);
  } finally {
    await r2?.stop();
    await rm(work, { recursive: true, force: true });
  }
  const table = [
    "| object | answer | hgedge isolate CPU, profiler (ms) | per MB (ms) | hgedge's workerd process CPU (ms) | per MB (ms) | R2 process CPU (ms) | wall (ms) |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
    ...results.map(
      (r) =>
        `| ${r.megabytes} MB | ${r.mode} | ${r.cpuMs.toFixed(1)} | ${(r.cpuMs / r.megabytes).toFixed(3)} | ${r.processCpuMs.toFixed(0)} | ${(r.processCpuMs / r.megabytes).toFixed(2)} | ${r2 ? r.r2ProcessCpuMs.toFixed(0) : "–"} | ${r.wallMs.toFixed(0)} |`,
    ),
  ].join("\n");
  console.log(`\n${table}`);
  if (bundle) console.log(`\n${describeBundle(bundle)}`);
  const file = await writeResult(r2 ? "cpu-r2-process" : "cpu", { date: new Date().toISOString(), machine: machine(), r2Process: r2 !== undefined, results, bundle });
  console.log(`results: ${path.relative(process.cwd(), file)}`);
}

function measured(mode: Measured["mode"], megabytes: number, p: Profiled): Measured {
  return { mode, megabytes, cpuMs: p.cpuMs, processCpuMs: p.processCpuMs, r2ProcessCpuMs: p.r2ProcessCpuMs, wallMs: p.wallMs, top: p.top };
}

/** wrangler dev's arguments for an edge whose bucket is the R2 process, if there is one. */
async function r2Args(r2: R2Process | undefined): Promise<string[]> {
  return r2 ? ["--config", await configWithR2At(r2.address)] : [];
}

interface BundleGeneration {
  revisions: number;
  bundles: { format: string; size: number }[];
  bundleBytes: number;
  originBytes: number;
  wallMs: number;
  /** hgedge's isolate (profiler, 1 ms samples), hgedge's workerd process and the R2 process (/proc). */
  isolateCpuMs: number;
  processCpuMs: number;
  r2ProcessCpuMs: number;
  top: CpuProfileSummary["top"];
}

const HG7 = path.join(projectRoot, ".tools/bin/hg-7.0.1");
const HG56 = path.join(projectRoot, ".tools/bin/hg-5.6.1");
const ADMIN_TOKEN = "bench-cpu-admin-token-0123456789abcdef0123";

/**
 * One generation of both bundle formats, as bench:clonebundles asks for it (the admin API, whose
 * BUNDLER Durable Object runs in hgedge's isolate), profiled like a request. Its own edge, state
 * and origin (Mercurial 7.0.1, wire protocol v1), the bucket in the same layout as the rest.
 */
async function measureBundleGeneration(revisions: number, work: string, r2: R2Process | undefined): Promise<BundleGeneration> {
  const originDir = path.join(work, "bundle-origin");
  await cp(await cachedBenchRepo(HG56, revisions), originDir, { recursive: true });
  const stack = await startStack(HG7, originDir, { ACCESS: "public", ADMIN_TOKEN }, { v2: false, wranglerArgs: ["--persist-to", path.join(work, "bundle-state"), ...(await r2Args(r2))] });
  const inspector = await connectInspector(stack.edge.inspectorPort);
  try {
    await inspector.stopNetworkEvents();
    const watched: Watched = { runtime: edgeProcesses(stack.edge.processGroup, stack.edge.url).runtime, ...(r2 ? { r2: r2.pid } : {}) };
    const originBefore = stack.recorder.exchanges.length;
    let made: { bundles: { format: string; size: number }[] } | undefined;
    // node:http, not fetch: a generation may take longer than fetch's 300 s wait for headers.
    const generate = async () => {
      const body = new TextEncoder().encode(JSON.stringify({ repo: "/" }));
      const answer = await exchange(`${stack.edge.url}/.hgedge/admin/bundles`, { method: "POST", headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, body, keepBody: true });
      if (answer.status !== 200) throw new Error(`bundle generation failed: HTTP ${answer.status} ${answer.body?.toString()}`);
      made = JSON.parse((answer.body as Buffer).toString());
      return { status: 200, headers: { "x-hgedge-cache": "GENERATED" } };
    };
    const p = await profiled(inspector, watched, generate, "GENERATED", 1000);
    const bundles = (made?.bundles ?? []).map((b) => ({ format: b.format, size: b.size }));
    const originBytes = stack.recorder.exchanges.slice(originBefore).reduce((n, e) => n + e.responseBody.length, 0);
    return { revisions, bundles, bundleBytes: bundles.reduce((n, b) => n + b.size, 0), originBytes, wallMs: p.wallMs, isolateCpuMs: p.cpuMs, processCpuMs: p.processCpuMs, r2ProcessCpuMs: p.r2ProcessCpuMs, top: p.top };
  } finally {
    inspector.close();
    await stack.stop();
  }
}

function describeBundle(b: BundleGeneration): string {
  const perGb = (ms: number) => (ms / (b.bundleBytes / 1e9) / 1000).toFixed(1);
  return [
    `Clone-bundle generation, ${b.revisions} changesets: ${b.bundles.map((x) => `${x.format} ${(x.size / 1e6).toFixed(1)} MB`).join(", ")} (${(b.bundleBytes / 1e6).toFixed(1)} MB in all) from ${(b.originBytes / 1e6).toFixed(1)} MB the origin sent, ${(b.wallMs / 1000).toFixed(1)} s wall.`,
    `CPU: hgedge's isolate (profiler) ${(b.isolateCpuMs / 1000).toFixed(1)} s = ${perGb(b.isolateCpuMs)} s per GB of bundle; hgedge's workerd process ${(b.processCpuMs / 1000).toFixed(1)} s = ${perGb(b.processCpuMs)} s per GB; R2 process ${(b.r2ProcessCpuMs / 1000).toFixed(1)} s.`,
    `Top: ${b.top.slice(0, 6).map((t) => `${t.name} ${(t.ms / 1000).toFixed(1)} s`).join(", ")}`,
  ].join("\n");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
