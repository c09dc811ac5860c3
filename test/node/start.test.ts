/**
 * `npm start` runs the Worker locally in front of an origin: real Mercurial clients clone
 * through it (v1 with 6.x, v2 with 5.6.1) and get the origin's repository.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEdge, type Edge } from "../support/edge.ts";
import { cloneArgs, hg56Path, hg6Path, makeRepo, runHgOk, serveRepo, skipUnlessAvailable, type Served } from "../support/mercurial.ts";

const HG_TIMEOUT = 90_000;
const hg6 = skipUnlessAvailable(hg6Path(), "Mercurial 6.x (.tools/bin/hg-6)");
const hg56 = skipUnlessAvailable(hg56Path(), "Mercurial 5.6.1 (.tools/bin/hg-5.6.1)");

describe.skipIf(hg6.skip || hg56.skip)(`npm start${hg6.skip || hg56.skip ? ` (skipped: ${hg6.reason || hg56.reason})` : ""}`, () => {
  let work = "";
  let origin: Served | undefined;
  let edge: Edge | undefined;
  const HG56 = hg56Path() as string;
  const HG6 = hg6Path() as string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), "hgedge-start-"));
    await makeRepo(path.join(work, "origin"), HG56);
    origin = await serveRepo({ hgPath: HG56, repoDir: path.join(work, "origin"), v2: true });
    edge = await startEdge(origin.url);
  }, HG_TIMEOUT);

  afterAll(async () => {
    await edge?.stop();
    await origin?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const log = (hg: string, repo: string) => runHgOk(hg, ["-R", repo, "log", "-T", "{node} {branch} {tags}\n"]);

  it("passes a v1 clone through to the origin", async () => {
    const dest = path.join(work, "clone-v1");
    await runHgOk(HG6, ["clone", "-U", edge!.url, dest], { timeoutMs: HG_TIMEOUT });
    expect(await log(HG6, dest)).toBe(await log(HG6, path.join(work, "origin")));
    await runHgOk(HG6, ["-R", dest, "verify"]);
  }, HG_TIMEOUT);

  it("passes a v2 clone through to the origin", async () => {
    const dest = path.join(work, "clone-v2");
    const out = await runHgOk(HG56, ["clone", "-U", "--debug", ...cloneArgs({ v2: true }), edge!.url, dest], { timeoutMs: HG_TIMEOUT });
    // Frames only travel over wire protocol v2.
    expect(out).toContain("type=command-response");
    expect(await log(HG56, dest)).toBe(await log(HG56, path.join(work, "origin")));
    await runHgOk(HG56, ["-R", dest, "verify"]);
  }, HG_TIMEOUT);

  it("answers 502 with a reason when the origin is down", async () => {
    const dead = await startEdge("http://127.0.0.1:9");
    try {
      const response = await fetch(`${dead.url}/?cmd=capabilities`);
      expect(response.status).toBe(502);
      expect(await response.text()).toMatch(/cannot reach the origin/);
    } finally {
      await dead.stop();
    }
  }, HG_TIMEOUT);
});
