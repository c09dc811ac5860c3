/**
 * Helpers the benchmarks share: command-line options, the edge's processes and their CPU time
 * and resident memory (read from /proc), timed HTTP exchanges on loopback, and where results go.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync, readlinkSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { projectRoot, runHgOk, type Exchange as RecordedExchange } from "../../harness/mercurial.ts";

export const RESULTS_DIR = path.join(projectRoot, "bench-results");
export const CHARTS_DIR = path.join(projectRoot, "docs/bench");

export function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isFinite(value)) throw new Error(`--${name} needs a number, got ${process.argv[at + 1]}`);
  return value;
}

export function flag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}

export async function writeResult(name: string, result: unknown): Promise<string> {
  await mkdir(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `${name}.json`);
  await writeFile(file, JSON.stringify(result, null, 2) + "\n");
  return file;
}

export async function writeChart(name: string, svg: string): Promise<string> {
  await mkdir(CHARTS_DIR, { recursive: true });
  const file = path.join(CHARTS_DIR, `${name}.svg`);
  await writeFile(file, svg);
  return file;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** The machine, for the record: CPU model, cores, memory, kernel, Node. */
export function machine(): Record<string, string | number> {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const memKiB = Number(/MemTotal:\s+(\d+)/.exec(readFileSync("/proc/meminfo", "utf8"))?.[1] ?? 0);
  return {
    cpu: /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? "unknown",
    cores: cpuinfo.split("\n").filter((l) => l.startsWith("processor")).length,
    memoryGiB: Math.round((memKiB / 1024 / 1024) * 10) / 10,
    kernel: readFileSync("/proc/sys/kernel/osrelease", "utf8").trim(),
    node: process.version,
    loadAverage: readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" "),
  };
}

// --- processes ------------------------------------------------------------------------------

const CLOCK_TICKS = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;

export interface ProcessInfo {
  pid: number;
  comm: string;
  args: string[];
}

function statFields(pid: number): { comm: string; fields: string[] } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after the closing ")".
  return { comm: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")), fields: stat.slice(stat.lastIndexOf(")") + 2).split(" ") };
}

/** Every live process, with its command line (processes that end while we look are skipped). */
export function processes(): (ProcessInfo & { pgrp: number })[] {
  const out: (ProcessInfo & { pgrp: number })[] = [];
  for (const entry of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    const pid = Number(entry);
    try {
      const { comm, fields } = statFields(pid);
      const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
      out.push({ pid, comm, args, pgrp: Number(fields[2]) });
    } catch {
      // gone
    }
  }
  return out;
}

/** User + system CPU seconds the process has used so far (all its threads). */
export function cpuSeconds(pid: number): number {
  const { fields } = statFields(pid);
  // After "(comm) ": state(0) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime(11) stime(12)
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Resident set size in KiB (VmRSS). */
export function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
}

/**
 * The processes behind `npm start` (wrangler dev): `proxy` is the workerd that owns the port the
 * client connects to (wrangler's proxy worker, a local-development layer with no counterpart in
 * production); `runtime` is the workerd running hgedge itself together with miniflare's
 * simulated R2 bucket; `wrangler` is the Node process driving both.
 */
export interface EdgeProcesses {
  proxy: number;
  runtime: number;
  wrangler: number;
}

export function edgeProcesses(processGroup: number, edgeUrl: string): EdgeProcesses {
  const port = new URL(edgeUrl).port;
  const group = processes().filter((p) => p.pgrp === processGroup);
  const workerds = group.filter((p) => p.comm === "workerd");
  const proxy = workerds.find((p) => p.args.some((a) => a.endsWith(`=127.0.0.1:${port}`)));
  const runtime = workerds.find((p) => p !== proxy);
  const wrangler = group.find((p) => p.args.some((a) => a.endsWith("wrangler-dist/cli.js")));
  if (!proxy || !runtime || !wrangler) {
    throw new Error(`cannot tell the edge's processes apart: ${group.map((p) => `${p.pid} ${p.comm} ${p.args.join(" ")}`).join("\n")}`);
  }
  return { proxy: proxy.pid, runtime: runtime.pid, wrangler: wrangler.pid };
}

/** The IPv4 loopback addresses (`127.0.0.1:port`) process `pid` listens on. */
export function loopbackAddresses(pid: number): string[] {
  return execFileSync("ss", ["-ltnpH"])
    .toString()
    .split("\n")
    .filter((line) => line.includes(`pid=${pid},`))
    .map((line) => line.trim().split(/\s+/)[3] ?? "")
    .filter((address) => address.startsWith("127.0.0.1:"));
}

/**
 * The address of the runtime workerd's own entry socket, found by asking each loopback port the
 * process listens on for an answer only hgedge gives (`ro/pushkey` is refused with 403 and
 * `x-hgedge-cache: BYPASS`, without R2 or the origin). Talking to it directly leaves out
 * wrangler's proxy worker, a local-development layer that costs about 100 ns of CPU per byte of
 * a streamed body (see BENCHMARKS.md) and that production does not have.
 */
export async function runtimeUrl(runtimePid: number): Promise<string> {
  for (const address of loopbackAddresses(runtimePid)) {
    const url = `http://${address}`;
    try {
      const answer = await exchange(`${url}/api/exp-http-v2-0003/ro/pushkey`, { method: "POST", body: new Uint8Array(0), timeoutMs: 3000 });
      if (answer.status === 403 && answer.headers["x-hgedge-cache"] === "BYPASS") return url;
    } catch {
      // not an HTTP socket
    }
  }
  throw new Error(`hgedge's runtime workerd (pid ${runtimePid}) answers on none of its loopback ports`);
}

/** The `hg serve` process listening on `port` (the Python process: the wrapper execs it). */
export function hgServePid(port: number): number {
  const found = processes().find((p) => p.args.includes("serve") && p.args.includes(String(port)) && p.args.includes("-p"));
  if (!found) throw new Error(`no hg serve process found for port ${port}`);
  return found.pid;
}

// --- timed HTTP ------------------------------------------------------------------------------

export interface Exchange {
  status: number;
  headers: http.IncomingHttpHeaders;
  bytes: number;
  /** Request sent → last byte received. */
  ms: number;
  /** The body, only when asked for. */
  body?: Buffer;
}

/**
 * One request on a fresh connection (no keep-alive, the same for every server measured), the
 * response read to its end. `onChunk` sees each chunk as it arrives and may pause the reader by
 * returning a promise.
 */
export function exchange(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: Uint8Array; keepBody?: boolean; onChunk?: (chunk: Buffer) => void | Promise<void>; timeoutMs?: number } = {},
): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const request = http.request(url, { method: init.method ?? "GET", headers: init.headers, agent: false }, (response) => {
      let bytes = 0;
      const parts: Buffer[] = [];
      response.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
        if (init.keepBody) parts.push(chunk);
        const pending = init.onChunk?.(chunk);
        if (pending) {
          response.pause();
          pending.then(() => response.resume(), reject);
        }
      });
      response.on("end", () => {
        const result: Exchange = { status: response.statusCode ?? 0, headers: response.headers, bytes, ms: performance.now() - started };
        if (init.keepBody) result.body = Buffer.concat(parts);
        resolve(result);
      });
      response.on("error", reject);
    });
    request.on("error", reject);
    if (init.timeoutMs) request.setTimeout(init.timeoutMs, () => request.destroy(new Error(`no answer within ${init.timeoutMs} ms`)));
    request.end(init.body ? Buffer.from(init.body.buffer, init.body.byteOffset, init.body.byteLength) : undefined);
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// A benchmark stopped by a signal (timeout, Ctrl-C) must not leave its edge or origin running:
// exiting runs the exit handlers of harness/, which kill their process groups.
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130));

/**
 * The benchmarks' repository: `revs` changesets generated deterministically by
 * scripts/bench/makerepo.py (source-like files edited a few at a time, files added over time,
 * some binary blobs, two branches, no removals).
 */
export async function makeBenchRepo(hg: string, dir: string, revs: number): Promise<void> {
  await runHgOk(hg, ["init", dir]);
  const extension = `extensions.makerepo=${path.join(projectRoot, "scripts/bench/makerepo.py")}`;
  // About 20 ms a changeset on the 2-core machine, plus room for a busy one.
  await runHgOk(hg, ["--config", extension, "-R", dir, "hgedge-makerepo", String(revs)], { timeoutMs: Math.max(600_000, revs * 100) });
}

/**
 * Where generated repositories are kept between runs: a 40 000-changeset repository takes
 * minutes to generate, and every benchmark run at that size needs the same one.
 * HGEDGE_BENCH_CACHE moves it (e.g. to share it between work trees).
 */
export const BENCH_REPO_CACHE = process.env.HGEDGE_BENCH_CACHE ?? path.join(RESULTS_DIR, "repos");

/**
 * The benchmarks' repository of `revs` changesets made by `hg`, generated once and then reused:
 * the cache entry is named by the revision count, the generator's source and the Mercurial
 * version, so a change to any of them makes a new one. Callers must not write into it.
 */
export async function cachedBenchRepo(hg: string, revs: number): Promise<string> {
  const generator = readFileSync(path.join(projectRoot, "scripts/bench/makerepo.py"));
  const version = await runHgOk(hg, ["version", "-q"]);
  const key = createHash("sha256").update(generator).update(version).digest("hex").slice(0, 12);
  const dir = path.join(BENCH_REPO_CACHE, `${revs}-${key}`);
  if (existsSync(path.join(dir, ".hg", "store"))) return dir;
  // Generated beside its final place and renamed when complete: an interrupted run leaves
  // no half-made repository that a later run would take for a whole one.
  const partial = `${dir}.partial-${process.pid}`;
  await rm(partial, { recursive: true, force: true });
  await mkdir(BENCH_REPO_CACHE, { recursive: true });
  await makeBenchRepo(hg, partial, revs);
  await rename(partial, dir);
  return dir;
}

/** What the origin served (seen by a recording proxy) for one clone, and how long it took. */
export interface MeasuredClone {
  bytes: number;
  requests: number;
  seconds: number;
  /** What Mercurial printed. */
  output: string;
}

/** Runs `hg <cloneArgs>` and counts the exchanges the recording proxy saw meanwhile. */
export async function measuredClone(hg: string, cloneArgs: string[], exchanges: RecordedExchange[]): Promise<MeasuredClone> {
  const before = exchanges.length;
  const started = performance.now();
  const output = await runHgOk(hg, cloneArgs, { timeoutMs: 600_000 });
  const seconds = (performance.now() - started) / 1000;
  const served = exchanges.slice(before);
  return { bytes: served.reduce((n, e) => n + e.responseBody.length, 0), requests: served.length, seconds, output };
}

// --- at scale: counting without keeping -----------------------------------------------------

/** What a counting proxy has passed on so far. */
export interface CountingProxy {
  url: string;
  /** Response body bytes sent to clients, and requests answered. */
  counts(): { bytes: number; requests: number };
  stop(): Promise<void>;
}

/**
 * A loopback HTTP/1.1 reverse proxy to `targetUrl` that counts response bytes and keeps nothing
 * (the recording proxy of harness/mercurial.ts keeps every body: gigabytes at the size of a real
 * repository). The Host header is passed on unchanged, so that URLs the target builds from it
 * (hgedge's redirects to its content route) point at this proxy, and their bytes are counted too.
 */
export async function startCountingProxy(targetUrl: string): Promise<CountingProxy> {
  const target = new URL(targetUrl);
  let bytes = 0;
  let requests = 0;
  const server = http.createServer((req, res) => {
    const upstream = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, connection: "close" }, agent: false },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, answer.rawHeaders);
        answer.on("data", (chunk: Buffer) => (bytes += chunk.length));
        answer.on("end", () => (requests += 1));
        answer.pipe(res);
      },
    );
    upstream.on("error", (error) => (res.headersSent ? res.destroy(error) : res.writeHead(502).end(`counting proxy: ${error.message}\n`)));
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    counts: () => ({ bytes, requests }),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Open sockets of process `pid` (its file descriptors that are sockets); 0 once it is gone. */
export function openSockets(pid: number): number {
  try {
    let sockets = 0;
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) sockets += 1;
      } catch {
        // closed meanwhile
      }
    }
    return sockets;
  } catch {
    return 0;
  }
}

/** Peaks of a group of processes, sampled while something runs. */
export interface GroupPeaks {
  /** Highest resident memory of each watched process, KiB. */
  rssKiB: Record<string, number>;
  /** Highest sum of the other processes' resident memory (the rest of the group), KiB. */
  othersRssKiB: number;
  /** Highest number of sockets open in the whole group at once. */
  sockets: number;
}

/**
 * Samples every `intervalMs` the resident memory of the named processes, the rest of process
 * group `group`, and the sockets the whole group holds; `peaks()` says the highest seen since the
 * last `reset()`.
 */
export function sampleGroup(group: number, named: Record<string, number>, intervalMs = 500) {
  let peaks: GroupPeaks;
  const reset = () => (peaks = { rssKiB: Object.fromEntries(Object.keys(named).map((k) => [k, 0])), othersRssKiB: 0, sockets: 0 });
  reset();
  const sample = () => {
    const pids = processes().filter((p) => p.pgrp === group).map((p) => p.pid);
    const namedPids = new Set(Object.values(named));
    let others = 0;
    let sockets = 0;
    for (const pid of pids) {
      const rss = (() => {
        try {
          return rssKiB(pid);
        } catch {
          return 0;
        }
      })();
      if (!namedPids.has(pid)) others += rss;
      sockets += openSockets(pid);
    }
    for (const [name, pid] of Object.entries(named)) {
      try {
        peaks.rssKiB[name] = Math.max(peaks.rssKiB[name] ?? 0, rssKiB(pid));
      } catch {
        // gone
      }
    }
    peaks.othersRssKiB = Math.max(peaks.othersRssKiB, others);
    peaks.sockets = Math.max(peaks.sockets, sockets);
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  return {
    /** The peaks so far, then starts over. */
    take(): GroupPeaks {
      sample();
      const taken = peaks;
      reset();
      return taken;
    },
    stop: () => clearInterval(timer),
  };
}

// `--devtools-network` on a benchmark's command line keeps wrangler's DevTools Network events on
// in the edge it starts: `npm start` turns them off unless told so (scripts/start.ts).
if (flag("devtools-network")) process.env.HGEDGE_DEVTOOLS_NETWORK = "1";
