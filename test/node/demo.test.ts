/**
 * `npm run demo` end to end, as a newcomer runs it: it prints its table (every clone verified,
 * the warm v2 clone redirected to R2, 6.x and 7.0.1 cloning from the clone bundle), and leaves
 * no process and no temporary directory behind — also when interrupted with Ctrl-C (SIGINT)
 * while its stack is up.
 *
 * Every process the demo starts inherits a marker in its environment; afterwards no process on
 * the machine may carry it. The demo's temporary files go to a TMPDIR of the test's own, which
 * must hold no `hgedge-*` entry afterwards.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../harness/mercurial.ts";

// Two to five minutes on a busy 2-core machine; bounded all the same.
const DEMO_TIMEOUT_MS = 480_000;
const MARKER = "HGEDGE_DEMO_TEST_RUN";

interface DemoRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the demo; `interruptWhen` sends SIGINT to it the first time its output matches. */
function runDemo(tmpdir: string, marker: string, interruptWhen?: RegExp): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    // What `npm run demo` runs: one Node process, so a signal reaches the demo itself (the tsx
    // CLI would relay it through a second process, and SIGKILL that one if it is slow to answer).
    const child = spawn(process.execPath, ["--import", "tsx", "scripts/demo.ts"], {
      cwd: projectRoot,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, TMPDIR: tmpdir, [MARKER]: marker },
    });
    let stdout = "";
    let stderr = "";
    let interrupted = false;
    child.stdout.on("data", (b: Buffer) => {
      stdout += b.toString();
      if (interruptWhen && !interrupted && interruptWhen.test(stdout)) {
        interrupted = true;
        child.kill("SIGINT");
      }
    });
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the demo did not finish in ${DEMO_TIMEOUT_MS} ms:\n${stdout}\n${stderr}`));
    }, DEMO_TIMEOUT_MS);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Processes whose environment carries `MARKER=marker`, as "pid command". */
async function processesMarked(marker: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of (await readdir("/proc")).filter((name) => /^\d+$/.test(name))) {
    try {
      const environ = await readFile(`/proc/${pid}/environ`, "latin1");
      if (environ.split("\0").includes(`${MARKER}=${marker}`)) {
        found.push(`${pid} ${(await readFile(`/proc/${pid}/cmdline`, "latin1")).replaceAll("\0", " ")}`);
      }
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

/** Waits (bounded) until no marked process is left, and returns those still there. */
async function leftoverProcesses(marker: string): Promise<string[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const left = await processesMarked(marker);
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

const leftoverFiles = async (tmpdir: string) => (await readdir(tmpdir)).filter((name) => name.startsWith("hgedge"));

describe("npm run demo", () => {
  let tmpdir = "";
  beforeAll(async () => {
    tmpdir = await mkdtemp(path.join(os.tmpdir(), "demo-test-"));
  });
  afterAll(async () => {
    if (tmpdir) await rm(tmpdir, { recursive: true, force: true });
  });

  it("prints its table, every clone verified, and leaves nothing running", async () => {
    const marker = randomBytes(8).toString("hex");
    const run = await runDemo(tmpdir, marker);
    const output = `${run.stdout}\n${run.stderr}`;
    expect(run.code, output).toBe(0);
    expect(run.stdout).toMatch(/^hg 5\.6\.1, v2, direct from the origin .* fails$/m);
    expect(run.stdout).toMatch(/^hg 5\.6\.1, v2, through hgedge, cold .* \d+ objects stored .* verified$/m);
    expect(run.stdout).toMatch(/^hg 5\.6\.1, v2, through hgedge, warm .* [1-9]\d* redirects to R2 .* verified$/m);
    expect(run.stdout).toMatch(/^hg 6\.3, v1, through hgedge .* clone bundle, R2 .* verified$/m);
    expect(run.stdout).toMatch(/^hg 7\.0\.1, v1, through hgedge .* clone bundle, R2 .* verified$/m);
    expect(await leftoverProcesses(marker)).toEqual([]);
    expect(await leftoverFiles(tmpdir)).toEqual([]);
  }, DEMO_TIMEOUT_MS);

  it("stops everything it started on Ctrl-C", async () => {
    const marker = randomBytes(8).toString("hex");
    // Once the edge is up, the origin, the recording proxy and wrangler with its runtime run.
    const run = await runDemo(tmpdir, marker, /^• edge: /m);
    expect(run.stdout).toMatch(/^• edge: /m);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(130);
    expect(run.stderr).toContain("SIGINT: stopping what it started");
    expect(await leftoverProcesses(marker)).toEqual([]);
    expect(await leftoverFiles(tmpdir)).toEqual([]);
  }, DEMO_TIMEOUT_MS);
});
