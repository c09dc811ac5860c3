/**
 * Clone bundles, end to end with today's Mercurial: a 7.0.1 origin (`hg serve`, wire protocol v1
 * only), a recording proxy counting what it sends, and `npm start` in front (with the BUNDLER
 * Durable Object). After the admin API made the bundles, a 7.0.1 clone applies the stream
 * bundle, a 6.3 clone too, and a 7.0.1 clone that prefers zstd applies the zstd bundle; each
 * verifies and equals a direct clone, and the origin served only the small incremental part. A
 * push through the edge of BUNDLE_MIN_NEW_CHANGESETS then makes fresh bundles without any admin
 * call, which 7.0.1 clones; the replaced bundle stays readable. An origin that refuses stream
 * clones gets zstd bundles only, and the admin answer says why.
 */
import { appendFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Bundle2Scanner, bundleSpecOf } from "../../src/protocol/bundle2.ts";
import { startEdge, type Edge } from "../../harness/edge.ts";
import { hg6Path, makeRepo, projectRoot, runHgOk, serveRepo, skipUnlessAvailable, startRecordingProxy, type Exchange, type RecordingProxy, type Served } from "../../harness/mercurial.ts";

const HG_TIMEOUT = 120_000;
const TOKEN = "e2e-admin-token-0123456789abcdef0123456789";
const HG7_PATH = path.join(projectRoot, ".tools/bin/hg-7.0.1");
const hg6 = skipUnlessAvailable(hg6Path(), "Mercurial 6.x (.tools/bin/hg-6)");
const hg7 = skipUnlessAvailable(HG7_PATH, "Mercurial 7.0.1 (.tools/bin/hg-7.0.1)");
const skip = hg6.skip || hg7.skip;
const skipped = skip ? ` (skipped: ${hg6.reason || hg7.reason})` : "";
const originBytes = (exchanges: Exchange[]) => exchanges.reduce((n, e) => n + e.responseBody.length, 0);
const COMMIT = ["--config", "ui.username=test", "-d", "0 0"];
const THRESHOLD = 3;

const MODES: Record<string, string>[] = [
  { ACCESS: "public" },
  { ACCESS: "origin", SIGNING_KEY: "e2e-signing-key-0123456789abcdef0123456789" },
];

interface AdminBundles {
  bundles: { format: string; name: string; bundlespec: string }[];
  skipped?: Record<string, string>;
  changesets: number;
}

describe.skipIf(skip)(`Bundle2Scanner on Mercurial's own bundles${skipped}`, () => {
  it("counts what hg bundle wrote and calls it what hg debugbundle --spec does, stream bundles included", async () => {
    const work = await mkdtemp(path.join(os.tmpdir(), "hgedge-bundle2-"));
    try {
      await makeRepo(path.join(work, "repo"), HG7_PATH);
      const scan = async (type: string) => {
        const file = path.join(work, `${type.replace(/[^a-z0-9]/g, "_")}.hg`);
        await runHgOk(HG7_PATH, ["-R", path.join(work, "repo"), "bundle", "--all", "--type", type, file]);
        const scanner = new Bundle2Scanner();
        const bytes = await readFile(file);
        for (let at = 0; at < bytes.length; at += 1000) scanner.push(bytes.subarray(at, at + 1000));
        return { summary: scanner.finish(), spec: (await runHgOk(HG7_PATH, ["debugbundle", "--spec", file])).trim() };
      };
      const plain = await scan("none-v2");
      expect(plain.summary.changesets).toBe((await runHgOk(HG7_PATH, ["-R", path.join(work, "repo"), "log", "-T", "x"])).length);
      expect(bundleSpecOf(plain.summary)).toBe(plain.spec);
      const stream = await scan("none-v2;stream=v2");
      expect(stream.summary.stream?.files).toBeGreaterThan(3);
      expect(bundleSpecOf(stream.summary)).toBe(stream.spec);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, HG_TIMEOUT);
});

/** An origin (7.0.1), its recording proxy and the edge in front. */
function stack(mode: Record<string, string>, originConfig: string[] = []) {
  const s = { work: "", origin: undefined as Served | undefined, recorder: undefined as RecordingProxy | undefined, edge: undefined as Edge | undefined };
  beforeAll(async () => {
    s.work = await mkdtemp(path.join(os.tmpdir(), "hgedge-clonebundles-"));
    await makeRepo(path.join(s.work, "origin"), HG7_PATH);
    s.origin = await serveRepo({ hgPath: HG7_PATH, repoDir: path.join(s.work, "origin"), v2: false, extraConfig: originConfig });
    s.recorder = await startRecordingProxy(s.origin.url);
    // A state directory of its own: every stack bundles repository "/", and wrangler dev would
    // otherwise keep R2 and the BUNDLER objects of every edge started here in one place.
    const vars = { ...mode, ADMIN_TOKEN: TOKEN, BUNDLE_MIN_NEW_CHANGESETS: String(THRESHOLD) };
    s.edge = await startEdge(s.recorder.url, vars, ["--persist-to", path.join(s.work, "wrangler-state")]);
  }, HG_TIMEOUT);
  afterAll(async () => {
    await s.edge?.stop();
    await s.recorder?.stop();
    await s.origin?.stop();
    if (s.work) await rm(s.work, { recursive: true, force: true });
  });
  const state = async (hg: string, repo: string) =>
    (await runHgOk(hg, ["-R", repo, "log", "-T", "{node} {phase} {branch} {tags} {bookmarks}\n"])) + (await runHgOk(hg, ["-R", repo, "manifest", "--debug", "-r", "tip"]));
  const clone = async (hg: string, url: string, name: string, extra: string[] = []) => {
    const before = s.recorder!.exchanges.length;
    const dest = path.join(s.work, name);
    const output = await runHgOk(hg, ["clone", "-U", "--verbose", ...extra, url, dest], { timeoutMs: HG_TIMEOUT });
    await runHgOk(hg, ["-R", dest, "verify"]);
    return { dest, output, served: s.recorder!.exchanges.slice(before) };
  };
  const generate = async (): Promise<AdminBundles> => {
    const response = await fetch(`${s.edge!.url}/.hgedge/admin/bundles`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ repo: "/" }) });
    const body = (await response.json()) as AdminBundles;
    expect(response.status, JSON.stringify(body)).toBe(200);
    return body;
  };
  return { s, state, clone, generate };
}

const file = (name: string) => name.split("/").pop() as string;

describe.skipIf(skip).each(MODES)(`clone bundles end to end with Mercurial 7.0.1 and 6.3, ACCESS=$ACCESS${skipped}`, (mode) => {
  const { s, state, clone, generate } = stack(mode);
  const HG6 = hg6Path() as string;

  it("7.0.1 and 6.3 apply the stream bundle, 7.0.1 preferring zstd the zstd bundle, and the origin serves only the rest", async () => {
    const direct = await clone(HG7_PATH, s.recorder!.url, "direct");
    expect(direct.output).not.toContain("clone bundle");
    const made = await generate();
    expect(made.bundles.map((b) => b.format)).toEqual(["stream-v2", "zstd-v2"]);
    const [stream, zstd] = made.bundles;

    const signed = mode.ACCESS === "origin" ? "\\?expires=\\d+&sig=[0-9a-f]{64}" : "\n";
    for (const [hg, name] of [[HG7_PATH, "seven"], [HG6, "six"]] as const) {
      const cloned = await clone(hg, s.edge!.url, name);
      expect(cloned.output).toMatch(new RegExp(`applying clone bundle from ${s.edge!.url}/\\.hgedge/objects/\\.bundles/\\.root/${file(stream!.name)}${signed}`));
      expect(cloned.output).toMatch(/\d+ files to transfer, /);
      expect(cloned.output).toContain("finished applying clone bundle");
      expect(cloned.output).toContain("no changes found");
      expect(await state(hg, cloned.dest)).toBe(await state(hg, direct.dest));
      const ratio = originBytes(cloned.served) / originBytes(direct.served);
      console.log(`ACCESS=${mode.ACCESS}, ${name}: origin bytes direct ${originBytes(direct.served)}, through hgedge with a stream bundle ${originBytes(cloned.served)} (${(100 * ratio).toFixed(1)} %)`);
      expect(ratio).toBeLessThan(0.1);
    }

    const preferZstd = await clone(HG7_PATH, s.edge!.url, "zstd", ["--config", "ui.clonebundleprefers=COMPRESSION=zstd"]);
    expect(preferZstd.output).toContain(`applying clone bundle from ${s.edge!.url}/.hgedge/objects/.bundles/.root/${file(zstd!.name)}`);
    expect(preferZstd.output).toContain(`added ${made.changesets} changesets`);
    expect(await state(HG7_PATH, preferZstd.dest)).toBe(await state(HG7_PATH, direct.dest));

    // What R2 holds is what Mercurial calls it.
    const manifest = await (await fetch(`${s.edge!.url}/?cmd=clonebundles_manifest`)).text();
    for (const bundle of made.bundles) {
      const url = manifest.split("\n").find((line) => line.includes(file(bundle.name)))!.split(" ")[0]!;
      const local = path.join(s.work, file(bundle.name));
      await writeFile(local, new Uint8Array(await (await fetch(url)).arrayBuffer()));
      expect((await runHgOk(HG7_PATH, ["debugbundle", "--spec", local])).trim()).toBe(bundle.bundlespec);
    }
  }, HG_TIMEOUT * 3);

  it("a push through the edge of BUNDLE_MIN_NEW_CHANGESETS makes fresh bundles without any admin call; the old one stays readable", async () => {
    const old = await generate();
    const work = await clone(HG7_PATH, s.edge!.url, "pusher");
    await runHgOk(HG7_PATH, ["-R", work.dest, "update", "default"]);
    for (let i = 0; i < THRESHOLD; i++) {
      await appendFile(path.join(work.dest, "README.txt"), `pushed ${i}\n`);
      await runHgOk(HG7_PATH, ["-R", work.dest, "commit", ...COMMIT, "-m", `pushed ${i}`]);
    }
    const pushUrl = s.edge!.url;
    await runHgOk(HG7_PATH, ["-R", work.dest, "push", "-r", ".", pushUrl]);

    // The generator works in its alarm: wait (bounded) for the manifest to list new bundles.
    let manifest = "";
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
      manifest = await (await fetch(`${s.edge!.url}/?cmd=clonebundles_manifest`)).text();
      if (manifest !== "" && !old.bundles.some((b) => manifest.includes(file(b.name)))) break;
    }
    expect(old.bundles.some((b) => manifest.includes(file(b.name))), manifest).toBe(false);
    const stats = await (await fetch(`${s.edge!.url}/.hgedge/admin/stats`, { headers: { authorization: `Bearer ${TOKEN}` } })).json();
    expect((stats as { bundles: Record<string, { generator: { last: { trigger: string; action: string } } }> }).bundles["/"]!.generator.last).toMatchObject({ trigger: "push", action: "generated" });

    const fresh = await clone(HG7_PATH, s.edge!.url, "after-push");
    expect(fresh.output).toContain("finished applying clone bundle");
    expect(fresh.output).toContain("no changes found");
    const reference = await clone(HG7_PATH, s.recorder!.url, "direct-after-push");
    expect(await state(HG7_PATH, fresh.dest)).toBe(await state(HG7_PATH, reference.dest));

    if (mode.ACCESS === "public") {
      // Retired, not deleted: a client that read the manifest a moment ago still gets it.
      const retired = await fetch(`${s.edge!.url}/.hgedge/objects/${old.bundles[0]!.name}`, { headers: { range: "bytes=0-3" } });
      expect(retired.status).toBe(206);
      expect(await retired.text()).toBe("HG20");
    }
  }, HG_TIMEOUT * 3);
});

describe.skipIf(skip)(`an origin that refuses stream clones (server.uncompressed=false)${skipped}`, () => {
  const { s, state, clone, generate } = stack({ ACCESS: "public" }, ["--config", "server.uncompressed=false"]);

  it("gets zstd bundles only, the admin answer says why, and 7.0.1 clones from the zstd bundle", async () => {
    const made = await generate();
    expect(made.bundles.map((b) => b.format)).toEqual(["zstd-v2"]);
    expect(made.skipped?.["stream-v2"]).toMatch(/does not offer stream clones/);
    const cloned = await clone(HG7_PATH, s.edge!.url, "seven");
    expect(cloned.output).toContain(`applying clone bundle from ${s.edge!.url}/.hgedge/objects/.bundles/.root/${file(made.bundles[0]!.name)}`);
    const direct = await clone(HG7_PATH, s.recorder!.url, "direct");
    expect(await state(HG7_PATH, cloned.dest)).toBe(await state(HG7_PATH, direct.dest));
  }, HG_TIMEOUT * 2);
});
