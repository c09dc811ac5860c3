/**
 * Real Mercurial for the Node-side tests and for the scripts (demo, benchmarks, fixture
 * recorder): locating the tools that `scripts/install-mercurial.sh` installs, running them,
 * building a small deterministic repository, serving it with `hg serve`, and a recording loopback
 * proxy that captures real exchanges. Everything talks to 127.0.0.1 only and every wait is bounded.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { accessSync, constants, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { HOP_BY_HOP as EDGE_HOP_BY_HOP } from "../src/origin/headers.ts";
import { projectRoot } from "./paths.ts";

export { projectRoot };

/** How to get the tools; quoted in every skip reason and error. */
export const INSTALL_HINT = "run `npm run install-mercurial` (or `bash scripts/install-mercurial.sh`)";

const DEFAULT_TIMEOUT_MS = 120_000;
/** A 5.x `hg serve` imports all of Mercurial first (HGDEMANDIMPORT=disable): slow on a busy 2-core machine. */
const SERVE_READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function toolPath(name: string): string | undefined {
  const file = path.join(projectRoot, ".tools", "bin", name);
  return executable(file) ? file : undefined;
}

/** Debian bullseye's Mercurial 5.6.1 (wire protocol v2 client and server), if installed. */
export function hg56Path(): string | undefined {
  return toolPath("hg-5.6.1");
}

/** The machine's Mercurial 6.x (bookworm; wire protocol v1), if its wrapper is installed. */
export function hg6Path(): string | undefined {
  return toolPath("hg-6");
}

/** Debian trixie's Mercurial 7.0.1 (today's newest v1 client and server), if installed. */
export function hg7Path(): string | undefined {
  return toolPath("hg-7.0.1");
}

/**
 * The house rule for tests that need a tool: they may skip only when the tool is absent and
 * `CI` is unset. Under CI a missing tool is a failure (this throws), never a silent skip.
 */
export function skipUnlessAvailable(
  toolFile: string | undefined,
  what: string,
): { skip: boolean; reason: string } {
  if (toolFile !== undefined && executable(toolFile)) return { skip: false, reason: "" };
  const where = toolFile === undefined ? "" : ` (no executable at ${toolFile})`;
  const reason = `${what} is missing${where}; ${INSTALL_HINT}`;
  if (process.env.CI) throw new Error(`CI is set and ${reason}`);
  return { skip: true, reason };
}

// --- child processes ------------------------------------------------------------------------

/** Children still running; killed when this process exits so no test leaves `hg` behind. */
const liveChildren = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of liveChildren) child.kill("SIGKILL");
});

function track(child: ChildProcess): ChildProcess {
  liveChildren.add(child);
  child.on("exit", () => liveChildren.delete(child));
  return child;
}

/** Resolves once the child has exited; SIGKILLs it if SIGTERM is not enough in time. */
async function killAndWait(child: ChildProcess): Promise<void> {
  // Nothing to wait for if it never started (spawn error) or has already exited.
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

export interface HgResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  input?: string | Buffer;
  timeoutMs?: number;
}

/** Runs `hgPath args` (no shell); resolves with its exit code and output whatever the code. */
export function runHg(hgPath: string, args: string[], opts: RunOptions = {}): Promise<HgResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = track(
      spawn(hgPath, args, {
        cwd: opts.cwd,
        env: { ...process.env, ...opts.env },
        stdio: ["pipe", "pipe", "pipe"],
      }),
    );
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout?.on("data", (b: Buffer) => stdout.push(b));
    child.stderr?.on("data", (b: Buffer) => stderr.push(b));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(
          `timed out after ${timeoutMs} ms: ${hgPath} ${args.join(" ")}\n` +
            `stderr: ${Buffer.concat(stderr).toString()}`,
        ),
      );
    }, timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${hgPath}: ${err.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(stdout).toString(),
        stderr: Buffer.concat(stderr).toString(),
      });
    });
    child.stdin?.on("error", () => {}); // hg may exit before reading its input
    child.stdin?.end(opts.input ?? "");
  });
}

/** Like runHg, but rejects (with hg's output) unless hg exits with 0. Resolves with stdout. */
export async function runHgOk(hgPath: string, args: string[], opts: RunOptions = {}): Promise<string> {
  const r = await runHg(hgPath, args, opts);
  if (r.code !== 0) {
    throw new Error(`hg ${args.join(" ")} exited with ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  return r.stdout;
}

// --- a deterministic repository -------------------------------------------------------------

/** Fixed identity and date so the same history gets the same nodes on every run. */
const COMMIT = ["--config", "ui.username=test", "-d", "0 0"];

/** `size` bytes of a SHA-256 counter stream: incompressible, but the same on every run. */
function deterministicBytes(size: number): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 0; blocks.length * 32 < size; i++) {
    blocks.push(createHash("sha256").update(`hgedge-blob-${i}`).digest());
  }
  return Buffer.concat(blocks).subarray(0, size);
}

async function put(repo: string, file: string, content: string | Buffer): Promise<void> {
  await mkdir(path.dirname(path.join(repo, file)), { recursive: true });
  await writeFile(path.join(repo, file), content);
}

/**
 * Creates a small repository in `dir`: text files in subdirectories, a 100 KiB binary file,
 * an `hg cp` copy, a second branch (`stable`), a tag (`v1.0`) and a bookmark (`feature-x`).
 * No `hg mv`/`hg rm`: a removed file makes every 5.x v2 clone fail in `filesdata` (origin bug).
 */
export async function makeRepo(dir: string, hgPath: string): Promise<{ tip: string; heads: string[] }> {
  const hg = (...args: string[]) => runHgOk(hgPath, ["-R", dir, ...args]);
  await runHgOk(hgPath, ["init", dir]);

  await put(dir, "README.txt", "hgedge test repository\n");
  await put(dir, "src/main.c", "int main(void) { return 0; }\n");
  await put(dir, "docs/guide.md", "# Guide\n\nHow to use it.\n");
  await hg("commit", ...COMMIT, "-A", "-m", "initial");

  await put(dir, "src/main.c", '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n');
  await put(dir, "data/blob.bin", deterministicBytes(100 * 1024));
  await hg("commit", ...COMMIT, "-A", "-m", "edit main.c, add blob");

  await hg("cp", path.join(dir, "docs/guide.md"), path.join(dir, "docs/manual.md"));
  await put(dir, "docs/manual.md", "# Manual\n\nHow to use it, in depth.\n");
  await hg("commit", ...COMMIT, "-m", "copy guide to manual");

  await hg("branch", "stable");
  await put(dir, "README.txt", "hgedge test repository (stable)\n");
  await hg("commit", ...COMMIT, "-m", "start stable");
  await put(dir, "src/util.h", "#define UTIL 1\n");
  await hg("commit", ...COMMIT, "-A", "-m", "add util.h");
  await hg("tag", ...COMMIT, "-r", ".", "-m", "tag v1.0", "v1.0");
  await hg("bookmark", "-r", ".", "feature-x");

  await hg("update", "default");
  await put(dir, "src/main.c", '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n');
  await hg("commit", ...COMMIT, "-m", "fix greeting on default");

  const tip = (await hg("log", "-r", "tip", "-T", "{node}")).trim();
  const heads = (await hg("heads", "-T", "{node}\n")).trim().split("\n");
  return { tip, heads };
}

// --- hg serve -------------------------------------------------------------------------------

/** A free loopback port: bind port 0, read it, close. Racy by nature; callers retry. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** GET `url` and resolve with the status code (0 when the connection fails). */
function httpStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: 2_000 }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(0));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ServeOptions {
  hgPath: string;
  repoDir: string;
  /** Enable the experimental HTTP API with wire protocol v2 (5.x servers only). */
  v2: boolean;
  /** More `hg serve` arguments, e.g. `["--config", "x.y=z"]`. */
  extraConfig?: string[];
  /** A fixed loopback port (the fixture recorder's, so recorded URLs repeat); default: a free one. */
  port?: number;
}

export interface Served {
  /** Base URL without a trailing slash, e.g. `http://127.0.0.1:41234`. */
  url: string;
  port: number;
  /** Kills the server, waits for it to exit and removes its logs. */
  stop(): Promise<void>;
  /** The server's error log and output so far, for assertion messages (the log is gone after stop). */
  errors(): string;
}

/**
 * `hg serve` answers each request in a thread, and Mercurial's lazy imports (demandimport) race
 * between threads: the first concurrent requests can fail with "module 'mercurial.context' has
 * no attribute 'basectx'" while one thread is still loading the module. Seen with 5.6.1 under
 * the warm-up's parallel requests; loading modules eagerly removes the race.
 */
const SERVE_ENV = { ...process.env, HGDEMANDIMPORT: "disable" };

function serveArgs(opts: ServeOptions, port: number, errorLog: string, accessLog: string): string[] {
  const args = ["serve", "-R", opts.repoDir, "-a", "127.0.0.1", "-p", String(port)];
  args.push("-E", errorLog, "-A", accessLog);
  args.push("--config", "web.allow-pull=true", "--config", "web.push_ssl=false");
  args.push("--config", "web.allow-push=*");
  if (opts.v2) {
    args.push("--config", "experimental.web.apiserver=true");
    args.push("--config", "experimental.web.api.http-v2=true");
  }
  return [...args, ...(opts.extraConfig ?? [])];
}

/**
 * Starts `hg serve` in the foreground as a child (not `-d`: the daemon would outlive us and
 * re-exec the hg script) on a free loopback port; resolves once `?cmd=capabilities` answers 200.
 */
export async function serveRepo(opts: ServeOptions): Promise<Served> {
  const logDir = await mkdtemp(path.join(os.tmpdir(), "hgedge-serve-"));
  const errorLog = path.join(logDir, "error.log");
  const accessLog = path.join(logDir, "access.log");
  let lastFailure = "";
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = opts.port ?? (await freePort());
    const child = track(
      spawn(opts.hgPath, serveArgs(opts, port, errorLog, accessLog), { stdio: ["ignore", "pipe", "pipe"], env: SERVE_ENV }),
    );
    let output = "";
    let spawnFailed = false;
    child.on("error", (err) => {
      spawnFailed = true;
      output += `cannot run ${opts.hgPath}: ${err.message}\n`;
    });
    child.stdout?.on("data", (b: Buffer) => (output += b.toString()));
    child.stderr?.on("data", (b: Buffer) => (output += b.toString()));
    const errors = () => {
      let log = "";
      try {
        log = readFileSync(errorLog, "utf8");
      } catch {
        // no error log yet
      }
      return log + output;
    };
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + SERVE_READY_TIMEOUT_MS;
    while (Date.now() < deadline && child.exitCode === null && !spawnFailed) {
      if ((await httpStatus(`${url}/?cmd=capabilities`)) === 200) {
        const stop = async () => {
          await killAndWait(child);
          await rm(logDir, { recursive: true, force: true });
        };
        return { url, port, stop, errors };
      }
      await sleep(100);
    }
    const silent = child.exitCode === null && !spawnFailed;
    await killAndWait(child);
    lastFailure = `attempt ${attempt} on port ${port}: ${errors() || "no output"}`;
    // Another process grabbed the port between freePort() and hg's bind, or the server never
    // answered (seen once in a fresh CI run, with no output at all): try again on another port.
    const retry = /address already in use/i.test(output) || silent;
    if (opts.port !== undefined || !retry) break;
  }
  await rm(logDir, { recursive: true, force: true });
  throw new Error(`hg serve did not answer within ${SERVE_READY_TIMEOUT_MS} ms (${lastFailure})`);
}

/** The `--config` arguments a client needs to speak v2 (and the encodings it offers). */
export function cloneArgs(opts: { v2: boolean; encoderOrder?: string }): string[] {
  if (!opts.v2) return [];
  const args = ["--config", "experimental.httppeer.advertise-v2=true"];
  if (opts.encoderOrder !== undefined) {
    args.push("--config", `experimental.httppeer.v2-encoder-order=${opts.encoderOrder}`);
  }
  return args;
}

// --- recording proxy ------------------------------------------------------------------------

/** One request/response pair that went through the recording proxy. */
export interface Exchange {
  method: string;
  /** Path and query as the client sent them. */
  path: string;
  /** Headers as the client sent them (lower-case names; repeated ones joined by ", "). */
  requestHeaders: Record<string, string>;
  requestBody: Buffer;
  status: number;
  statusMessage: string;
  /** Headers as the target sent them (lower-case names; repeated ones joined by ", "). */
  responseHeaders: Record<string, string>;
  /** The response body after HTTP/1.1 de-chunking: exactly the bytes the application sent. */
  responseBody: Buffer;
}

export interface RecordingProxy {
  /** Base URL without a trailing slash. */
  url: string;
  /** Completed exchanges, in the order their responses finished. */
  exchanges: Exchange[];
  stop(): Promise<void>;
}

/** RFC 9110 §7.6.1: connection-specific headers a proxy must not forward (the edge's own list). */
const HOP_BY_HOP = new Set(EDGE_HOP_BY_HOP);

/** Raw header list (name, value, name, value, …) without hop-by-hop headers; `host` replaced. */
function forwardable(raw: string[], host?: string): string[] {
  const listed = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === "connection") {
      for (const token of raw[i + 1]!.split(",")) listed.add(token.trim().toLowerCase());
    }
  }
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || listed.has(lower)) continue;
    out.push(name, lower === "host" && host !== undefined ? host : raw[i + 1]!);
  }
  return out;
}

function withoutContentLength(raw: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() !== "content-length") out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}

function headerRecord(raw: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    out[name] = name in out ? `${out[name]}, ${raw[i + 1]}` : raw[i + 1]!;
  }
  return out;
}

function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    stream.on("data", (b: Buffer) => parts.push(b));
    stream.on("end", () => resolve(Buffer.concat(parts)));
    stream.on("error", reject);
  });
}

/**
 * A loopback HTTP/1.1 reverse proxy to `targetUrl` that records every exchange. Requests are
 * buffered (then sent with a Content-Length); responses stream through unchanged, and each
 * exchange is recorded before its last bytes reach the client, so it is complete by the time
 * the client is done.
 */
export async function startRecordingProxy(targetUrl: string): Promise<RecordingProxy> {
  const target = new URL(targetUrl);
  const agent = new http.Agent({ keepAlive: false });
  const exchanges: Exchange[] = [];

  const server = http.createServer((req, res) => {
    res.sendDate = false; // the target's Date header (if any) is passed through as is
    // Before the response started: a 502 saying why; after: cut the connection, so the client
    // sees a truncated response rather than one with our text appended.
    const fail = (err: Error) => {
      if (res.headersSent) return void res.destroy(err);
      res.writeHead(502, { "content-type": "text/plain" });
      res.end(`recording proxy: ${err.message}\n`);
    };
    readAll(req).then((requestBody) => {
      // The body is buffered, so its length is known: send it with our own Content-Length.
      const headers = withoutContentLength(forwardable(req.rawHeaders, target.host));
      if (requestBody.length > 0 || req.headers["content-length"] !== undefined) {
        headers.push("Content-Length", String(requestBody.length));
      }
      const upstream = http.request(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers,
          agent,
        },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, forwardable(upRes.rawHeaders));
          const body: Buffer[] = [];
          upRes.on("data", (b: Buffer) => {
            body.push(b);
            res.write(b);
          });
          upRes.on("end", () => {
            exchanges.push({
              method: req.method ?? "",
              path: req.url ?? "",
              requestHeaders: headerRecord(req.rawHeaders),
              requestBody,
              status: upRes.statusCode ?? 0,
              statusMessage: upRes.statusMessage ?? "",
              responseHeaders: headerRecord(upRes.rawHeaders),
              responseBody: Buffer.concat(body),
            });
            res.end();
          });
          upRes.on("error", fail);
        },
      );
      upstream.on("error", fail);
      upstream.end(requestBody);
    }, fail);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    exchanges,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
