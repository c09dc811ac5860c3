/**
 * The local R2 bucket in a process of its own, for benchmarks that must count hgedge's own CPU
 * and memory only. Under plain `npm start` miniflare's R2 simulator runs inside hgedge's workerd
 * process (another isolate, on the same thread), so /proc figures of that process include it and
 * V8's sampling profiler, whose samples are wall-clock intervals, cannot exclude it either.
 *
 * Here a second miniflare (its own workerd process, started from this Node process) owns the
 * bucket and serves workerd's R2 protocol on a loopback socket, and the edge's wrangler dev gets a
 * copy of wrangler.toml whose OBJECTS binding points at that socket (scripts/bench/r2plugins.mjs):
 * hgedge's process then sends R2 requests over TCP, as a deployed Worker reaches R2 over the
 * network. Everything else about the edge is as `npm start` runs it.
 */
import { readFileSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { Miniflare } from "miniflare";
import { freePort, projectRoot } from "../../harness/mercurial.ts";
import { processes } from "./support.ts";

const PLUGINS = path.join(projectRoot, "scripts/bench/r2plugins.mjs");
const BUCKET = "hgedge-objects";
const R2_BLOCK = `[[r2_buckets]]\nbinding = "OBJECTS"\nbucket_name = "${BUCKET}"\n`;

export interface R2Process {
  /** host:port of the socket serving workerd's R2 protocol. */
  address: string;
  /** The workerd process that owns the bucket (for its CPU and memory). */
  pid: number;
  /** Its V8 inspector (host:port), where the simulated bucket is isolate `r2:bucket`. */
  inspectorAddress: string;
  stop(): Promise<void>;
}

/**
 * Starts the bucket's own workerd, its state in `persistDir`. The Worker there hands every
 * request to miniflare's simulated bucket unchanged: it is the R2 service's front door.
 */
export async function startR2Process(persistDir: string): Promise<R2Process> {
  const before = new Set(childWorkerds());
  const inspectorPort = await freePort();
  const mf = new Miniflare({
    r2Persist: persistDir,
    inspectorPort,
    workers: [
      {
        name: "r2host",
        modules: true,
        script: "export default { fetch(request, env) { return env.RAW.fetch(request); } };",
        compatibilityDate: "2025-01-01",
        r2Buckets: { BUCKET },
        unsafeBindings: [{ name: "RAW", type: "raw", plugin: { package: PLUGINS, name: "hgedge-r2-raw" }, options: { service: `r2:bucket:${BUCKET}` } }],
        // Its own socket, without miniflare's entry Worker in between.
        unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }],
      },
    ],
  });
  await mf.ready;
  const url = await mf.unsafeGetDirectURL("r2host");
  const pid = childWorkerds().find((p) => !before.has(p));
  if (pid === undefined) throw new Error("the R2 process's workerd was not found among this process's children");
  return { address: url.host, pid, inspectorAddress: `127.0.0.1:${inspectorPort}`, stop: () => mf.dispose() };
}

/** workerd processes started by this Node process. */
function childWorkerds(): number[] {
  return processes()
    .filter((p) => p.comm === "workerd" && parentOf(p.pid) === process.pid)
    .map((p) => p.pid);
}

function parentOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return -1;
  }
}

/**
 * A copy of wrangler.toml whose OBJECTS bucket is the R2 process at `address` (wrangler dev's
 * `--config`), written under .wrangler/ (git-ignored) so that `main` stays a relative path.
 */
export async function configWithR2At(address: string): Promise<string> {
  const toml = await readFile(path.join(projectRoot, "wrangler.toml"), "utf8");
  if (!toml.includes(R2_BLOCK)) throw new Error("wrangler.toml's [[r2_buckets]] OBJECTS block is not where this benchmark expects it");
  const external = [
    "[[unsafe.bindings]]",
    'name = "OBJECTS"',
    'type = "r2_external"',
    `dev = { plugin = { package = ${JSON.stringify(PLUGINS)}, name = "hgedge-r2-external" }, options = { address = ${JSON.stringify(address)} } }`,
    "",
  ].join("\n");
  const moved = toml.replace(R2_BLOCK, external).replace(/^main = "src\//m, 'main = "../src/');
  const dir = path.join(projectRoot, ".wrangler");
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, "bench-r2-process.toml");
  await writeFile(file, moved);
  return file;
}
