/**
 * The product, end to end: a real Mercurial 5.6.1 v2 client clones through `npm start` (local
 * R2) from a real 5.6.1 origin. The cold clone fills the cache; a second clone into a new
 * directory gets every manifestdata/filesdata as a content redirect, follows it to the content
 * route, and ends with a repository identical to the origin's, while the origin serves neither
 * command. A recording proxy between edge and origin counts what the origin sent.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startStack, type Edge, type Stack } from "../../harness/edge.ts";
import {
  cloneArgs,
  hg56Path,
  makeRepo,
  runHgOk,
  skipUnlessAvailable,
  type Exchange,
  type RecordingProxy,
} from "../../harness/mercurial.ts";

const HG_TIMEOUT = 120_000;
const hg56 = skipUnlessAvailable(hg56Path(), "Mercurial 5.6.1 (.tools/bin/hg-5.6.1)");
const CACHEABLE = /\/api\/exp-http-v2-0003\/ro\/(manifestdata|filesdata|filedata)$/;

const originBytes = (exchanges: Exchange[]) => exchanges.reduce((n, e) => n + e.responseBody.length, 0);

// ACCESS=origin asks the origin before each hit and redirects to signed URLs; hg serve lets
// anyone pull, so both modes must give the same result.
const MODES: Record<string, string>[] = [
  { ACCESS: "public" },
  { ACCESS: "origin", SIGNING_KEY: "e2e-signing-key-0123456789abcdef0123456789" },
];

describe.skipIf(hg56.skip).each(MODES)(`cache end to end, ACCESS=$ACCESS${hg56.skip ? ` (skipped: ${hg56.reason})` : ""}`, (mode) => {
  const HG56 = hg56Path() as string;
  let work = "";
  let stack: Stack | undefined;
  let recorder: RecordingProxy | undefined;
  let edge: Edge | undefined;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), "hgedge-cache-"));
    await makeRepo(path.join(work, "origin"), HG56);
    stack = await startStack(HG56, path.join(work, "origin"), { ...mode, MIN_REDIRECT_BYTES: "0", CACHE_VERSION: `e2e-${Date.now()}` });
    ({ recorder, edge } = stack);
  }, HG_TIMEOUT);

  afterAll(async () => {
    await stack?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const state = async (repo: string) =>
    (await runHgOk(HG56, ["-R", repo, "log", "-T", "{node} {branch} {tags} {bookmarks}\n"])) +
    (await runHgOk(HG56, ["-R", repo, "manifest", "--debug", "-r", "tip"]));

  async function clone(name: string): Promise<{ dest: string; exchanges: Exchange[]; output: string }> {
    const before = recorder!.exchanges.length;
    const dest = path.join(work, name);
    const output = await runHgOk(HG56, ["clone", "--debug", ...cloneArgs({ v2: true }), edge!.url, dest], { timeoutMs: HG_TIMEOUT });
    return { dest, exchanges: recorder!.exchanges.slice(before), output };
  }

  it("fills the cache on a cold clone and serves a warm clone from R2", async () => {
    const cold = await clone("cold");
    expect(cold.exchanges.filter((e) => CACHEABLE.test(e.path)).length).toBeGreaterThanOrEqual(2);
    expect(await state(cold.dest)).toBe(await state(path.join(work, "origin")));

    const warm = await clone("warm");
    // The origin answered none of the cacheable commands the second time.
    expect(warm.exchanges.filter((e) => CACHEABLE.test(e.path))).toEqual([]);
    // The client followed a redirect for each of them, to our content route.
    const signed = mode.ACCESS === "origin" ? "\\?expires=\\d+&sig=[0-9a-f]{64}" : "";
    expect(warm.output).toMatch(new RegExp(`\\(following redirect to http://127\\.0\\.0\\.1:\\d+/\\.hgedge/objects/\\.root/manifestdata/[0-9a-f]{64}${signed}\\)`));
    // wrangler dev logs the path without the query.
    const objectFetches = [/GET \/\.hgedge\/objects\/\.root\/manifestdata\/[0-9a-f]{64} 200/, /GET \/\.hgedge\/objects\/\.root\/filesdata\/[0-9a-f]{64} 200/];
    await edge!.logged((output) => objectFetches.every((line) => line.test(output)));
    for (const line of objectFetches) expect(edge!.output()).toMatch(line);
    await runHgOk(HG56, ["-R", warm.dest, "verify"]);
    expect(await state(warm.dest)).toBe(await state(path.join(work, "origin")));

    const ratio = originBytes(warm.exchanges) / originBytes(cold.exchanges);
    console.log(
      `origin bytes: cold clone ${originBytes(cold.exchanges)}, warm clone ${originBytes(warm.exchanges)} ` +
        `(warm/cold ${(100 * ratio).toFixed(1)} %)`,
    );
    expect(ratio).toBeLessThan(0.5);
  }, HG_TIMEOUT);
});
