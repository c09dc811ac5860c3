/**
 * A history that removes and renames files cannot be cloned over v2 from a stock 5.x origin
 * (filesdata with haveparents fails on the removed path). Through hgedge it can: the clone and a
 * later pull succeed and verify, and a warm second clone comes from the cache.
 */
import { writeFile } from "node:fs/promises";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startStack, type Edge, type Stack } from "../../harness/edge.ts";
import {
  cloneArgs,
  hg56Path,
  makeRepo,
  runHg,
  runHgOk,
  skipUnlessAvailable,
  type RecordingProxy,
  type Served,
} from "../../harness/mercurial.ts";

const HG_TIMEOUT = 120_000;
const hg56 = skipUnlessAvailable(hg56Path(), "Mercurial 5.6.1 (.tools/bin/hg-5.6.1)");

describe.skipIf(hg56.skip)(`renames through hgedge${hg56.skip ? ` (skipped: ${hg56.reason})` : ""}`, () => {
  const HG56 = hg56Path() as string;
  let work = "";
  let repo = "";
  let stack: Stack | undefined;
  let origin: Served | undefined;
  let recorder: RecordingProxy | undefined;
  let edge: Edge | undefined;
  const hg = (...args: string[]) => runHgOk(HG56, ["-R", repo, ...args]);
  const commit = (message: string) => hg("commit", "-u", "test", "-d", "0 0", "-m", message);

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), "hgedge-rename-"));
    repo = path.join(work, "origin");
    await makeRepo(repo, HG56);
    await hg("mv", path.join(repo, "docs/guide.md"), path.join(repo, "docs/moved.md"));
    await commit("rename guide");
    await hg("rm", path.join(repo, "docs/manual.md"));
    await commit("remove manual.md");
    stack = await startStack(HG56, repo, { ACCESS: "public", MIN_REDIRECT_BYTES: "0", CACHE_VERSION: `rename-${Date.now()}` });
    ({ origin, recorder, edge } = stack);
  }, HG_TIMEOUT);

  afterAll(async () => {
    await stack?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const state = async (dir: string) =>
    (await runHgOk(HG56, ["-R", dir, "log", "-T", "{node} {branch} {tags}\n"])) + (await runHgOk(HG56, ["-R", dir, "manifest", "--debug", "-r", "tip"]));

  it("cannot be cloned from the origin directly (the test reaches the origin's bug)", async () => {
    const result = await runHg(HG56, ["clone", "-U", ...cloneArgs({ v2: true }), origin!.url, path.join(work, "direct")], { timeoutMs: HG_TIMEOUT });
    expect(result.code).not.toBe(0);
    // Debian's 5.6.1 uses the C manifest, whose KeyError reads 'No such manifest entry.'.
    expect(result.stderr).toMatch(/abort: \[\{b'msg': b"'No such manifest entry\.'"\}\]/);
  }, HG_TIMEOUT);

  it("clones and pulls through hgedge, and the warm clone comes from the cache", async () => {
    const clone = path.join(work, "through-edge");
    await runHgOk(HG56, ["clone", "-U", ...cloneArgs({ v2: true }), edge!.url, clone], { timeoutMs: HG_TIMEOUT });
    await runHgOk(HG56, ["-R", clone, "verify"]);
    expect(await state(clone)).toBe(await state(repo));
    await edge!.logged((output) => output.includes("filesdata-retry"));
    expect(edge!.output()).toContain("filesdata-retry");

    // The same clone again comes from the cache: the origin sees no filesdata at all.
    const before = recorder!.exchanges.length;
    const warm = path.join(work, "warm");
    await runHgOk(HG56, ["clone", "-U", ...cloneArgs({ v2: true }), edge!.url, warm], { timeoutMs: HG_TIMEOUT });
    await runHgOk(HG56, ["-R", warm, "verify"]);
    expect(await state(warm)).toBe(await state(repo));
    const filesdataAtOrigin = recorder!.exchanges.slice(before).filter((e) => e.path.endsWith("/ro/filesdata"));
    expect(filesdataAtOrigin).toEqual([]);

    // The origin moves on, renaming again; the pull goes through hgedge too.
    await writeFile(path.join(repo, "README.txt"), "changed after the clone\n");
    await hg("mv", path.join(repo, "docs/moved.md"), path.join(repo, "docs/final.md"));
    await commit("rename again");
    await runHgOk(HG56, ["-R", clone, "pull", ...cloneArgs({ v2: true })], { timeoutMs: HG_TIMEOUT });
    await runHgOk(HG56, ["-R", clone, "verify"]);
    expect(await state(clone)).toBe(await state(repo));
  }, HG_TIMEOUT);
});
