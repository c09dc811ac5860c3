/**
 * Clone bundles, end to end with today's Mercurial: a 6.x origin (`hg serve`, wire protocol v1
 * only), a recording proxy counting what it sends, and `npm start` in front. After the admin API
 * made a bundle, a 6.x clone says it applied the clone bundle from the edge, verifies, equals the
 * origin, and the origin served only the small incremental part — printed as a ratio against a
 * direct clone. A stale bundle (the origin moved on) still yields a complete, correct clone; a new
 * bundle replaces the old one, which is gone afterwards.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Bundle2Scanner, bundleSpecOf } from "../../src/protocol/bundle2.ts";
import { startEdge, type Edge } from "../support/edge.ts";
import { hg6Path, makeRepo, runHgOk, serveRepo, skipUnlessAvailable, startRecordingProxy, type Exchange, type RecordingProxy, type Served } from "../support/mercurial.ts";

const HG_TIMEOUT = 120_000;
const TOKEN = "e2e-admin-token-0123456789abcdef0123456789";
const hg6 = skipUnlessAvailable(hg6Path(), "Mercurial 6.x (.tools/bin/hg-6)");
const originBytes = (exchanges: Exchange[]) => exchanges.reduce((n, e) => n + e.responseBody.length, 0);
const COMMIT = ["--config", "ui.username=test", "-d", "0 0"];

const MODES: Record<string, string>[] = [
  { ACCESS: "public" },
  { ACCESS: "origin", SIGNING_KEY: "e2e-signing-key-0123456789abcdef0123456789" },
];

describe.skipIf(hg6.skip)(`Bundle2Scanner on Mercurial's own bundles${hg6.skip ? ` (skipped: ${hg6.reason})` : ""}`, () => {
  it("counts what hg bundle wrote and calls it what hg debugbundle --spec does", async () => {
    const HG6 = hg6Path() as string;
    const work = await mkdtemp(path.join(os.tmpdir(), "hgedge-bundle2-"));
    try {
      await makeRepo(path.join(work, "repo"), HG6);
      const file = path.join(work, "all.hg");
      await runHgOk(HG6, ["-R", path.join(work, "repo"), "bundle", "--all", "--type", "none-v2", file]);
      const scanner = new Bundle2Scanner();
      const bytes = await readFile(file);
      for (let at = 0; at < bytes.length; at += 1000) scanner.push(bytes.subarray(at, at + 1000));
      const summary = scanner.finish();
      const changesets = (await runHgOk(HG6, ["-R", path.join(work, "repo"), "log", "-T", "x"])).length;
      expect(summary.changesets).toBe(changesets);
      expect(bundleSpecOf(summary)).toBe((await runHgOk(HG6, ["debugbundle", "--spec", file])).trim());
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, HG_TIMEOUT);
});

describe.skipIf(hg6.skip).each(MODES)(`clone bundles end to end with Mercurial 6.x, ACCESS=$ACCESS${hg6.skip ? ` (skipped: ${hg6.reason})` : ""}`, (mode) => {
  const HG6 = hg6Path() as string;
  let work = "";
  let origin: Served | undefined;
  let recorder: RecordingProxy | undefined;
  let edge: Edge | undefined;
  const originDir = () => path.join(work, "origin");

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), "hgedge-clonebundles-"));
    await makeRepo(originDir(), HG6);
    origin = await serveRepo({ hgPath: HG6, repoDir: originDir(), v2: false });
    recorder = await startRecordingProxy(origin.url);
    edge = await startEdge(recorder.url, { ...mode, ADMIN_TOKEN: TOKEN });
  }, HG_TIMEOUT);

  afterAll(async () => {
    await edge?.stop();
    await recorder?.stop();
    await origin?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const state = async (repo: string) =>
    (await runHgOk(HG6, ["-R", repo, "log", "-T", "{node} {phase} {branch} {tags} {bookmarks}\n"])) +
    (await runHgOk(HG6, ["-R", repo, "manifest", "--debug", "-r", "tip"]));

  async function clone(url: string, name: string): Promise<{ dest: string; output: string; served: Exchange[] }> {
    const before = recorder!.exchanges.length;
    const dest = path.join(work, name);
    const output = await runHgOk(HG6, ["clone", "-U", "--verbose", url, dest], { timeoutMs: HG_TIMEOUT });
    return { dest, output, served: recorder!.exchanges.slice(before) };
  }

  async function generate(): Promise<{ name: string; changesets: number }> {
    const response = await fetch(`${edge!.url}/.hgedge/admin/bundles`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ repo: "/" }) });
    const body = (await response.json()) as { bundle: { name: string; changesets: number } };
    expect(response.status, JSON.stringify(body)).toBe(200);
    return body.bundle;
  }

  it("a 6.x clone applies the bundle from the edge and the origin serves only the rest", async () => {
    const direct = await clone(recorder!.url, "direct");
    expect(direct.output).not.toContain("clone bundle");
    const bundle = await generate();

    const cloned = await clone(edge!.url, "through-edge");
    expect(cloned.output).toMatch(new RegExp(`applying clone bundle from ${edge!.url}/\\.hgedge/objects/\\.bundles/\\.root/\\d{8}T\\d{6}Z-[0-9a-f]{16}\\.hg${mode.ACCESS === "origin" ? "\\?expires=\\d+&sig=[0-9a-f]{64}" : "\n"}`));
    expect(cloned.output).toContain("finished applying clone bundle");
    expect(cloned.output).toContain(`added ${bundle.changesets} changesets`);
    await runHgOk(HG6, ["-R", cloned.dest, "verify"]);
    // Phases included: hg serve publishes, so a clone has them public where the origin's own
    // working copy still says draft; the reference is a direct clone.
    expect(await state(cloned.dest)).toBe(await state(direct.dest));

    // The origin never sent a changegroup: only capabilities, the manifest and discovery.
    const served = originBytes(cloned.served);
    const ratio = served / originBytes(direct.served);
    console.log(`ACCESS=${mode.ACCESS}: origin bytes of a 6.x clone: direct ${originBytes(direct.served)}, through hgedge with a clone bundle ${served} (${(100 * ratio).toFixed(1)} %)`);
    expect(ratio).toBeLessThan(0.1);

    // The stored bundle is what Mercurial calls none-v2.
    const url = /applying clone bundle from (\S+)/.exec(cloned.output)![1]!;
    const file = path.join(work, "downloaded.hg");
    await writeFile(file, new Uint8Array(await (await fetch(url)).arrayBuffer()));
    expect((await runHgOk(HG6, ["debugbundle", "--spec", file])).trim()).toBe("none-v2");
  }, HG_TIMEOUT * 2);

  it("a stale bundle still gives a complete clone, and a new bundle replaces it", async () => {
    const old = await generate();
    await writeFile(path.join(originDir(), "README.txt"), "moved on after the bundle\n");
    await runHgOk(HG6, ["-R", originDir(), "commit", ...COMMIT, "-m", "after the bundle"]);

    const stale = await clone(edge!.url, "stale");
    expect(stale.output).toContain("finished applying clone bundle");
    expect(stale.output).toMatch(/added 1 changesets/);
    await runHgOk(HG6, ["-R", stale.dest, "verify"]);
    const reference = await clone(recorder!.url, "direct-after-commit");
    expect(await state(stale.dest)).toBe(await state(reference.dest));

    const fresh = await generate();
    expect(fresh.name).not.toBe(old.name);
    expect(fresh.changesets).toBe(old.changesets + 1);
    // The old object is gone from R2. (A ranged GET skips the PoP cache, which may still hold a
    // copy of the immutable old bundle; ACCESS=origin refuses the unsigned URL before looking.)
    const gone = await fetch(`${edge!.url}/.hgedge/objects/${old.name}`, { headers: { range: "bytes=0-3" } });
    expect(gone.status).toBe(mode.ACCESS === "public" ? 404 : 403);
    const again = await clone(edge!.url, "fresh");
    expect(again.output).toContain(fresh.name.split("/").pop());
    expect(again.output).toContain("no changes found");
    expect(await state(again.dest)).toBe(await state(reference.dest));
  }, HG_TIMEOUT * 2);
});
