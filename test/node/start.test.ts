/**
 * `npm start` runs the Worker locally in front of an origin: real Mercurial clients clone
 * through it (v1 with 6.x, v2 with 5.6.1) and get the origin's repository.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
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

  /** History and, through the manifests' file nodes (content hashes), every file's content. */
  const log = async (hg: string, repo: string) =>
    (await runHgOk(hg, ["-R", repo, "log", "-T", "{node} {branch} {tags}\n"])) +
    (await runHgOk(hg, ["-R", repo, "manifest", "--debug", "-r", "tip"]));

  it("passes a v1 clone through to the origin", async () => {
    const dest = path.join(work, "clone-v1");
    await runHgOk(HG6, ["clone", "-U", edge!.url, dest], { timeoutMs: HG_TIMEOUT });
    expect(await log(HG6, dest)).toBe(await log(HG6, path.join(work, "origin")));
    await runHgOk(HG6, ["-R", dest, "verify"]);
  }, HG_TIMEOUT);

  it("passes a v2 clone through and the client accepts hgedge's redirect target", async () => {
    const dest = path.join(work, "clone-v2");
    const out = await runHgOk(HG56, ["clone", "-U", "--debug", ...cloneArgs({ v2: true }), edge!.url, dest], { timeoutMs: HG_TIMEOUT });
    // Frames only travel over wire protocol v2.
    expect(out).toContain("type=command-response");
    expect(out).toContain("(remote redirect target hgedge is compatible)");
    expect(await log(HG56, dest)).toBe(await log(HG56, path.join(work, "origin")));
    await runHgOk(HG56, ["-R", dest, "verify"]);
  }, HG_TIMEOUT);

  it("pulls with v2 and pushes with v1 through the edge", async () => {
    const originRepo = path.join(work, "origin");
    const v2 = path.join(work, "pull-v2");
    const v1 = path.join(work, "push-v1");
    await runHgOk(HG56, ["clone", "-U", "-r", "0", ...cloneArgs({ v2: true }), edge!.url, v2], { timeoutMs: HG_TIMEOUT });
    await runHgOk(HG6, ["clone", edge!.url, v1], { timeoutMs: HG_TIMEOUT });
    await writeFile(path.join(v1, "through-the-edge.txt"), "pushed through hgedge\n");
    await runHgOk(HG6, ["-R", v1, "commit", "-A", "-u", "test", "-d", "0 0", "-m", "pushed through hgedge"]);
    await runHgOk(HG6, ["-R", v1, "push", "-r", ".", "--config", "phases.publish=false"], { timeoutMs: HG_TIMEOUT });
    expect(await runHgOk(HG56, ["-R", originRepo, "log", "-r", "tip", "-T", "{desc}"])).toBe("pushed through hgedge");

    await runHgOk(HG56, ["-R", v2, "pull", ...cloneArgs({ v2: true })], { timeoutMs: HG_TIMEOUT });
    expect(await log(HG56, v2)).toBe(await log(HG56, originRepo));
    await runHgOk(HG56, ["-R", v2, "verify"]);
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
