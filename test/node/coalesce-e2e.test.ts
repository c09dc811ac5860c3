/**
 * Single-flight with real clients: several Mercurial 5.6.1 clients clone one repository through
 * `npm start` at the same moment, cold. With the COALESCER Durable Object bound (wrangler.toml),
 * the origin answers each cacheable command request once; every clone is complete and equal to
 * the origin. (`npm run bench:coalesce` does the same with 50 clients.)
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cloneConcurrently } from "../../harness/concurrent.ts";
import { startStack, type Stack } from "../../harness/edge.ts";
import { hg56Path, makeRepo, runHgOk, skipUnlessAvailable } from "../../harness/mercurial.ts";

const HG_TIMEOUT = 180_000;
const CLIENTS = 6;
const hg56 = skipUnlessAvailable(hg56Path(), "Mercurial 5.6.1 (.tools/bin/hg-5.6.1)");

describe.skipIf(hg56.skip)(`concurrent cold clones${hg56.skip ? ` (skipped: ${hg56.reason})` : ""}`, () => {
  const HG56 = hg56Path() as string;
  let work = "";
  let stack: Stack | undefined;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), "hgedge-coalesce-"));
    await makeRepo(path.join(work, "origin"), HG56);
    stack = await startStack(HG56, path.join(work, "origin"), { ACCESS: "public", CACHE_VERSION: `coalesce-${Date.now()}` });
  }, HG_TIMEOUT);

  afterAll(async () => {
    await stack?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it(`has the origin answer each cacheable command once for ${CLIENTS} simultaneous clones`, async () => {
    const result = await cloneConcurrently(HG56, stack!, work, CLIENTS, HG_TIMEOUT);
    expect(result.failures, `edge output:\n${stack!.edge.output().slice(-4000)}`).toEqual([]);
    expect(result.originAnswersPerKey.size).toBeGreaterThanOrEqual(2);
    expect([...result.originAnswersPerKey.values()]).toEqual([...result.originAnswersPerKey.values()].map(() => 1));
    const heads = async (repo: string) => runHgOk(HG56, ["-R", repo, "log", "-T", "{node} {branch}\n"]);
    const expected = await heads(path.join(work, "origin"));
    for (const dest of result.destinations) {
      expect(await heads(dest)).toBe(expected);
      await runHgOk(HG56, ["-R", dest, "verify"]);
    }
  }, HG_TIMEOUT);
});
