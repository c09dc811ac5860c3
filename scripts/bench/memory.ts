/**
 * Memory: the edge's resident memory while it streams a 1 GiB response — through the
 * pass-through path, through the fill path (a cacheable v2 command stored in R2 while it
 * streams), and, for information, as an inline hit read back from R2 — once with a client
 * reading as fast as it can and once with a slow client, to show backpressure.
 *
 *   npx tsx scripts/bench/memory.ts [--gib N] [--slow-gib N] [--slow-mib-per-s N] [--no-slow] [--via-proxy] [--devtools-network] [--r2-process]
 *
 * --gib: size of each fast response (default 1); --slow-gib, --slow-mib-per-s: the slow reader's
 * responses (default 0.125 GiB read at 4 MiB/s, half a minute each); --no-slow: fast runs only.
 *
 * The origin is a scripted loopback server in this process that generates its answers on the
 * fly (so the origin holds nothing): a 1 GiB `raw-file` download, and a `filedata` answer with
 * one 1 GiB revision, framed as Mercurial frames it. RSS (/proc/<pid>/status VmRSS) of every
 * process of `npm start` is sampled every 100 ms, with the bytes the origin has sent and the
 * client has received by then. Under wrangler dev the request crosses two workerd processes:
 * wrangler's proxy worker (local development only) and the runtime running hgedge, which also
 * runs miniflare's simulated R2 bucket. By default the client talks to the runtime directly
 * (wrangler's proxy worker spends ~100 ns of CPU per streamed byte, which would make 1 GiB take
 * minutes); `--via-proxy` goes through `npm start`'s port instead.
 *
 * Through the inspector the bench also reads the heaps of hgedge's isolate and of the simulated
 * R2's (an isolate of the same runtime, so inside its RSS), collects their garbage before each
 * run and after it (to tell garbage from what is kept), and turns off the Network events wrangler
 * asks the runtime for (an event per few KiB of every origin body, a development-only cost;
 * `--devtools-network` leaves them on).
 *
 * --r2-process: the R2 bucket lives in a workerd process of its own (scripts/bench/r2process.ts),
 * reached by hgedge's process over a loopback socket, so that hgedge's workerd RSS no longer
 * holds the simulator's part copies and blob writes: what remains is hgedge's isolate and the
 * runtime around it. The R2 process's RSS is reported beside it.
 */
import { createCipheriv } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import type net from "node:net";
import path from "node:path";
import { once } from "node:events";
import { startEdge, type Edge } from "../../harness/edge.ts";
import { FRAMING_MEDIA_TYPE } from "../../src/protocol/capabilities.ts";
import { bytes, cborMap, encode } from "../../src/protocol/cbor.ts";
import { encodeRequestBody } from "../../src/protocol/requests.ts";
import { ResponseEmitter } from "../../src/protocol/responses.ts";
import { edgeProcesses, exchange, flag, machine, median, option, rssKiB, runtimeUrl, sleep, writeChart, writeResult, type EdgeProcesses } from "./support.ts";
import { connectInspector, connectIsolateAt, connectRuntimeIsolate, type Inspector } from "./inspector.ts";
import { lineChart } from "./svg.ts";
import { configWithR2At, startR2Process, type R2Process } from "./r2process.ts";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";

const MiB = 1024 * 1024;
const TARGET_MIB = 32;
const REPO = "/memrepo";
const CHUNK = (() => {
  const key = Buffer.alloc(16, 7);
  return createCipheriv("aes-128-ctr", key, Buffer.alloc(16)).update(Buffer.alloc(MiB));
})();

// --- the scripted origin ---------------------------------------------------------------------

interface ScriptedOrigin {
  url: string;
  /** Bytes written to sockets so far (all responses). */
  sent(): number;
  stop(): Promise<void>;
}

async function write(res: http.ServerResponse, data: Uint8Array): Promise<void> {
  if (!res.write(data)) await once(res, "drain");
}

/** `size` bytes of the reusable random chunk, written with backpressure through `sink`. */
async function generate(size: number, sink: (piece: Uint8Array) => Promise<void>): Promise<void> {
  for (let left = size; left > 0; left -= CHUNK.length) await sink(left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left));
}

/** CBOR head of a definite-length byte string of `length` bytes (major type 2). */
function byteStringHead(length: number): Uint8Array {
  const head = Buffer.alloc(9);
  head[0] = 0x5b;
  head.writeBigUInt64BE(BigInt(length), 1);
  return head;
}

function startScriptedOrigin(): Promise<ScriptedOrigin> {
  let sent = 0;
  const count = async (res: http.ServerResponse, data: Uint8Array) => {
    sent += data.length;
    await write(res, data);
  };
  const server = http.createServer(async (req, res) => {
    // `?size=N` sets the answer's size, so that warm-ups can be small.
    const url = new URL(req.url ?? "/", "http://origin.invalid");
    const size = Number(url.searchParams.get("size") ?? 0);
    req.resume();
    await once(req, "end");
    try {
      if (req.method === "GET" && url.pathname.startsWith(`${REPO}/raw-file/`)) {
        res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(size) });
        await generate(size, (piece) => count(res, piece));
      } else if (req.method === "POST" && url.pathname === `${REPO}/api/exp-http-v2-0003/ro/filedata`) {
        res.writeHead(200, { "content-type": FRAMING_MEDIA_TYPE });
        await answerFiledata(size, (frames) => count(res, Buffer.concat(frames)));
      } else {
        res.writeHead(404, { "content-type": "text/plain" });
      }
      res.end();
    } catch (error) {
      res.destroy(error as Error);
    }
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        sent: () => sent,
        stop: async () => {
          server.closeAllConnections();
          await new Promise<void>((r) => server.close(() => r()));
        },
      });
    });
  });
}

/** A `filedata` success with one revision of `size` bytes, framed as hg serve frames it. */
async function answerFiledata(size: number, sink: (frames: Uint8Array[]) => Promise<void>): Promise<void> {
  const emitter = new ResponseEmitter(1);
  await sink(emitter.begin());
  const node = new Uint8Array(20).fill(1);
  const nullNode = new Uint8Array(20);
  await sink(emitter.write(encode(cborMap({ totalitems: 1 }))));
  const revision = cborMap({ fieldsfollowing: [[bytes("revision"), size]], node, parents: [nullNode, nullNode] });
  await sink(emitter.write(encode(revision)));
  await sink(emitter.write(byteStringHead(size)));
  await generate(size, (piece) => sink(emitter.write(piece)));
  await sink(emitter.end());
}

// --- runs ------------------------------------------------------------------------------------

type PathName = "pass-through" | "fill" | "hit";

interface Sample {
  /** Seconds since the request was sent. */
  t: number;
  received: number;
  originSent: number;
  rssKiB: ProcessKiB;
}

/** Per process, KiB; `r2` only with --r2-process (0 otherwise). */
interface ProcessKiB {
  runtime: number;
  proxy: number;
  wrangler: number;
  r2: number;
}

interface Run {
  path: PathName;
  reader: "fast" | "slow";
  bytes: number;
  seconds: number;
  idleKiB: ProcessKiB;
  peakKiB: ProcessKiB;
  /** Disk bytes each process caused to be written during the run (/proc/<pid>/io write_bytes). */
  diskWrittenBytes: ProcessKiB;
  /** Most bytes the origin had sent beyond what the client had received. */
  maxInFlightBytes: number;
  /** RSS of hgedge's workerd, mean of the last quarter minus mean of the second quarter of the run (MiB). */
  lateGrowthMiB: number;
  cacheStatus: string;
  /** hgedge's isolate heap (V8's used size, bytes): after a full collection before the run, and just after the response. */
  heapUsedIdle: number;
  heapUsedEnd: number;
  /** After the response: runtime RSS before and after a full collection of hgedge's isolate, and the isolate's heap after it. */
  afterKiB: { beforeGc: number; afterGc: number };
  heapUsedAfterGc: number;
  /** miniflare's simulated R2 (an isolate of the same runtime): its heap at the end of the response, and after a full collection (bytes). */
  r2HeapUsed: { end: number; afterGc: number };
  samples: Sample[];
}

/** The edge's processes, and the R2 process's workerd when the bucket has its own (--r2-process). */
type Pids = EdgeProcesses & { r2?: number };

/** Inspector sessions on hgedge's isolate and on the simulated R2's. */
interface Isolates {
  hgedge: Inspector;
  r2: Inspector;
}

/** A process of the edge ended mid-run (wrangler restarts its runtime when that crashes). */
class EdgeProcessGone extends Error {}

function rssOf(pids: Pids): ProcessKiB {
  const read = (name: keyof Pids) => {
    const pid = pids[name];
    if (pid === undefined) return 0;
    try {
      return rssKiB(pid);
    } catch {
      throw new EdgeProcessGone(`the edge's ${name} process (pid ${pid}) ended during the run`);
    }
  };
  return { runtime: read("runtime"), proxy: read("proxy"), wrangler: read("wrangler"), r2: read("r2") };
}

function diskWritten(pid: number | undefined): number {
  if (pid === undefined) return 0;
  return Number(/write_bytes:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/io`, "utf8"))?.[1] ?? 0);
}

function diskWrittenByAll(pids: Pids): ProcessKiB {
  return { runtime: diskWritten(pids.runtime), proxy: diskWritten(pids.proxy), wrangler: diskWritten(pids.wrangler), r2: diskWritten(pids.r2) };
}

/** Median RSS of each process over a second of quiet, after a full collection of hgedge's isolate. */
async function idleRss(pids: Pids, isolates: Isolates): Promise<ProcessKiB> {
  await isolates.hgedge.collectGarbage();
  await isolates.r2.collectGarbage();
  await sleep(1500);
  const samples: ProcessKiB[] = [];
  for (let i = 0; i < 10; i++) {
    samples.push(rssOf(pids));
    await sleep(100);
  }
  const mid = (name: keyof ProcessKiB) => median(samples.map((s) => s[name]));
  return { runtime: mid("runtime"), proxy: mid("proxy"), wrangler: mid("wrangler"), r2: mid("r2") };
}

let nodeCounter = 0;

/** A filedata request for a revision node never asked before: a miss, so a fill. */
function filedataRequest(node?: Uint8Array, redirect = false): { body: Uint8Array; node: Uint8Array } {
  const n = node ?? Uint8Array.from({ length: 20 }, (_, i) => (i === 0 ? ++nodeCounter : (Date.now() >> (i % 24)) & 0xff));
  const args = cborMap({ path: bytes("big.bin"), nodes: [n], fields: [bytes("parents"), bytes("revision")] });
  const body = encodeRequestBody([{ name: "filedata", args, ...(redirect ? { redirect: { targets: ["hgedge"], hashes: ["sha256", "sha1"] } } : {}) }], ["identity"]);
  return { body, node: n };
}

const FRAMED = { accept: FRAMING_MEDIA_TYPE, "content-type": FRAMING_MEDIA_TYPE };

/**
 * The runtime's RSS and the isolate's heap just after a response, and again once hgedge's
 * isolate has been fully collected. (The heap is not sampled during the response: workerd
 * answers the inspector only when the isolate is idle, which a fast stream never leaves it.)
 */
async function afterCollection(pids: Pids, isolates: Isolates): Promise<Pick<Run, "afterKiB" | "heapUsedEnd" | "heapUsedAfterGc" | "r2HeapUsed">> {
  const beforeGc = rssKiB(pids.runtime);
  const heapUsedEnd = (await isolates.hgedge.heapUsage()).usedSize;
  const r2End = (await isolates.r2.heapUsage()).usedSize;
  await isolates.hgedge.collectGarbage();
  await isolates.r2.collectGarbage();
  await sleep(1000);
  return {
    afterKiB: { beforeGc, afterGc: rssKiB(pids.runtime) },
    heapUsedEnd,
    heapUsedAfterGc: (await isolates.hgedge.heapUsage()).usedSize,
    r2HeapUsed: { end: r2End, afterGc: (await isolates.r2.heapUsage()).usedSize },
  };
}

async function streamOnce(
  base: string,
  origin: ScriptedOrigin,
  pids: Pids,
  isolates: Isolates,
  spec: { path: PathName; reader: "fast" | "slow"; size: number; slowBytesPerSecond: number; node?: Uint8Array },
): Promise<Run & { node: Uint8Array }> {
  const idle = await idleRss(pids, isolates);
  const heapUsedIdle = (await isolates.hgedge.heapUsage()).usedSize;
  const request = filedataRequest(spec.node);
  const url = spec.path === "pass-through" ? `${base}${REPO}/raw-file/tip/big.bin?size=${spec.size}` : `${base}${REPO}/api/exp-http-v2-0003/ro/filedata?size=${spec.size}`;
  const init = spec.path === "pass-through" ? {} : { method: "POST", headers: FRAMED, body: request.body };
  const samples: Sample[] = [];
  const sentBefore = origin.sent();
  const writtenBefore = diskWrittenByAll(pids);
  let received = 0;
  const started = performance.now();
  const sample = () => samples.push({ t: (performance.now() - started) / 1000, received, originSent: origin.sent() - sentBefore, rssKiB: rssOf(pids) });
  let gone: Error | undefined;
  const sampler = setInterval(() => {
    try {
      sample();
    } catch (error) {
      gone ??= error as Error;
    }
  }, 100);
  const answer = await exchange(url, {
    ...init,
    onChunk: (chunk) => {
      received += chunk.length;
      if (spec.reader === "slow") {
        // Read no faster than slowBytesPerSecond: pause until the schedule catches up.
        const due = (received / spec.slowBytesPerSecond) * 1000 - (performance.now() - started);
        if (due > 5) return sleep(due);
      }
    },
  });
  clearInterval(sampler);
  if (gone) throw gone;
  sample();
  const after = await afterCollection(pids, isolates);
  if (answer.status !== 200) throw new Error(`${spec.path}: HTTP ${answer.status}`);
  const writtenAfter = diskWrittenByAll(pids);
  const written = { runtime: writtenAfter.runtime - writtenBefore.runtime, proxy: writtenAfter.proxy - writtenBefore.proxy, wrangler: writtenAfter.wrangler - writtenBefore.wrangler, r2: writtenAfter.r2 - writtenBefore.r2 };
  const highest = (name: keyof ProcessKiB) => Math.max(...samples.map((s) => s.rssKiB[name]));
  const peak = { runtime: highest("runtime"), proxy: highest("proxy"), wrangler: highest("wrangler"), r2: highest("r2") };
  const quarter = (q: number) => {
    const part = samples.slice(Math.floor((samples.length * q) / 4), Math.floor((samples.length * (q + 1)) / 4));
    return part.reduce((n, s) => n + s.rssKiB.runtime, 0) / Math.max(1, part.length) / 1024;
  };
  return {
    path: spec.path,
    reader: spec.reader,
    bytes: answer.bytes,
    seconds: answer.ms / 1000,
    idleKiB: idle,
    peakKiB: peak,
    diskWrittenBytes: written,
    maxInFlightBytes: Math.max(...samples.map((s) => s.originSent - s.received)),
    lateGrowthMiB: quarter(3) - quarter(1),
    cacheStatus: String(answer.headers["x-hgedge-cache"] ?? ""),
    heapUsedIdle,
    ...after,
    samples,
    node: request.node,
  };
}

/** After a fill, the object must be stored: a request accepting redirects gets one, with its size. */
async function waitForCommit(base: string, node: Uint8Array): Promise<void> {
  const { body } = filedataRequest(node, true);
  for (let tries = 0; tries < 150; tries++) {
    const answer = await exchange(`${base}${REPO}/api/exp-http-v2-0003/ro/filedata?size=0`, { method: "POST", headers: FRAMED, body });
    if (answer.headers["x-hgedge-cache"] === "REDIRECT") return;
    await sleep(200);
  }
  throw new Error("the 1 GiB fill was never committed to R2");
}

async function purge(base: string, token: string): Promise<void> {
  for (let more = true; more; ) {
    const answer = await exchange(`${base}/.hgedge/admin/purge`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: new TextEncoder().encode(JSON.stringify({ repo: REPO })),
      keepBody: true,
    });
    if (answer.status !== 200) throw new Error(`purge failed: HTTP ${answer.status} ${answer.body?.toString()}`);
    more = JSON.parse((answer.body as Buffer).toString()).more === true;
  }
}

async function main(): Promise<void> {
  const size = Math.round(option("gib", 1) * 1024 * MiB);
  const slowSize = Math.round(option("slow-gib", 0.125) * 1024 * MiB);
  const slowBytesPerSecond = option("slow-mib-per-s", 4) * MiB;
  const origin = await startScriptedOrigin();
  const adminToken = "bench-memory-admin-token-0123456789abcdef";
  const r2State = await mkdtemp(path.join(os.tmpdir(), "hgedge-memory-r2-"));
  const r2 = flag("r2-process") ? await startR2Process(r2State) : undefined;
  const edge = await startEdge(
    origin.url,
    { ACCESS: "public", MIN_REDIRECT_BYTES: "0", CACHE_VERSION: `memory-${Date.now()}`, ADMIN_TOKEN: adminToken },
    r2 ? ["--config", await configWithR2At(r2.address)] : [],
  );
  const runs: Run[] = [];
  let isolates: Isolates | undefined;
  try {
    const pids: Pids = { ...edgeProcesses(edge.processGroup, edge.url), ...(r2 ? { r2: r2.pid } : {}) };
    const base = flag("via-proxy") ? edge.url : await runtimeUrl(pids.runtime);
    isolates = { hgedge: await connectInspector(edge.inspectorPort), r2: await simulatedR2(pids.runtime, r2) };
    if (!flag("devtools-network")) await isolates.hgedge.stopNetworkEvents();
    // Warm-ups: load every code path once with small answers before idle is measured.
    await exchange(`${base}${REPO}/raw-file/tip/big.bin?size=${MiB}`);
    const warm = filedataRequest();
    await exchange(`${base}${REPO}/api/exp-http-v2-0003/ro/filedata?size=${MiB}`, { method: "POST", headers: FRAMED, body: warm.body });
    await waitForCommit(base, warm.node);
    const readers = flag("no-slow") ? (["fast"] as const) : (["fast", "slow"] as const);
    for (const reader of readers) {
      for (const pathName of ["pass-through", "fill"] as const) {
        const run = await streamOnce(base, origin, pids, isolates, { path: pathName, reader, size: reader === "slow" ? slowSize : size, slowBytesPerSecond });
        if (pathName === "fill") {
          if (run.cacheStatus !== "MISS") throw new Error(`fill: expected a MISS, got ${run.cacheStatus}`);
          await waitForCommit(base, run.node);
          if (reader === "fast") {
            // Read the stored GiB back inline (no redirect target accepted): the hit path.
            const hit = await streamOnce(base, origin, pids, isolates, { path: "hit", reader, size: 0, slowBytesPerSecond, node: run.node });
            if (hit.cacheStatus !== "HIT") throw new Error(`hit: expected a HIT, got ${hit.cacheStatus}`);
            runs.push(withoutNode(hit));
          }
        }
        runs.push(withoutNode(run));
        const last = runs.at(-1) as Run;
        console.log(
          `${last.path}, ${last.reader} reader: ${(last.bytes / MiB).toFixed(0)} MiB in ${last.seconds.toFixed(1)} s; hgedge workerd RSS ${(last.idleKiB.runtime / 1024).toFixed(0)} → ${(last.peakKiB.runtime / 1024).toFixed(0)} MiB, ` +
            `${(last.afterKiB.beforeGc / 1024).toFixed(0)} MiB at the end, ${(last.afterKiB.afterGc / 1024).toFixed(0)} MiB after a full GC; ` +
            `isolate heap ${(last.heapUsedIdle / MiB).toFixed(1)} → ${(last.heapUsedEnd / MiB).toFixed(1)} MiB, ${(last.heapUsedAfterGc / MiB).toFixed(1)} MiB after GC; ` +
            `simulated R2's heap ${(last.r2HeapUsed.end / MiB).toFixed(1)} MiB, ${(last.r2HeapUsed.afterGc / MiB).toFixed(1)} MiB after GC`,
        );
      }
      await purge(base, adminToken);
    }
  } catch (error) {
    console.error(`wrangler's output (last 3000 characters):\n${edge.output().slice(-3000)}`);
    throw error;
  } finally {
    isolates?.hgedge.close();
    isolates?.r2.close();
    await edge.stop();
    await r2?.stop();
    await rm(r2State, { recursive: true, force: true });
    await origin.stop();
  }
  await report(runs, size, slowBytesPerSecond, r2 !== undefined);
}

/** The simulated bucket's isolate: in hgedge's runtime, or in the R2 process of --r2-process. */
async function simulatedR2(runtimePid: number, r2: R2Process | undefined): Promise<Inspector> {
  if (!r2) return connectRuntimeIsolate(runtimePid, "r2:bucket");
  const inspector = await connectIsolateAt(r2.inspectorAddress, "r2:bucket");
  if (!inspector) throw new Error(`the R2 process's inspector (${r2.inspectorAddress}) lists no r2:bucket isolate`);
  return inspector;
}

function withoutNode(run: Run & { node: Uint8Array }): Run {
  const { node: _node, ...rest } = run;
  return rest;
}

async function report(runs: Run[], size: number, slowBytesPerSecond: number, r2Process: boolean): Promise<void> {
  const mib = (kib: number) => (kib / 1024).toFixed(1);
  const label = (r: Run) => `${r.path === "hit" ? "inline hit from R2" : r.path}, ${r.reader === "slow" ? `slow reader (${slowBytesPerSecond / MiB} MiB/s)` : "fast reader"}`;
  const table = [
    "| path, reader | bytes | seconds | hgedge workerd: idle → peak (MiB) | peak − idle (MiB) | growth, 2nd → 4th quarter (MiB) | end → after a full GC of the isolate (MiB) | isolate heap: idle → end → after GC (MiB) | simulated R2's heap: end → after GC (MiB) | wrangler's proxy workerd: peak − idle (MiB) | wrangler Node: peak − idle (MiB) | max in flight, origin sent − client read (MiB) | disk written by hgedge's workerd (MiB) | R2 process: peak − idle (MiB) | disk written by the R2 process (MiB) | target ≤ 32 MiB |",
    "|---|---:|---:|---|---:|---:|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ...runs.map((r) => {
      const extra = (r.peakKiB.runtime - r.idleKiB.runtime) / 1024;
      return `| ${label(r)} | ${(r.bytes / MiB).toFixed(0)} MiB | ${r.seconds.toFixed(1)} | ${mib(r.idleKiB.runtime)} → ${mib(r.peakKiB.runtime)} | **${extra.toFixed(1)}** | ${r.lateGrowthMiB.toFixed(1)} | ${mib(r.afterKiB.beforeGc)} → ${mib(r.afterKiB.afterGc)} | ${(r.heapUsedIdle / MiB).toFixed(1)} → ${(r.heapUsedEnd / MiB).toFixed(1)} → ${(r.heapUsedAfterGc / MiB).toFixed(1)} | ${(r.r2HeapUsed.end / MiB).toFixed(1)} → ${(r.r2HeapUsed.afterGc / MiB).toFixed(1)} | ${mib(r.peakKiB.proxy - r.idleKiB.proxy)} | ${mib(r.peakKiB.wrangler - r.idleKiB.wrangler)} | ${(r.maxInFlightBytes / MiB).toFixed(1)} | ${(r.diskWrittenBytes.runtime / MiB).toFixed(0)} | ${r2Process ? mib(r.peakKiB.r2 - r.idleKiB.r2) : "–"} | ${r2Process ? (r.diskWrittenBytes.r2 / MiB).toFixed(0) : "–"} | ${extra <= TARGET_MIB ? "met" : "**missed**"} |`;
    }),
  ].join("\n");
  console.log(table);
  const worst = Math.max(...runs.filter((r) => r.path !== "hit").map((r) => (r.peakKiB.runtime - r.idleKiB.runtime) / 1024));
  if (r2Process) {
    // Its own record, beside the in-process layout's; the chart stays that layout's.
    const file = await writeResult("memory-r2-process", { date: new Date().toISOString(), machine: machine(), size, slowBytesPerSecond, r2Process, worstExtraMiB: worst, meets: worst <= TARGET_MIB, runs });
    console.log(`\nresults: ${path.relative(process.cwd(), file)}`);
    return;
  }
  const svg = lineChart({
    title: "hgedge's workerd resident memory while streaming",
    subtitle: `${(size / MiB / 1024).toFixed(2)} GiB per fast response; RSS above idle, sampled every 100 ms; wrangler dev, local R2`,
    xLabel: "bytes the client has received (MiB)",
    yLabel: "workerd RSS − idle (MiB)",
    series: runs.map((r) => ({ name: `${r.path === "hit" ? "hit, inline" : r.path}, ${r.reader}`, points: r.samples.map((s) => [s.received / MiB, (s.rssKiB.runtime - r.idleKiB.runtime) / 1024] as [number, number]) })),
    targets: [{ y: TARGET_MIB, label: "target ≤ 32 MiB" }],
    yInclude: [0, TARGET_MIB * 1.2],
  });
  const chart = await writeChart("memory", svg);
  const file = await writeResult("memory", { date: new Date().toISOString(), machine: machine(), size, slowBytesPerSecond, worstExtraMiB: worst, meets: worst <= TARGET_MIB, runs });
  console.log(`\nchart: ${path.relative(process.cwd(), chart)}; results: ${path.relative(process.cwd(), file)}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
