/**
 * The runtime workerd's V8 inspector, for benchmarks that need to tell hgedge's own isolate
 * apart from the process around it: RSS covers the whole runtime (the R2 simulator, workerd's
 * buffers, memory V8 keeps after freeing), the isolate's heap covers only JavaScript.
 *
 * The runtime's own inspector takes one session, which wrangler dev holds (it reads console
 * output through it), so this goes through wrangler's inspector proxy, which forwards it.
 */
import WebSocket from "ws";
import { loopbackAddresses } from "./support.ts";

/** What `Runtime.getHeapUsage` reports, in bytes. */
export interface HeapUsage {
  usedSize: number;
  totalSize: number;
}

export interface Inspector {
  heapUsage(): Promise<HeapUsage>;
  /**
   * Stops the runtime's Network events. wrangler dev turns them on for its DevTools, and workerd
   * then sends an event through the inspector for every few KiB of every subrequest body: a
   * local-development cost production does not have, which under a fast stream outweighs
   * hgedge's own (BENCHMARKS.md, "Memory while streaming").
   */
  stopNetworkEvents(): Promise<void>;
  /** A full garbage collection of hgedge's isolate. */
  collectGarbage(): Promise<void>;
  /** Starts V8's sampling CPU profiler in the isolate (every `intervalUs` µs). */
  startProfiling(intervalUs?: number): Promise<void>;
  /** Stops it: the isolate's CPU time over the profile, and where it went. */
  stopProfiling(): Promise<CpuProfileSummary>;
  close(): void;
}

/** What a V8 CPU profile says: time the isolate ran (JavaScript, GC, native calls from it). */
export interface CpuProfileSummary {
  /** Wall time the profile covered, ms. */
  wallMs: number;
  /** Sampled time not idle: CPU spent by the isolate's thread on its behalf, ms. */
  cpuMs: number;
  /** The functions with the most self time, ms. */
  top: { name: string; ms: number }[];
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/**
 * CPU time from a V8 profile: every sample's interval (timeDeltas) counts, except those taken
 * while the isolate was idle, i.e. waiting for I/O (the "(idle)" node, which workerd reports
 * through V8's idle notification). Native work done for JavaScript — zlib, crypto, stream
 * copies — is in the samples of the function that called it or in "(program)".
 */
export function summarizeProfile(profile: { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }): CpuProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let busyUs = 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const name = node ? node.callFrame.functionName || "(anonymous)" : "?";
    const us = profile.timeDeltas[i + 1] ?? 0;
    if (name === "(idle)") return;
    busyUs += us;
    const key = node && node.callFrame.url ? `${name} ${node.callFrame.url.split("/").pop()}:${node.callFrame.lineNumber + 1}` : name;
    self.set(key, (self.get(key) ?? 0) + us);
  });
  const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([name, us]) => ({ name, ms: us / 1000 }));
  return { wallMs: (profile.endTime - profile.startTime) / 1000, cpuMs: busyUs / 1000, top };
}

const CALL_TIMEOUT_MS = 30_000;

/** Connects to hgedge's isolate through wrangler dev's inspector (`Edge.inspectorPort`). */
export async function connectInspector(inspectorPort: number): Promise<Inspector> {
  return connect(await debuggerUrl(inspectorPort));
}

/**
 * Connects to another isolate of the runtime directly, e.g. `r2:bucket`, miniflare's simulated R2
 * (wrangler holds the session of hgedge's own isolate, not of the others).
 */
export async function connectRuntimeIsolate(runtimePid: number, id: string): Promise<Inspector> {
  for (const address of loopbackAddresses(runtimePid)) {
    const inspector = await connectIsolateAt(address, id);
    if (inspector) return inspector;
  }
  throw new Error(`the runtime (pid ${runtimePid}) has no inspector target ${id}`);
}

/** Isolate `id` of the inspector at `address` (host:port), if that is an inspector listing it. */
export async function connectIsolateAt(address: string, id: string): Promise<Inspector | undefined> {
  try {
    const answer = await fetch(`http://${address}/json/list`, { signal: AbortSignal.timeout(3000) });
    if (answer.status !== 200) return undefined;
    const target = ((await answer.json()) as { id: string; webSocketDebuggerUrl: string }[]).find((t) => t.id === id);
    return target ? await connect(target.webSocketDebuggerUrl) : undefined;
  } catch {
    return undefined; // not the inspector (or not HTTP)
  }
}

/**
 * Turns off the Network events wrangler dev asks the runtime for (see Inspector.stopNetworkEvents)
 * for the rest of the edge's life: the session that asked for them is wrangler's, and stays.
 */
export async function stopDevtoolsNetworkEvents(inspectorPort: number): Promise<void> {
  const inspector = await connectInspector(inspectorPort);
  try {
    await inspector.stopNetworkEvents();
  } finally {
    inspector.close();
  }
}

async function connect(url: string): Promise<Inspector> {
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  let nextId = 1;
  const pending = new Map<number, { resolve: (result: unknown) => void; reject: (error: Error) => void }>();
  socket.on("message", (data) => {
    const message = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string } };
    const waiter = message.id === undefined ? undefined : pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id as number);
    if (message.error) waiter.reject(new Error(`inspector: ${message.error.message}`));
    else waiter.resolve(message.result);
  });
  socket.on("close", () => {
    for (const waiter of pending.values()) waiter.reject(new Error("inspector: the connection closed"));
    pending.clear();
  });
  const call = (method: string, params?: Record<string, unknown>): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`inspector: ${method} got no answer in ${CALL_TIMEOUT_MS} ms`));
      }, CALL_TIMEOUT_MS);
      const settle = <T>(fn: (value: T) => void) => (value: T) => {
        clearTimeout(timer);
        fn(value);
      };
      pending.set(id, { resolve: settle(resolve), reject: settle(reject) });
      socket.send(JSON.stringify({ id, method, ...(params ? { params } : {}) }));
    });
  return {
    heapUsage: async () => {
      const { usedSize, totalSize } = (await call("Runtime.getHeapUsage")) as HeapUsage;
      return { usedSize, totalSize };
    },
    stopNetworkEvents: async () => {
      await call("Network.disable");
    },
    // HeapProfiler.collectGarbage is answered only when the isolate next runs a task (workerd runs
    // V8's posted tasks when a request comes in), but a heap snapshot is taken at once, and V8
    // collects all garbage before it takes one. Its chunks arrive as events, which are ignored.
    collectGarbage: async () => {
      await call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
    },
    startProfiling: async (intervalUs = 100) => {
      await call("Profiler.enable");
      await call("Profiler.setSamplingInterval", { interval: intervalUs });
      await call("Profiler.start");
    },
    stopProfiling: async () => {
      const { profile } = (await call("Profiler.stop")) as { profile: Parameters<typeof summarizeProfile>[0] };
      return summarizeProfile(profile);
    },
    close: () => socket.close(),
  };
}

async function debuggerUrl(inspectorPort: number): Promise<string> {
  const answer = await fetch(`http://127.0.0.1:${inspectorPort}/json/list`, { signal: AbortSignal.timeout(5000) });
  const targets = (await answer.json()) as { webSocketDebuggerUrl?: string }[];
  const url = targets[0]?.webSocketDebuggerUrl;
  if (answer.status !== 200 || !url) throw new Error(`wrangler dev's inspector on port ${inspectorPort} lists no worker`);
  return url;
}
