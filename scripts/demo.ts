/**
 * `npm run demo`: hgedge's main job in one command, on this machine, with nothing to configure.
 *
 * 1. installs the Mercurials it drives (scripts/install-mercurial.sh; quick when they are there);
 * 2. builds a small repository with today's Mercurial (7.0.1) whose history adds, changes,
 *    renames and removes files, created with `format.use-share-safe=no` so that 5.6.1 can serve it;
 * 3. serves it with a stock wire-protocol-v2 origin (`hg serve` 5.6.1, `HGDEMANDIMPORT=disable`)
 *    behind a recording proxy that counts every request and byte the origin answers;
 * 4. runs hgedge in front of it (`wrangler dev`, its R2 and Durable Objects in a temporary
 *    directory, ACCESS=origin with a random SIGNING_KEY and ADMIN_TOKEN);
 * 5. clones: 5.6.1 over v2 directly (fails: the stock origin's removed-file bug) and through the
 *    edge twice (cold: filled; warm: content redirects), 7.0.1 directly, then — after
 *    `POST /.hgedge/admin/bundles` — 6.x and 7.0.1 through the edge's clone bundle; every clone
 *    passes `hg verify` and has the origin's changesets;
 * 6. prints one table and stops everything it started (also on Ctrl-C or a failure), removing
 *    its temporary directory.
 *
 * Exit status: 0 done, 1 something failed (the message says what, with the edge's last output),
 * 130 interrupted.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { freePort, projectRoot, runHg, runHgOk, serveRepo, startRecordingProxy, type Exchange, type RecordingProxy, type Served } from "../harness/mercurial.ts";

const TOOLS = path.join(projectRoot, ".tools", "bin");
const HG56 = path.join(TOOLS, "hg-5.6.1");
const HG6 = path.join(TOOLS, "hg-6");
const HG7 = path.join(TOOLS, "hg-7.0.1");
/** A 5.x client speaks v2 only when told to. */
const V2_CLIENT = ["--config", "experimental.httppeer.advertise-v2=true"];
/** Repositories made by Mercurial ≥ 6.1 need this for 5.6.1 to open them. */
const SERVABLE_BY_5X = ["--config", "format.use-share-safe=no"];
const EDGE_READY_TIMEOUT_MS = 90_000;
const CLONE_TIMEOUT_MS = 180_000;
/** The clients read no user or system configuration: the demo is the same on every machine. */
const CLIENT_ENV = { HGRCPATH: "", HGPLAIN: "1" };

// ---------------------------------------------------------------------------------------------
// What the demo starts, and stopping it

interface Running {
  work?: string;
  origin?: Served;
  recorder?: RecordingProxy;
  edge?: LocalEdge;
}

const running: Running = {};
let stopping: Promise<void> | undefined;

/** Stops whatever is running, newest first; safe to call more than once. */
function stopAll(): Promise<void> {
  stopping ??= (async () => {
    await running.edge?.stop();
    await running.recorder?.stop();
    await running.origin?.stop();
    if (running.work) await rm(running.work, { recursive: true, force: true });
  })();
  return stopping;
}

// ---------------------------------------------------------------------------------------------
// The edge: wrangler dev in its own process group, with its own state directory

interface LocalEdge {
  url: string;
  output(): string;
  stop(): Promise<void>;
}

/** wrangler → workerd: signalled as a group, so no runtime is left behind. */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

async function startLocalEdge(vars: Record<string, string> & { ADMIN_TOKEN: string }, stateDir: string): Promise<LocalEdge> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startLocalEdgeOnce(vars, stateDir);
    } catch (error) {
      // A port found free can be taken before wrangler binds it: then try new ports.
      if (attempt >= 3 || !/Address already in use/i.test(String(error))) throw error;
    }
  }
}

async function startLocalEdgeOnce(vars: Record<string, string> & { ADMIN_TOKEN: string }, stateDir: string): Promise<LocalEdge> {
  const port = await freePort();
  const inspectorPort = await freePort();
  const wrangler = path.join(projectRoot, "node_modules", ".bin", "wrangler");
  const args = ["dev", "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspectorPort), "--persist-to", stateDir];
  for (const [name, value] of Object.entries(vars)) args.push("--var", `${name}:${value}`);
  const child = spawn(wrangler, args, {
    cwd: projectRoot,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", NO_COLOR: "1" },
  });
  let output = "";
  const keep = (b: Buffer) => {
    output = (output + b.toString()).slice(-256 * 1024);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const edge: LocalEdge = {
    url,
    output: () => output,
    async stop() {
      signalGroup(child, "SIGTERM");
      const timer = setTimeout(() => signalGroup(child, "SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
      signalGroup(child, "SIGKILL"); // workerd, should it outlive wrangler
    },
  };
  running.edge = edge;
  const deadline = Date.now() + EDGE_READY_TIMEOUT_MS;
  let gone = false;
  void exited.then(() => (gone = true));
  while (Date.now() < deadline && !gone) {
    const status = await fetch(`${url}/.hgedge/admin/stats`, { headers: { authorization: `Bearer ${vars.ADMIN_TOKEN}` } }).then((r) => r.status, () => 0);
    if (status === 200) return edge;
    await sleep(250);
  }
  await edge.stop();
  running.edge = undefined;
  throw new Error(`wrangler dev ${gone ? "exited" : "did not answer in time"}:\n${output}`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));


// ---------------------------------------------------------------------------------------------
// The sample repository

/** Fixed author and date: the same nodes on every run. */
const COMMIT = ["--config", "ui.username=demo <demo@example.org>", "-d", "0 0"];

/** `size` bytes that do not compress, the same on every run. */
function binaryBlob(seed: string, size: number): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 0; blocks.length * 32 < size; i++) blocks.push(createHash("sha256").update(`${seed}-${i}`).digest());
  return Buffer.concat(blocks).subarray(0, size);
}

/**
 * A history that adds, changes, renames and removes files (a stock 5.x origin cannot serve
 * such a history over v2 by itself), made by today's Mercurial in the format 5.6.1 can open.
 */
async function buildSampleRepository(dir: string): Promise<void> {
  const hg = (...args: string[]) => runHgOk(HG7, [...SERVABLE_BY_5X, ...args], { cwd: dir, env: CLIENT_ENV });
  const put = async (file: string, content: string | Buffer) => {
    await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
    await writeFile(path.join(dir, file), content);
  };
  await mkdir(dir, { recursive: true });
  await hg("init");
  await put("README.txt", "hgedge demo repository\n");
  await put("docs/guide.md", "# Guide\n\nHow to use it.\n");
  await put("src/util.c", "int util(void) { return 1; }\n");
  await put("assets/logo.bin", binaryBlob("logo", 96 * 1024));
  await hg("commit", ...COMMIT, "-A", "-m", "add the first files");
  for (let i = 1; i <= 8; i++) {
    await put(`src/module${i}.c`, `/* module ${i} */\n${"int counter;\n".repeat(60 * i)}`);
    await put("README.txt", `hgedge demo repository, revision ${i}\n`);
    await hg("commit", ...COMMIT, "-A", "-m", `add module ${i}, change the README`);
  }
  await hg("mv", "docs/guide.md", "docs/handbook.md");
  await hg("commit", ...COMMIT, "-m", "rename the guide");
  await hg("rm", "src/util.c");
  await hg("commit", ...COMMIT, "-m", "remove util.c");
  await put("assets/logo.bin", binaryBlob("logo-2", 96 * 1024));
  await put("src/module1.c", "/* module 1, rewritten */\nint counter = 1;\n");
  await hg("commit", ...COMMIT, "-m", "new logo, rewrite module 1");
}

// ---------------------------------------------------------------------------------------------
// Clones, measured at the origin

interface Row {
  clone: string;
  originRequests: number;
  originBytes: number;
  /** What the edge or R2 gave instead of the origin. */
  fromEdge: string;
  seconds: number;
  result: string;
}

const originBytesOf = (exchanges: Exchange[]) => exchanges.reduce((n, e) => n + e.responseBody.length, 0);

interface Clone {
  row: Row;
  output: string;
}

class Demo {
  private clones = 0;
  readonly rows: Row[] = [];
  private notes = "";

  constructor(
    private readonly work: string,
    private readonly originRepo: string,
    private readonly recorder: RecordingProxy,
  ) {}

  /** Clones `url` with `hgPath`, checks the result and records what the origin served for it. */
  async clone(label: string, hgPath: string, url: string, args: string[], fromEdge: (output: string) => string, mayFail = false): Promise<Clone> {
    const before = this.recorder.exchanges.length;
    const dest = path.join(this.work, `clone-${++this.clones}`);
    const started = performance.now();
    const cloned = await runHg(hgPath, ["clone", "-U", "--verbose", ...args, url, dest], { env: CLIENT_ENV, timeoutMs: CLONE_TIMEOUT_MS });
    const seconds = (performance.now() - started) / 1000;
    const served = this.recorder.exchanges.slice(before);
    const output = cloned.stdout + cloned.stderr;
    const row: Row = { clone: label, originRequests: served.length, originBytes: originBytesOf(served), fromEdge: "", seconds, result: "" };
    if (cloned.code !== 0) {
      if (!mayFail) throw new Error(`${label}: hg clone failed:\n${output}`);
      row.result = "fails";
      this.note(`${label} fails: ${/abort: .*/.exec(output)?.[0] ?? `exit status ${cloned.code}`}`);
    } else {
      await runHgOk(hgPath, ["-R", dest, "verify", "-q"], { env: CLIENT_ENV, timeoutMs: CLONE_TIMEOUT_MS });
      if ((await this.changesets(hgPath, dest)) !== (await this.changesets(HG7, this.originRepo))) {
        throw new Error(`${label}: the clone's changesets differ from the origin's`);
      }
      row.result = "verified";
      row.fromEdge = fromEdge(output);
    }
    this.rows.push(row);
    return { row, output };
  }

  private changesets(hgPath: string, repo: string): Promise<string> {
    return runHgOk(hgPath, ["-R", repo, "log", "-T", "{node}\n"], { env: CLIENT_ENV });
  }

  note(text: string): void {
    this.notes += `${text}\n`;
  }

  /** The one table, bytes also as a share of a direct clone's. */
  table(directBytes: number): string {
    const share = (bytes: number) => (directBytes > 0 ? ` (${((100 * bytes) / directBytes).toFixed(bytes < directBytes / 10 ? 1 : 0)} %)` : "");
    const lines = [["clone", "origin requests", "origin bytes", "served instead", "wall", "hg verify"]];
    for (const row of this.rows) {
      lines.push([row.clone, String(row.originRequests), `${row.originBytes.toLocaleString("en-US")}${share(row.originBytes)}`, row.fromEdge || "–", `${row.seconds.toFixed(1)} s`, row.result]);
    }
    const widths = lines[0]!.map((_, column) => Math.max(...lines.map((line) => line[column]!.length)));
    const render = (line: string[]) => line.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd();
    return [render(lines[0]!), widths.map((w) => "-".repeat(w)).join("  "), ...lines.slice(1).map(render), "", this.notes.trimEnd()].join("\n");
  }
}

const count = (output: string, pattern: RegExp) => (output.match(pattern) ?? []).length;

// ---------------------------------------------------------------------------------------------
// The run

async function adminJson(edge: LocalEdge, token: string, action: string, init: RequestInit = {}): Promise<Record<string, unknown>> {
  const response = await fetch(`${edge.url}/.hgedge/admin/${action}`, { ...init, headers: { authorization: `Bearer ${token}` } });
  const body = (await response.json()) as Record<string, unknown>;
  if (response.status !== 200) throw new Error(`admin ${action} answered ${response.status}: ${JSON.stringify(body)}`);
  return body;
}

function installMercurial(): void {
  const installed = spawnSync("bash", [path.join(projectRoot, "scripts", "install-mercurial.sh")], { encoding: "utf8" });
  if (installed.status !== 0) throw new Error(`scripts/install-mercurial.sh failed:\n${installed.stdout}${installed.stderr}`);
}

const step = (text: string) => console.log(`• ${text}`);

async function run(): Promise<void> {
  step("Mercurial 5.6.1 (wire protocol v2), 6.x and 7.0.1 (scripts/install-mercurial.sh)");
  installMercurial();
  const work = (running.work = await mkdtemp(path.join(os.tmpdir(), "hgedge-demo-")));
  const originRepo = path.join(work, "origin");
  step("a sample repository: adds, changes, a rename and a removal (hg 7.0.1, format.use-share-safe=no)");
  await buildSampleRepository(originRepo);

  running.origin = await serveRepo({ hgPath: HG56, repoDir: originRepo, v2: true });
  const recorder = (running.recorder = await startRecordingProxy(running.origin.url));
  step(`origin: hg 5.6.1 serve with the v2 API (HGDEMANDIMPORT=disable), counted by a recording proxy at ${recorder.url}`);

  const token = randomBytes(32).toString("hex");
  const edge = await startLocalEdge(
    { ORIGIN_URL: recorder.url, ACCESS: "origin", SIGNING_KEY: randomBytes(32).toString("hex"), ADMIN_TOKEN: token, MIN_REDIRECT_BYTES: "0" },
    path.join(work, "edge-state"),
  );
  step(`edge: ${edge.url} (wrangler dev, R2 and Durable Objects in a temporary directory; ACCESS=origin, signed URLs)`);

  const demo = new Demo(work, originRepo, recorder);
  step("cloning …");
  await demo.clone("hg 5.6.1, v2, direct from the origin", HG56, recorder.url, V2_CLIENT, () => "", true);
  const direct = await demo.clone("hg 7.0.1, v1, direct from the origin", HG7, recorder.url, [], () => "");
  await demo.clone("hg 5.6.1, v2, through hgedge, cold", HG56, edge.url, V2_CLIENT, () => "");
  const stats = (await adminJson(edge, token, "stats?repo=/")) as { repositories: Record<string, { stored: { objects: number; bytes: number } }> };
  const stored = stats.repositories["/"]?.stored ?? { objects: 0, bytes: 0 };
  demo.rows.at(-1)!.fromEdge = `${stored.objects} objects stored (${stored.bytes.toLocaleString("en-US")} B)`;
  await demo.clone("hg 5.6.1, v2, through hgedge, warm", HG56, edge.url, V2_CLIENT, (output) => `${count(output, /following redirect to/g)} redirects to R2`);

  const before = recorder.exchanges.length;
  const started = performance.now();
  const made = (await adminJson(edge, token, "bundles", { method: "POST", body: JSON.stringify({ repo: "/" }) })) as {
    changesets: number;
    bundles: { format: string; size: number }[];
  };
  const seconds = (performance.now() - started) / 1000;
  demo.note(
    `clone bundles: POST /.hgedge/admin/bundles made ${made.changesets} changesets as ` +
      `${made.bundles.map((b) => `${b.format} (${b.size.toLocaleString("en-US")} B)`).join(", ")} ` +
      `in ${seconds.toFixed(1)} s; the origin served ${originBytesOf(recorder.exchanges.slice(before)).toLocaleString("en-US")} bytes for it, once.`,
  );
  const fromBundle = (output: string) => (/applying clone bundle from/.test(output) ? "clone bundle, R2" : "no clone bundle");
  for (const [label, hgPath] of [["hg 6.3, v1, through hgedge", HG6], ["hg 7.0.1, v1, through hgedge", HG7]] as const) {
    const { row } = await demo.clone(label, hgPath, edge.url, [], fromBundle);
    if (row.fromEdge !== "clone bundle, R2") throw new Error(`${label}: the client did not apply the clone bundle`);
  }
  const warm = demo.rows.find((row) => row.clone.endsWith("warm"))!;
  if (!/^[1-9]/.test(warm.fromEdge)) throw new Error("the warm clone followed no content redirect");

  console.log(`\n${demo.table(direct.row.originBytes)}`);
  console.log(
    "\nOrigin bytes are the bodies the origin answered, as a share of the direct 7.0.1 clone's. Through" +
      "\nhgedge the origin still answers the handshake, discovery and (v2) the changesets; the file and" +
      "\nmanifest data come from R2. Wall times are local (wrangler dev); BENCHMARKS.md has measured figures.",
  );
}

async function main(): Promise<number> {
  const interrupted = (signal: NodeJS.Signals) => {
    console.error(`\ndemo: ${signal}: stopping what it started …`);
    void stopAll().finally(() => process.exit(130));
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  try {
    await run();
    return 0;
  } catch (error) {
    console.error(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}`);
    const edgeOutput = running.edge?.output().trim();
    if (edgeOutput) console.error(`\nthe edge's last output:\n${edgeOutput.split("\n").slice(-30).join("\n")}`);
    return 1;
  } finally {
    await stopAll();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().then((code) => process.exit(code));
}
