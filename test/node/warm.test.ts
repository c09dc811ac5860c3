/**
 * `npm run warm`, end to end: a real Mercurial 5.6.1 origin (small recommended batch sizes, so
 * a small history still makes several manifestdata and filesdata batches), the edge in
 * `wrangler dev`, and the warmer run as an operator runs it. The history removes and renames a
 * file, which the stock origin cannot serve as a clone asks (the edge works around it). A warm-up capped by --max-requests
 * stops with objects left; the re-run skips what the first one finished and sends the rest; then
 * a real 5.6.1 clone through the edge gets every cacheable answer from the cache — the origin
 * serves none of them — and verifies. A recording proxy in front of the origin counts what the
 * origin was asked.
 */
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startStack, type Stack } from "../../harness/edge.ts";
import { cloneArgs, freePort, hg56Path, projectRoot, runHgOk, skipUnlessAvailable, type Exchange } from "../../harness/mercurial.ts";
import type { WarmSummary } from "../../scripts/warm/run.ts";
import { mapGet } from "../../src/protocol/cbor.ts";
import { parseRequestBody } from "../../src/protocol/requests.ts";

const HG_TIMEOUT = 150_000;
const ADMIN_TOKEN = "warm-test-admin-token-0123456789abcdef0123";
const hg56 = skipUnlessAvailable(hg56Path(), "Mercurial 5.6.1 (.tools/bin/hg-5.6.1)");
const CACHEABLE = /\/api\/exp-http-v2-0003\/ro\/(manifestdata|filesdata|filedata)$/;
const TSX = path.join(projectRoot, "node_modules/.bin/tsx");

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runWarm(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(TSX, [path.join(projectRoot, "scripts/warm.ts"), ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

function summaryOf(run: Run): WarmSummary {
  try {
    return JSON.parse(run.stdout) as WarmSummary;
  } catch {
    throw new Error(`no JSON summary (exit ${run.code}):\n${run.stdout}\n${run.stderr}`);
  }
}

const cacheableAtOrigin = (exchanges: Exchange[]) => exchanges.filter((e) => CACHEABLE.test(e.path));

/** Whether a recorded request asks for deltas against parents (what a clone sends). */
function haveParents(exchange: Exchange): boolean {
  const [command] = parseRequestBody(new Uint8Array(exchange.requestBody)).commands;
  return mapGet(command!.args, "haveparents") === true;
}

/** The edge's request log lines (JSON) for cacheable commands, from `offset` in its output. */
function edgeCacheLines(output: string, offset: number): { command: string; cache: string }[] {
  return output
    .slice(offset)
    .split("\n")
    .flatMap((line) => {
      const at = line.indexOf('{"');
      if (at < 0) return [];
      try {
        const entry = JSON.parse(line.slice(at)) as { event?: string; kind?: string; command?: string; cache?: string };
        return entry.event === "request" && entry.kind === "v2-command" && /^(manifestdata|filesdata|filedata)$/.test(entry.command ?? "")
          ? [{ command: entry.command as string, cache: entry.cache as string }]
          : [];
      } catch {
        return [];
      }
    });
}

describe.skipIf(hg56.skip)(`npm run warm against a real origin${hg56.skip ? ` (skipped: ${hg56.reason})` : ""}`, () => {
  const HG56 = hg56Path() as string;
  let work = "";
  let stack: Stack | undefined;
  let stateFile = "";
  const originDir = () => path.join(work, "origin");

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), "hgedge-warm-"));
    stateFile = path.join(work, "state.json");
    await runHgOk(HG56, ["init", originDir()]);
    // 40 changesets on two branches, files under src/modNN/, src/new/ and assets/.
    const extension = `extensions.makerepo=${path.join(projectRoot, "scripts/bench/makerepo.py")}`;
    await runHgOk(HG56, ["--config", extension, "-R", originDir(), "hgedge-makerepo", "40"], { timeoutMs: HG_TIMEOUT });
    // A removal and a rename, as real histories have: the stock origin fails filesdata on them
    // and the edge retries (README, "Stock 5.x origins and removed files"); warming must too.
    const hg = (...args: string[]) => runHgOk(HG56, ["-R", originDir(), ...args]);
    await hg("update", "default");
    await hg("rm", path.join(originDir(), "src/mod00/file000.c"));
    await hg("commit", "-u", "test", "-d", "0 0", "-m", "remove a file");
    await hg("mv", path.join(originDir(), "src/mod01/file001.c"), path.join(originDir(), "src/mod01/renamed.c"));
    await hg("commit", "-u", "test", "-d", "0 0", "-m", "rename a file");
    stack = await startStack(
      HG56,
      originDir(),
      { ACCESS: "public", MIN_REDIRECT_BYTES: "0", CACHE_VERSION: `warm-${Date.now()}`, ADMIN_TOKEN },
      {
        originConfig: [
          "--config", "experimental.server.manifestdata.recommended-batch-size=16",
          "--config", "experimental.server.filesdata.recommended-batch-size=7",
        ],
      },
    );
  }, HG_TIMEOUT);

  afterAll(async () => {
    await stack?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("warms in resumable steps, and a real clone afterwards is served entirely from the cache", async () => {
    const { edge, recorder } = stack!;
    const auth = "Basic d2FybTp3YXJt";

    // 1. Capped: three objects, then stop with the rest left (exit 3).
    const first = await runWarm([edge.url, "/", "--state", stateFile, "--max-requests", "3", "--concurrency", "1", "--json", "--header", `Authorization: ${auth}`]);
    expect(first.code, first.stderr).toBe(3);
    const capped = summaryOf(first);
    expect(capped.changesets).toBe(42);
    expect(capped.batchSizes).toEqual({ manifestdata: 16, filesdata: 7 });
    // ceil(42 / 7) filesdata batches and at least two manifestdata batches: several of each.
    expect(capped.planned).toBeGreaterThanOrEqual(2 + 6);
    expect(capped).toMatchObject({ sent: 3, misses: 3, hits: 0, skipped: 0, remaining: capped.planned - 3, stopped: "max-requests" });
    expect(cacheableAtOrigin(recorder.exchanges)).toHaveLength(3);
    // The operator's header reached the origin through the edge.
    expect(recorder.exchanges.find((e) => e.path.endsWith("/ro/heads"))?.requestHeaders.authorization).toBe(auth);
    expect(Object.keys(JSON.parse(await readFile(stateFile, "utf8")).done)).toHaveLength(3);

    // 2. Resumed: the three finished objects are checked and skipped, the others fetched once each.
    const second = await runWarm([edge.url, "/", "--state", stateFile, "--json"]);
    expect(second.code, second.stderr + second.stdout).toBe(0);
    const resumed = summaryOf(second);
    expect(resumed).toMatchObject({ planned: capped.planned, skipped: 3, sent: capped.planned - 3, misses: capped.planned - 3, remaining: 0 });
    expect(resumed.failed).toEqual([]);
    // Every object came from the origin exactly once over both runs (in the clone's form; the
    // batch with the removal was retried by the edge in the working form, and stored all the same).
    const atOrigin = cacheableAtOrigin(recorder.exchanges);
    const asSent = atOrigin.filter((e) => haveParents(e));
    expect(asSent).toHaveLength(capped.planned);
    expect(new Set(asSent.map((e) => e.requestBody.toString("hex"))).size).toBe(capped.planned);
    expect(atOrigin.filter((e) => !haveParents(e)).length).toBeGreaterThanOrEqual(1);

    // The second run checked the three recorded objects first: each was still cached.
    expect(resumed.rechecked).toEqual({ checked: 3, gone: 0 });

    // 3. A real clone: every manifestdata/filesdata it sends is answered from the cache. The
    // warm-up's own log lines (every object once, and the three checks) are all in before the
    // clone's are counted.
    await edge.logged((output) => edgeCacheLines(output, 0).length >= capped.planned + 3);
    expect(edgeCacheLines(edge.output(), 0)).toHaveLength(capped.planned + 3);
    const before = recorder.exchanges.length;
    const logOffset = edge.output().length;
    const dest = path.join(work, "clone");
    await runHgOk(HG56, ["clone", ...cloneArgs({ v2: true }), edge.url, dest], { timeoutMs: HG_TIMEOUT });
    expect(cacheableAtOrigin(recorder.exchanges.slice(before))).toEqual([]);
    await edge.logged((output) => edgeCacheLines(output, logOffset).length >= capped.planned);
    const answered = edgeCacheLines(edge.output(), logOffset);
    expect(answered).toHaveLength(capped.planned);
    expect(answered.every((a) => a.cache === "REDIRECT")).toBe(true);
    await runHgOk(HG56, ["-R", dest, "verify"]);
    const log = (repo: string) => runHgOk(HG56, ["-R", repo, "log", "-T", "{node} {branch} {manifest}\n"]);
    expect(await log(dest)).toBe(await log(originDir()));

    // 4. With a new state file everything is a hit, and --verify confirms each object is cached.
    const again = await runWarm([edge.url, "/", "--state", path.join(work, "other.json"), "--verify", "--json"]);
    expect(again.code, again.stderr).toBe(0);
    expect(summaryOf(again)).toMatchObject({ sent: capped.planned, hits: capped.planned, misses: 0, verified: { checked: capped.planned, notCached: 0 } });
    expect(summaryOf(again).cacheHeaders).toEqual({ REDIRECT: capped.planned });
    expect(cacheableAtOrigin(recorder.exchanges.slice(before))).toEqual([]);

    // 5. After an admin purge the state file is wrong: a re-run checks each recorded object,
    // finds none cached, and warms them all again rather than claim a warm cache.
    const beforePurge = recorder.exchanges.length;
    const purged = await fetch(`${edge.url}/.hgedge/admin/purge`, { method: "POST", headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, body: JSON.stringify({ repo: "/" }) });
    expect(((await purged.json()) as { deleted: number }).deleted).toBeGreaterThanOrEqual(capped.planned);
    const afterPurge = await runWarm([edge.url, "/", "--state", stateFile, "--json"]);
    expect(afterPurge.code, afterPurge.stderr).toBe(0);
    expect(summaryOf(afterPurge)).toMatchObject({ skipped: 0, rechecked: { checked: capped.planned, gone: capped.planned }, sent: capped.planned, misses: capped.planned, remaining: 0 });
    // Each object once (the batch with the removal now straight in the working form, see step 2).
    expect(cacheableAtOrigin(recorder.exchanges.slice(beforePurge))).toHaveLength(capped.planned);

    // 6. And once warm again, a re-run confirms it with one request per object and no object byte.
    const beforeCheck = recorder.exchanges.length;
    const confirmed = await runWarm([edge.url, "/", "--state", stateFile, "--json"]);
    expect(confirmed.code, confirmed.stderr).toBe(0);
    expect(summaryOf(confirmed)).toMatchObject({ skipped: capped.planned, rechecked: { checked: capped.planned, gone: 0 }, sent: 0, misses: 0, objectBytes: 0, remaining: 0 });
    expect(cacheableAtOrigin(recorder.exchanges.slice(beforeCheck))).toEqual([]);
  }, HG_TIMEOUT);

  it("prints progress lines and a readable summary when not on a terminal", async () => {
    const run = await runWarm([stack!.edge.url, "/", "--state", path.join(work, "third.json"), "--interval", "1"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/^warm: 42 changesets → \d+ manifestdata batch\(es\) of ≤ 16 manifests and 6 filesdata batch\(es\) of ≤ 7 changesets/m);
    expect(run.stderr).toMatch(/^warm: (\d+)\/\1 objects, [\d.]+ (B|KiB|MiB) of ~[\d.]+ (B|KiB|MiB), .*\/s, ETA 0s, \1 hit, 0 miss$/m);
    expect(run.stdout).toMatch(/^warmed http:\/\/127\.0\.0\.1:\d+\/ in [\d.]+ s: \d+ objects planned from 42 changesets$/m);
    expect(run.stdout).toMatch(/X-Hgedge-Cache: REDIRECT \d+/);
  }, HG_TIMEOUT);
});

describe("npm run warm refuses clearly when it cannot warm", () => {
  let server: Server | undefined;

  afterAll(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  it("says the edge is unreachable (exit 2)", async () => {
    const port = await freePort();
    const run = await runWarm([`http://127.0.0.1:${port}`, "/", "--state", path.join(os.tmpdir(), `hgedge-warm-none-${port}.json`)]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/cannot reach the edge at http:\/\/127\.0\.0\.1:\d+\/\?cmd=capabilities: ECONNREFUSED/);
  }, 60_000);

  it("says how to pass credentials when the repository needs them (exit 2)", async () => {
    server = createServer((_request, response) => {
      response.writeHead(401, "Unauthorized", { "www-authenticate": 'Basic realm="hg"', "content-type": "text/plain" });
      response.end("permission denied\n");
    });
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", () => resolve()));
    const { port } = server.address() as AddressInfo;
    const run = await runWarm([`http://127.0.0.1:${port}`, "private/repo", "--state", path.join(os.tmpdir(), `hgedge-warm-401-${port}.json`)]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`http://127.0.0.1:${port}/private/repo?cmd=capabilities answered 401 Unauthorized: permission denied`);
    expect(run.stderr).toContain("--header 'Authorization: Basic …'");
  }, 60_000);

  it("explains its usage (exit 2)", async () => {
    const run = await runWarm(["http://127.0.0.1:1"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/expected <edge url> and <repo path>[\s\S]*usage: npm run warm/);
  }, 60_000);
});
