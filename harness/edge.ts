/**
 * Runs the Worker the way a person does, `npm start -- --port P --var ORIGIN_URL:...` (wrangler
 * dev with a local R2), on a free loopback port, for end-to-end tests and benchmarks with real
 * clients.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { freePort, projectRoot, serveRepo, startRecordingProxy, type RecordingProxy, type Served } from "./mercurial.ts";

const READY_TIMEOUT_MS = 60_000;
/** What is kept of wrangler's output (the most recent part) for assertions and messages. */
const MAX_OUTPUT_CHARS = 8 * 1024 * 1024;

export interface Edge {
  /** Base URL without a trailing slash. */
  url: string;
  /** Everything wrangler printed, for assertion messages. */
  output(): string;
  /**
   * Waits (at most `timeoutMs`) until `seen(output)` holds and says whether it did. The edge logs
   * a request when its body has gone out, and wrangler relays that through a pipe: a client can
   * have its answer before the line is printed.
   */
  logged(seen: (output: string) => boolean, timeoutMs?: number): Promise<boolean>;
  /** wrangler dev's inspector port (its proxy to the runtime's V8 inspector). */
  inspectorPort: number;
  /** Process group of npm → wrangler → workerd (for measuring the edge's own processes). */
  processGroup: number;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
/** Edges started and not yet stopped, so a failing test can show what they printed. */
const live = new Set<Edge>();

/** The edges running now (test/support/node-setup.ts prints their output when a test fails). */
export function runningEdges(): Edge[] {
  return [...live];
}

process.on("exit", () => {
  for (const child of running) killGroup(child, "SIGKILL");
});

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  // npm → wrangler → workerd: kill the whole process group, not just npm.
  if (child.pid !== undefined) {
    try {
      process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  }
}

/**
 * Starts the edge on free loopback ports. A port found free can be taken by another process
 * before wrangler binds it (tests run in parallel): then it tries again on new ports.
 */
export async function startEdge(originUrl: string, extraVars: Record<string, string> = {}, wranglerArgs: string[] = []): Promise<Edge> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startEdgeOnce(originUrl, extraVars, wranglerArgs);
    } catch (error) {
      if (attempt >= 3 || !/Address already in use/.test(String(error))) throw error;
    }
  }
}

async function startEdgeOnce(originUrl: string, extraVars: Record<string, string>, wranglerArgs: string[]): Promise<Edge> {
  // A caller that names its own --persist-to keeps that state (e.g. to restart an edge on it);
  // wrangler refuses the flag twice.
  if (wranglerArgs.includes("--persist-to")) return startEdgeIn(undefined, originUrl, extraVars, wranglerArgs);
  // Otherwise its own local R2 and Durable Object state, never the project's .wrangler/state
  // (which `npm start` uses): removed when the edge stops.
  const state = await mkdtemp(path.join(os.tmpdir(), "hgedge-edge-state-"));
  try {
    return await startEdgeIn(state, originUrl, extraVars, wranglerArgs);
  } catch (error) {
    await rm(state, { recursive: true, force: true });
    throw error;
  }
}

/** `state`: the temporary state folder this edge owns and removes, if any. */
async function startEdgeIn(state: string | undefined, originUrl: string, extraVars: Record<string, string>, wranglerArgs: string[]): Promise<Edge> {
  const port = await freePort();
  // wrangler dev also binds an inspector port (9229 by default): edges started in parallel
  // test files would collide on it.
  const inspectorPort = await freePort();
  const vars = Object.entries({ ORIGIN_URL: originUrl, ...extraVars }).flatMap(([k, v]) => ["--var", `${k}:${v}`]);
  const child = spawn("npm", ["start", "--", "--port", String(port), "--inspector-port", String(inspectorPort), "--ip", "127.0.0.1", ...(state ? ["--persist-to", state] : []), ...vars, ...wranglerArgs], {
    cwd: projectRoot,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", NO_COLOR: "1" },
  });
  running.add(child);
  let output = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`wrangler dev did not get ready in time:\n${output}`)), READY_TIMEOUT_MS);
    let ready = false;
    const onData = (b: Buffer) => {
      const text = b.toString();
      // Only what is new (and a line's worth before it) is searched, and only until ready: a long
      // run logs a line per request, and searching all of it on every chunk is quadratic.
      if (!ready && /Ready on http/.test(output.slice(-200) + text)) {
        ready = true;
        clearTimeout(timer);
        resolve();
      }
      output += text;
      if (output.length > MAX_OUTPUT_CHARS) output = output.slice(-MAX_OUTPUT_CHARS / 2);
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`npm start exited early (${code}):\n${output}`));
    });
  });
  const edge: Edge = {
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    inspectorPort,
    async logged(seen, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (!seen(output)) {
        if (Date.now() >= deadline) return false;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return true;
    },
    processGroup: child.pid ?? 0,
    async stop() {
      killGroup(child, "SIGTERM");
      const timer = setTimeout(() => killGroup(child, "SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
      running.delete(child);
      live.delete(edge);
      if (state) await rm(state, { recursive: true, force: true });
    },
  };
  live.add(edge);
  return edge;
}

/** An origin serving `repoDir` over v2, a recording proxy counting what it sends, and the edge. */
export interface Stack {
  origin: Served;
  recorder: RecordingProxy;
  edge: Edge;
  stop(): Promise<void>;
}

export interface StackOptions {
  /** Serve wire protocol v2 too (the default), or v1 only as today's Mercurial does. */
  v2?: boolean;
  /** Extra `--config` arguments for hg serve. */
  originConfig?: string[];
  /** Extra arguments for wrangler dev. */
  wranglerArgs?: string[];
}

export async function startStack(hgPath: string, repoDir: string, edgeVars: Record<string, string>, options: StackOptions = {}): Promise<Stack> {
  const { v2 = true, originConfig = [], wranglerArgs = [] } = options;
  const origin = await serveRepo({ hgPath, repoDir, v2, extraConfig: originConfig });
  const recorder = await startRecordingProxy(origin.url);
  const edge = await startEdge(recorder.url, edgeVars, wranglerArgs);
  return {
    origin,
    recorder,
    edge,
    async stop() {
      await edge.stop();
      await recorder.stop();
      await origin.stop();
    },
  };
}
