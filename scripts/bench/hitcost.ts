/**
 * Cost of a hit: latency and CPU of hgedge answering a cached v2 `filedata` command — with a
 * content redirect, and inline from R2 — against the origin (`hg serve` 5.6.1) answering the
 * same command, for one file revision of each size from 1 KB to 100 MB. Measured in one run on
 * one machine, each size's batches one after the other so they never share the CPU.
 *
 *   npx tsx scripts/bench/hitcost.ts [--max-mb N] [--scale X] [--via-proxy] [--devtools-network] [--r2-process]
 *
 * --max-mb: largest object (default 100; `--max-mb 10` for a quicker run);
 * --scale: multiplies the number of timed requests per size (default 1);
 * --via-proxy: send hgedge's requests to `npm start`'s port, through wrangler's proxy worker,
 * instead of straight to the workerd running hgedge (the default: production has no such proxy);
 * --devtools-network: leave on the Network events wrangler dev asks the runtime for (one per few
 * KiB of every origin body: development-only CPU that production does not spend);
 * --r2-process: the R2 bucket in a workerd process of its own (scripts/bench/r2process.ts), so
 * that hgedge's workerd CPU no longer includes the simulator's; the R2 process's is shown beside.
 *
 * The edge runs under `npm start` (wrangler dev, local R2) with ACCESS=public, so a hit does not
 * ask the origin whether the client may read (ACCESS=origin adds that request, remembered for
 * ACCESS_TTL), and MIN_REDIRECT_BYTES=0, so even 1 KB is redirected when the client accepts it.
 * CPU is read from /proc/<pid>/stat (user + system, all threads) around each timed batch.
 */
import { createCipheriv, createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startEdge } from "../../harness/edge.ts";
import { hg56Path, runHgOk, serveRepo } from "../../harness/mercurial.ts";
import { FRAMING_MEDIA_TYPE } from "../../src/protocol/capabilities.ts";
import { bytes, cborMap, mapGet, text } from "../../src/protocol/cbor.ts";
import { fromHex } from "../../src/protocol/hex.ts";
import { encodeRequestBody } from "../../src/protocol/requests.ts";
import { ResponseReader, collectResponses } from "../../src/protocol/responses.ts";
import { cpuSeconds, edgeProcesses, exchange, flag, hgServePid, machine, median, option, runtimeUrl, writeChart, writeResult, type EdgeProcesses } from "./support.ts";
import { stopDevtoolsNetworkEvents } from "./inspector.ts";
import { lineChart } from "./svg.ts";
import { configWithR2At, startR2Process } from "./r2process.ts";

const API = "/api/exp-http-v2-0003/ro/filedata";
const SIZES: { label: string; bytes: number; requests: number }[] = [
  { label: "1 KB", bytes: 1e3, requests: 100 },
  { label: "10 KB", bytes: 1e4, requests: 100 },
  { label: "100 KB", bytes: 1e5, requests: 60 },
  { label: "1 MB", bytes: 1e6, requests: 30 },
  { label: "10 MB", bytes: 1e7, requests: 8 },
  { label: "100 MB", bytes: 1e8, requests: 3 },
];
const TARGET_RATIO = 0.1;

type Mode = "origin" | "redirect" | "inline" | "content";
/** A request hgedge refuses by itself (`ro/pushkey` → 403): no R2, no origin — the local stack's floor. */
type FloorMode = "floor";

interface Batch {
  mode: Mode | FloorMode;
  requests: number;
  medianMs: number;
  /** Median of hgedge's own `Server-Timing: edge;dur=` (to its response headers; workerd's clock only moves on I/O). */
  medianEdgeMs?: number;
  /** CPU seconds per request of each process over the batch. */
  cpuPerRequest: { origin: number; runtime: number; proxy: number; wrangler: number; r2: number };
  bytesPerResponse: number;
}

/** The processes whose CPU is read: the origin, the edge's, and the R2 process's with --r2-process. */
type Pids = EdgeProcesses & { origin: number; r2?: number };

interface SizeResult {
  label: string;
  fileBytes: number;
  objectBytes: number;
  batches: Record<Mode, Batch>;
}

/** Incompressible but reproducible: AES-128-CTR keystream with a fixed key, one IV per file. */
function deterministicBytes(size: number, seed: string): Buffer {
  const key = createHash("sha256").update("hgedge-hitcost").digest().subarray(0, 16);
  const iv = createHash("sha256").update(seed).digest().subarray(0, 16);
  return createCipheriv("aes-128-ctr", key, iv).update(Buffer.alloc(size));
}

async function buildRepo(hg: string, dir: string, sizes: typeof SIZES): Promise<Map<string, string>> {
  await runHgOk(hg, ["init", dir]);
  for (const size of sizes) await writeFile(path.join(dir, fileName(size.label)), deterministicBytes(size.bytes, size.label));
  await runHgOk(hg, ["-R", dir, "commit", "-A", "--config", "ui.username=bench", "-d", "0 0", "-m", "objects of every size"], { timeoutMs: 600_000 });
  // `hg manifest --debug`: "<file node hex> <mode> <path>" per line.
  const nodes = new Map<string, string>();
  for (const line of (await runHgOk(hg, ["-R", dir, "manifest", "--debug", "-r", "tip"])).trim().split("\n")) {
    const [node, , name] = line.split(/\s+/);
    if (node && name) nodes.set(name, node);
  }
  return nodes;
}

const fileName = (label: string) => `object-${label.replace(/\s+/g, "")}.bin`;

function requestBody(file: string, node: string, redirect: boolean): Uint8Array {
  const args = cborMap({ path: bytes(file), nodes: [fromHex(node)], fields: [bytes("parents"), bytes("revision")] });
  return encodeRequestBody([{ name: "filedata", args, ...(redirect ? { redirect: { targets: ["hgedge"], hashes: ["sha256", "sha1"] } } : {}) }], ["identity"]);
}

const FRAMED = { accept: FRAMING_MEDIA_TYPE, "content-type": FRAMING_MEDIA_TYPE };

/** SHA-256 of the bytes after the status map of an `ok` answer (what a redirect target serves). */
function answerDigest(body: Buffer): { sha256: string; size: number } {
  const reader = new ResponseReader({ emitBody: true, decodeObjects: false });
  const hash = createHash("sha256");
  let size = 0;
  let status = "";
  for (const event of reader.push(body)) {
    if (event.type === "status") status = event.status;
    if (event.type === "body") {
      hash.update(event.bytes);
      size += event.bytes.length;
    }
  }
  reader.finish();
  if (status !== "ok") throw new Error(`expected an ok answer, got status ${status || "none"}`);
  return { sha256: hash.digest("hex"), size };
}

function redirectUrl(body: Buffer): string {
  const [response] = collectResponses(body).values();
  const location = response?.statusMap ? mapGet(response.statusMap, "location") : undefined;
  const url = location instanceof Map ? mapGet(location, "url") : undefined;
  if (response?.status !== "redirect" || !(url instanceof Uint8Array)) throw new Error("expected a redirect answer");
  return text(url);
}

async function main(): Promise<void> {
  const hg = hg56Path();
  if (!hg) throw new Error("Mercurial 5.6.1 is missing: run `npm run install-mercurial`");
  const maxBytes = option("max-mb", 100) * 1e6;
  const scale = option("scale", 1);
  const sizes = SIZES.filter((s) => s.bytes <= maxBytes).map((s) => ({ ...s, requests: Math.max(2, Math.round(s.requests * scale)) }));
  const work = await mkdtemp(path.join(os.tmpdir(), "hgedge-hitcost-"));
  try {
    const repo = path.join(work, "origin");
    const nodes = await buildRepo(hg, repo, sizes);
    const origin = await serveRepo({ hgPath: hg, repoDir: repo, v2: true });
    const r2 = flag("r2-process") ? await startR2Process(path.join(work, "r2")) : undefined;
    const edge = await startEdge(origin.url, { ACCESS: "public", MIN_REDIRECT_BYTES: "0", CACHE_VERSION: `hitcost-${Date.now()}` }, r2 ? ["--config", await configWithR2At(r2.address)] : []);
    try {
      const pids: Pids = { origin: hgServePid(origin.port), ...edgeProcesses(edge.processGroup, edge.url), ...(r2 ? { r2: r2.pid } : {}) };
      const edgeUrl = flag("via-proxy") ? edge.url : await runtimeUrl(pids.runtime);
      if (!flag("devtools-network")) await stopDevtoolsNetworkEvents(edge.inspectorPort);
      const floor = await timeBatch("floor", Math.round(200 * scale), pids, () =>
        exchange(edgeUrl + "/api/exp-http-v2-0003/ro/pushkey", { method: "POST", headers: FRAMED, body: new Uint8Array(0) }),
      );
      console.log(`floor (hgedge refusing ro/pushkey by itself): ${floor.medianMs.toFixed(2)} ms, workerd CPU ${(floor.cpuPerRequest.runtime * 1000).toFixed(2)} ms/request`);
      const results: SizeResult[] = [];
      for (const size of sizes) {
        const file = fileName(size.label);
        const node = nodes.get(file);
        if (!node) throw new Error(`no file node for ${file}`);
        results.push(await measureSize(size, file, node, origin.url, edgeUrl, pids));
        const r = results.at(-1) as SizeResult;
        console.log(
          `${size.label}: origin ${r.batches.origin.medianMs.toFixed(2)} ms, redirect ${r.batches.redirect.medianMs.toFixed(2)} ms, inline ${r.batches.inline.medianMs.toFixed(2)} ms`,
        );
      }
      await report(results, floor, r2 !== undefined);
    } finally {
      await edge.stop();
      await r2?.stop();
      await origin.stop();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function measureSize(
  size: (typeof SIZES)[number],
  file: string,
  node: string,
  originUrl: string,
  edgeUrl: string,
  pids: Pids,
): Promise<SizeResult> {
  const plain = requestBody(file, node, false);
  const redirecting = requestBody(file, node, true);
  const post = (base: string, body: Uint8Array, keepBody = false) => exchange(base + API, { method: "POST", headers: FRAMED, body, keepBody });

  // Fill the cache (a miss streams from the origin while storing), then wait for the commit.
  const fromOrigin = await post(originUrl, plain, true);
  const reference = answerDigest(fromOrigin.body as Buffer);
  const miss = await post(edgeUrl, plain);
  if (miss.headers["x-hgedge-cache"] !== "MISS") throw new Error(`${size.label}: expected a MISS first, got ${String(miss.headers["x-hgedge-cache"])}`);
  let redirect = await post(edgeUrl, redirecting, true);
  for (let tries = 0; redirect.headers["x-hgedge-cache"] !== "REDIRECT"; tries++) {
    if (tries > 100) throw new Error(`${size.label}: the object was never committed (last answer ${String(redirect.headers["x-hgedge-cache"])})`);
    await new Promise((r) => setTimeout(r, 200));
    redirect = await post(edgeUrl, redirecting, true);
  }
  // Every way of answering must give the origin's bytes.
  const contentUrl = redirectUrl(redirect.body as Buffer);
  const inline = await post(edgeUrl, plain, true);
  if (inline.headers["x-hgedge-cache"] !== "HIT") throw new Error(`${size.label}: expected an inline HIT, got ${String(inline.headers["x-hgedge-cache"])}`);
  const inlineDigest = answerDigest(inline.body as Buffer);
  const content = await exchange(contentUrl, { keepBody: true });
  const contentDigest = createHash("sha256").update(content.body as Buffer).digest("hex");
  if (inlineDigest.sha256 !== reference.sha256 || contentDigest !== reference.sha256) {
    throw new Error(`${size.label}: hgedge's answers differ from the origin's (origin ${reference.sha256}, inline ${inlineDigest.sha256}, content route ${contentDigest})`);
  }

  const send: Record<Mode, () => ReturnType<typeof exchange>> = {
    origin: () => post(originUrl, plain),
    redirect: () => post(edgeUrl, redirecting),
    inline: () => post(edgeUrl, plain),
    content: () => exchange(contentUrl),
  };
  const batches = {} as Record<Mode, Batch>;
  for (const mode of ["origin", "redirect", "inline", "content"] as const) {
    await send[mode](); // warm-up
    batches[mode] = await timeBatch(mode, size.requests, pids, send[mode]);
  }
  return { label: size.label, fileBytes: size.bytes, objectBytes: reference.size, batches };
}

/** `requests` sequential requests; CPU of every process read before and after the batch. */
async function timeBatch(mode: Mode | FloorMode, requests: number, pids: Pids, send: () => ReturnType<typeof exchange>): Promise<Batch> {
  const before = cpuOf(pids);
  const times: number[] = [];
  const edgeTimes: number[] = [];
  let received = 0;
  for (let i = 0; i < requests; i++) {
    const answer = await send();
    if (answer.status !== (mode === "floor" ? 403 : 200)) throw new Error(`${mode}: HTTP ${answer.status}`);
    times.push(answer.ms);
    const edgeMs = /edge;dur=([\d.]+)/.exec(String(answer.headers["server-timing"] ?? ""))?.[1];
    if (edgeMs !== undefined) edgeTimes.push(Number(edgeMs));
    received += answer.bytes;
  }
  const after = cpuOf(pids);
  const per = (k: keyof typeof before) => (after[k] - before[k]) / requests;
  return {
    mode,
    requests,
    medianMs: median(times),
    ...(edgeTimes.length ? { medianEdgeMs: median(edgeTimes) } : {}),
    cpuPerRequest: { origin: per("origin"), runtime: per("runtime"), proxy: per("proxy"), wrangler: per("wrangler"), r2: per("r2") },
    bytesPerResponse: received / requests,
  };
}

function cpuOf(pids: Pids): Record<keyof Pids, number> {
  return { origin: cpuSeconds(pids.origin), runtime: cpuSeconds(pids.runtime), proxy: cpuSeconds(pids.proxy), wrangler: cpuSeconds(pids.wrangler), r2: pids.r2 === undefined ? 0 : cpuSeconds(pids.r2) };
}

async function report(results: SizeResult[], floor: Batch, r2Process: boolean): Promise<void> {
  const ms = (s: number) => (s * 1000).toFixed(2);
  const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(3) : "n/a");
  const rows = results.map((r) => {
    const o = r.batches.origin;
    const lines: string[] = [];
    for (const mode of ["redirect", "inline"] as const) {
      const b = r.batches[mode];
      const edgeCpu = b.cpuPerRequest.runtime + b.cpuPerRequest.proxy;
      lines.push(
        `| ${r.label} | ${mode} | ${o.medianMs.toFixed(2)} | ${b.medianMs.toFixed(2)} | **${ratio(b.medianMs, o.medianMs)}** | ${ms(o.cpuPerRequest.origin)} | ${ms(b.cpuPerRequest.runtime)} | **${ratio(b.cpuPerRequest.runtime, o.cpuPerRequest.origin)}** | ${ratio(edgeCpu, o.cpuPerRequest.origin)} | ${ms(b.cpuPerRequest.origin)} | ${r2Process ? ms(b.cpuPerRequest.r2) : "–"} |`,
      );
    }
    return lines.join("\n");
  });
  const table = [
    "| object | hgedge answers | origin latency (ms) | hgedge latency (ms) | latency ratio | origin CPU/request (ms) | hgedge workerd CPU/request (ms) | CPU ratio | CPU ratio incl. wrangler's proxy workerd | origin CPU during hgedge's batch (ms/request) | R2 process CPU/request (ms) |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...rows,
  ].join("\n");
  const content = [
    "| object | content route GET latency (ms) | content route workerd CPU/request (ms) |",
    "|---|---:|---:|",
    ...results.map((r) => `| ${r.label} | ${r.batches.content.medianMs.toFixed(2)} | ${ms(r.batches.content.cpuPerRequest.runtime)} |`),
  ].join("\n");
  console.log(table);
  console.log(
    `\nThe local stack's floor (hgedge refusing ro/pushkey by itself, ${floor.requests} requests): latency ${floor.medianMs.toFixed(2)} ms, ` +
      `workerd CPU ${ms(floor.cpuPerRequest.runtime)} ms/request (+ ${ms(floor.cpuPerRequest.proxy)} ms in wrangler's proxy workerd, ${ms(floor.cpuPerRequest.wrangler)} ms in wrangler's Node process).`,
  );
  console.log("\nFor information, fetching the redirect's URL from the local content route (production: R2 or its custom domain):");
  console.log(content);

  if (r2Process) {
    // Its own record beside the in-process layout's; the chart stays that layout's.
    const file = await writeResult("hitcost-r2-process", { date: new Date().toISOString(), machine: machine(), settings: { ACCESS: "public", MIN_REDIRECT_BYTES: 0, viaProxy: flag("via-proxy"), r2Process }, floor, results });
    console.log(`\nresults: ${path.relative(process.cwd(), file)}`);
    return;
  }
  const sizeTick = (x: number) => (x >= 1e6 ? `${x / 1e6} MB` : `${x / 1e3} KB`);
  const series = (name: string, mode: "redirect" | "inline", value: (b: Batch, o: Batch) => number) => ({
    name,
    points: results.map((r) => [r.fileBytes, value(r.batches[mode], r.batches.origin)] as [number, number]),
  });
  const svg = lineChart({
    title: "Cost of a hit ÷ the origin answering the same filedata command",
    subtitle: "hgedge (wrangler dev, local R2) vs hg serve 5.6.1, one run, loopback; lower is better",
    xLabel: "file revision size (log scale)",
    yLabel: "hgedge ÷ origin (log scale)",
    xLog: true,
    yLog: true,
    xTick: sizeTick,
    yTick: (y) => (y >= 1 ? `${y}` : y.toString()),
    series: [
      series("latency, redirect", "redirect", (b, o) => b.medianMs / o.medianMs),
      series("latency, inline", "inline", (b, o) => b.medianMs / o.medianMs),
      series("CPU, redirect", "redirect", (b, o) => Math.max(b.cpuPerRequest.runtime, 1e-6) / o.cpuPerRequest.origin),
      series("CPU, inline", "inline", (b, o) => Math.max(b.cpuPerRequest.runtime, 1e-6) / o.cpuPerRequest.origin),
    ],
    targets: [{ y: TARGET_RATIO, label: "target ≤ 0.1" }],
  });
  const chart = await writeChart("hitcost", svg);
  const targetMet = (mode: "redirect" | "inline", pick: (b: Batch, o: Batch) => number) => results.every((r) => pick(r.batches[mode], r.batches.origin) <= TARGET_RATIO);
  const summary = {
    redirectLatencyMax: Math.max(...results.map((r) => r.batches.redirect.medianMs / r.batches.origin.medianMs)),
    redirectCpuMax: Math.max(...results.map((r) => r.batches.redirect.cpuPerRequest.runtime / r.batches.origin.cpuPerRequest.origin)),
    inlineLatencyMax: Math.max(...results.map((r) => r.batches.inline.medianMs / r.batches.origin.medianMs)),
    inlineCpuMax: Math.max(...results.map((r) => r.batches.inline.cpuPerRequest.runtime / r.batches.origin.cpuPerRequest.origin)),
    redirectMeets: targetMet("redirect", (b, o) => b.medianMs / o.medianMs) && targetMet("redirect", (b, o) => b.cpuPerRequest.runtime / o.cpuPerRequest.origin),
    inlineMeets: targetMet("inline", (b, o) => b.medianMs / o.medianMs) && targetMet("inline", (b, o) => b.cpuPerRequest.runtime / o.cpuPerRequest.origin),
  };
  const file = await writeResult("hitcost", { date: new Date().toISOString(), machine: machine(), settings: { ACCESS: "public", MIN_REDIRECT_BYTES: 0, viaProxy: flag("via-proxy") }, summary, floor, results });
  console.log(`\nchart: ${path.relative(process.cwd(), chart)}; results: ${path.relative(process.cwd(), file)}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
