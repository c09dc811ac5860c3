/**
 * `npm start [-- wrangler dev arguments] [--devtools-network]`: hgedge under `wrangler dev` with
 * a local R2, safe for repositories of any size.
 *
 * - **No DevTools Network events by default.** wrangler dev asks the runtime for them (its
 *   DevTools' Network tab), and the runtime then sends one for every few KiB of every subrequest
 *   body; wrangler's inspector proxy hands each to wrangler's Node process over a new loopback
 *   connection. A 155 MB pass-through makes ~40 000 of them: the sockets pile up in CLOSE-WAIT
 *   until the process runs out of file descriptors and the dev server stops answering, and the
 *   proxy's memory grows past a gigabyte. So once wrangler is ready, and after every reload,
 *   this turns them off through wrangler's inspector (the same `Network.disable` the benchmarks
 *   send) before passing wrangler's "Ready" line on. `--devtools-network` (or
 *   HGEDGE_DEVTOOLS_NETWORK=1) leaves them on, for debugging with small transfers.
 * - **Local settings stay local.** Without a `.dev.vars`, the committed `.dev.vars.example`
 *   supplies them (ORIGIN_URL of a local `hg serve`, and the PoP cache off), so that nothing
 *   local is in wrangler.toml, where a deploy would pick it up.
 *
 * Every other argument goes to `wrangler dev` unchanged.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const DEVTOOLS_NETWORK_FLAG = "--devtools-network";
/** wrangler's own default inspector port, taken when free. */
const DEFAULT_INSPECTOR_PORT = 9229;
/** Lines wrangler prints when the Worker (re)starts: each one follows a new inspector session. */
const READY_LINE = /Ready on http/;
const RELOADED_LINE = /Local server updated and ready/;
/** How long turning the events off may take before the edge is let through anyway, with a warning. */
const DISABLE_DEADLINE_MS = 20_000;
/** How long the close frame may take to reach wrangler's proxy before the socket is dropped. */
const CLOSE_GRACE_MS = 300;

export interface StartPlan {
  /** Arguments for `wrangler dev`. */
  wranglerArgs: string[];
  /** wrangler's inspector port (given, or chosen here so that it is known). */
  inspectorPort: number;
  devtoolsNetwork: boolean;
  /** Set when the local defaults of .dev.vars.example are used. */
  envFile?: string;
}

/** What to run, from `npm start`'s arguments, the environment and the files present. */
export async function planStart(args: string[], env: NodeJS.ProcessEnv, root: string): Promise<StartPlan> {
  const devtoolsNetwork = args.includes(DEVTOOLS_NETWORK_FLAG) || /^(1|true|yes)$/i.test(env.HGEDGE_DEVTOOLS_NETWORK ?? "");
  const wranglerArgs = args.filter((a) => a !== DEVTOOLS_NETWORK_FLAG);
  const plan: StartPlan = { wranglerArgs, inspectorPort: 0, devtoolsNetwork };
  const given = argValue(wranglerArgs, "--inspector-port");
  if (given !== undefined) plan.inspectorPort = Number(given);
  else {
    plan.inspectorPort = await freePort(DEFAULT_INSPECTOR_PORT);
    wranglerArgs.push("--inspector-port", String(plan.inspectorPort));
  }
  const example = path.join(root, ".dev.vars.example");
  if (!existsSync(path.join(root, ".dev.vars")) && argValue(wranglerArgs, "--env-file") === undefined && existsSync(example)) {
    plan.envFile = example;
    wranglerArgs.push("--env-file", example);
  }
  return plan;
}

/**
 * The settings the local Worker will see, as far as a start-up note needs them: wrangler.toml's
 * `[vars]`, then the env file (`--env-file`, else `.dev.vars`, else the example), then `--var`s.
 */
export function localSettings(plan: StartPlan, root: string): Record<string, string> {
  const settings: Record<string, string> = {};
  const toml = path.join(root, "wrangler.toml");
  if (existsSync(toml)) Object.assign(settings, tomlVars(readFileSync(toml, "utf8")));
  const envFile = argValue(plan.wranglerArgs, "--env-file") ?? path.join(root, ".dev.vars");
  const envPath = path.resolve(root, envFile);
  if (existsSync(envPath)) Object.assign(settings, dotenv(readFileSync(envPath, "utf8")));
  for (let i = 0; i < plan.wranglerArgs.length; i++) {
    if (plan.wranglerArgs[i] !== "--var") continue;
    const [name, ...value] = (plan.wranglerArgs[i + 1] ?? "").split(":");
    if (name) settings[name] = value.join(":");
  }
  return settings;
}

/**
 * Said once at start-up (the Worker says it again, once per isolate): with the default
 * ACCESS=origin and no SIGNING_KEY the cache is off, and a newcomer should not have to find
 * that in a log line per request.
 */
export function cacheOffNote(settings: Record<string, string>): string | undefined {
  if ((settings.ACCESS ?? "origin") !== "origin" || settings.SIGNING_KEY) return undefined;
  return (
    "hgedge: the cache is off: ACCESS=origin needs a SIGNING_KEY to sign object URLs. Put " +
    "SIGNING_KEY=<openssl rand -hex 32> in .dev.vars, or ACCESS=public for public repositories " +
    "(docs/operations.md, Configuration); meanwhile every request goes to the origin."
  );
}

/** `NAME=value` lines; `#` comments and blank lines skipped, surrounding quotes removed. */
function dotenv(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (match) values[match[1] as string] = (match[2] as string).replace(/^(["'])(.*)\1$/, "$2");
  }
  return values;
}

/** The `NAME = "value"` lines of wrangler.toml's top-level `[vars]` table. */
function tomlVars(text: string): Record<string, string> {
  const table = /^\[vars\]\s*$([\s\S]*?)(?=^\[)/m.exec(text + "\n[")?.[1] ?? "";
  const values: Record<string, string> = {};
  for (const match of table.matchAll(/^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"([^"]*)"/gm)) values[match[1] as string] = match[2] as string;
  return values;
}

/** The value of `--name value` or `--name=value`. */
function argValue(args: string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === name) return args[i + 1];
    if (arg.startsWith(`${name}=`)) return arg.slice(name.length + 1);
  }
  return undefined;
}

/** `preferred` if nothing listens there, else a port the system picks. */
function freePort(preferred: number): Promise<number> {
  const tryListen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        const { port: bound } = server.address() as net.AddressInfo;
        server.close(() => resolve(bound));
      });
    });
  return tryListen(preferred).catch(() => tryListen(0));
}

/** Turns the Network events off, trying again while wrangler's inspector is not yet there. */
async function disableNetworkEvents(inspectorPort: number): Promise<void> {
  const deadline = Date.now() + DISABLE_DEADLINE_MS;
  for (;;) {
    try {
      await sendNetworkDisable(inspectorPort);
      return;
    } catch (error) {
      if (Date.now() >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

/**
 * One `Network.disable` through wrangler's inspector proxy, answered, and the session closed
 * before this returns: the proxy takes one DevTools session at a time, and whoever connects
 * next (a person's DevTools, a benchmark reading heap usage) must find it free.
 */
async function sendNetworkDisable(inspectorPort: number): Promise<void> {
  const list = await fetch(`http://127.0.0.1:${inspectorPort}/json/list`, { signal: AbortSignal.timeout(5_000) });
  const url = ((await list.json()) as { webSocketDebuggerUrl?: string }[])[0]?.webSocketDebuggerUrl;
  if (!url) throw new Error(`wrangler's inspector on port ${inspectorPort} lists no worker`);
  const socket = new WebSocket(url);
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("Network.disable got no answer")), 10_000);
      socket.once("error", reject);
      socket.once("close", (code, reason) => reject(new Error(`the inspector closed the session (${code} ${String(reason)})`)));
      // Buffered console events arrive first; only the answer carries our id.
      socket.on("message", (data) => {
        if ((JSON.parse(String(data)) as { id?: number }).id !== 1) return;
        clearTimeout(timer);
        resolve();
      });
      socket.once("open", () => socket.send(JSON.stringify({ id: 1, method: "Network.disable" })));
    });
  } finally {
    // wrangler's proxy takes the close frame (and frees its session slot) but never answers it:
    // waiting for the close handshake would take the socket's 30 s timeout.
    socket.close();
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, CLOSE_GRACE_MS))]);
    socket.terminate();
  }
}

async function main(): Promise<void> {
  const plan = await planStart(process.argv.slice(2), process.env, projectRoot);
  if (plan.envFile) console.log(`hgedge: no .dev.vars, so the local settings of ${path.relative(projectRoot, plan.envFile)} apply`);
  const cacheOff = cacheOffNote(localSettings(plan, projectRoot));
  if (cacheOff) console.log(cacheOff);
  const wrangler = path.join(projectRoot, "node_modules/.bin/wrangler");
  const child = spawn(wrangler, ["dev", ...plan.wranglerArgs], {
    cwd: projectRoot,
    stdio: ["inherit", "pipe", "pipe"],
    env: { WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", ...process.env },
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => child.kill(signal));
  child.on("exit", (code, signal) => process.exit(code ?? 128 + (signal ? os.constants.signals[signal] : 0)));
  child.stderr.pipe(process.stderr);
  if (plan.devtoolsNetwork) {
    console.log("hgedge: DevTools Network events stay on (--devtools-network): keep transfers small, see docs/operations.md");
    child.stdout.pipe(process.stdout);
    return;
  }
  relayHoldingReadiness(child.stdout, plan.inspectorPort);
}

/**
 * Passes wrangler's output on, but holds its "Ready" line until the Network events are off, so
 * that whoever waits for it (a person, the tests, the benchmarks) starts on a safe edge. After a
 * reload wrangler's inspector proxy connects to the new runtime and turns the events on again a
 * moment after its line: they are turned off once more a little later, twice.
 */
function relayHoldingReadiness(output: NodeJS.ReadableStream, inspectorPort: number): void {
  let tail = "";
  let queue = Promise.resolve();
  output.on("data", (chunk: Buffer) => {
    const text = chunk.toString();
    const seen = tail + text;
    tail = seen.slice(-200);
    if (READY_LINE.test(seen)) {
      tail = "";
      output.pause();
      queue = queue.then(() => disableOrWarn(inspectorPort)).then(() => {
        process.stdout.write(text);
        output.resume();
      });
      return;
    }
    if (RELOADED_LINE.test(seen)) {
      tail = "";
      for (const delayMs of [1_000, 5_000]) setTimeout(() => void (queue = queue.then(() => disableOrWarn(inspectorPort))), delayMs);
    }
    queue = queue.then(() => void process.stdout.write(text));
  });
}

async function disableOrWarn(inspectorPort: number): Promise<void> {
  try {
    await disableNetworkEvents(inspectorPort);
  } catch (error) {
    console.error(`hgedge: could not turn off wrangler's DevTools Network events (${String(error)}): large transfers may exhaust the dev server's sockets`);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
