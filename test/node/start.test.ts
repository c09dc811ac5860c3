/**
 * `npm start` runs the Worker locally in front of an origin: real Mercurial clients clone
 * through it (v1 with 6.x, v2 with 5.6.1) and get the origin's repository.
 */
import { readFileSync, readdirSync, readlinkSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { missingOriginUrl } from "../../scripts/deploy.ts";
import { cacheOffNote, localSettings, planStart } from "../../scripts/start.ts";
import { startEdge, type Edge } from "../../harness/edge.ts";
import { cloneArgs, hg56Path, hg6Path, makeRepo, projectRoot, runHgOk, serveRepo, skipUnlessAvailable, type Served } from "../../harness/mercurial.ts";

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

describe("npm start's plan", () => {
  let root = "";
  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), "hgedge-plan-"));
    await writeFile(path.join(root, ".dev.vars.example"), "ORIGIN_URL=http://127.0.0.1:8000\n");
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  it("turns the DevTools Network events off unless --devtools-network or HGEDGE_DEVTOOLS_NETWORK says otherwise", async () => {
    expect((await planStart(["--port", "1"], {}, root)).devtoolsNetwork).toBe(false);
    const kept = await planStart(["--devtools-network", "--port", "1"], {}, root);
    expect(kept.devtoolsNetwork).toBe(true);
    expect(kept.wranglerArgs).not.toContain("--devtools-network");
    expect((await planStart([], { HGEDGE_DEVTOOLS_NETWORK: "1" }, root)).devtoolsNetwork).toBe(true);
  });

  it("knows the inspector port, given or chosen", async () => {
    expect((await planStart(["--inspector-port", "4321"], {}, root)).inspectorPort).toBe(4321);
    const chosen = await planStart([], {}, root);
    expect(chosen.inspectorPort).toBeGreaterThan(0);
    expect(chosen.wranglerArgs).toEqual(expect.arrayContaining(["--inspector-port", String(chosen.inspectorPort)]));
  });

  it("uses .dev.vars.example only when there is no .dev.vars and no --env-file", async () => {
    const example = path.join(root, ".dev.vars.example");
    expect((await planStart([], {}, root)).envFile).toBe(example);
    expect((await planStart(["--env-file", "mine.env"], {}, root)).envFile).toBeUndefined();
    await writeFile(path.join(root, ".dev.vars"), "ORIGIN_URL=http://127.0.0.1:9000\n");
    try {
      const plan = await planStart([], {}, root);
      expect(plan.envFile).toBeUndefined();
      expect(plan.wranglerArgs).not.toContain("--env-file");
    } finally {
      await rm(path.join(root, ".dev.vars"));
    }
  });

  it("says at start-up that the cache is off when ACCESS=origin has no SIGNING_KEY", async () => {
    const plan = await planStart([], {}, root);
    expect(cacheOffNote(localSettings(plan, root))).toMatch(/cache is off.*SIGNING_KEY/);
    const signed = await planStart(["--var", `SIGNING_KEY:${"k".repeat(32)}`], {}, root);
    expect(cacheOffNote(localSettings(signed, root))).toBeUndefined();
    const publicRepos = await planStart(["--var", "ACCESS:public"], {}, root);
    expect(cacheOffNote(localSettings(publicRepos, root))).toBeUndefined();
    await writeFile(path.join(root, ".dev.vars"), `# secrets\nSIGNING_KEY="${"s".repeat(32)}"\n`);
    try {
      expect(cacheOffNote(localSettings(await planStart([], {}, root), root))).toBeUndefined();
    } finally {
      await rm(path.join(root, ".dev.vars"));
    }
  });
});

/** Sockets open in wrangler's Node process of the edge started as process group `group`. */
function wranglerSockets(group: number): number {
  for (const entry of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const pgrp = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      if (pgrp !== group || !readFileSync(`/proc/${entry}/cmdline`, "utf8").includes("wrangler-dist/cli.js")) continue;
      return readdirSync(`/proc/${entry}/fd`).filter((fd) => {
        try {
          return readlinkSync(`/proc/${entry}/fd/${fd}`).startsWith("socket:");
        } catch {
          return false;
        }
      }).length;
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no wrangler process in process group ${group}`);
}

describe("npm start and a large pass-through", () => {
  // With wrangler's DevTools Network events on, every few KiB of a subrequest body became an
  // event handed to wrangler's Node process over a new loopback connection, left in CLOSE-WAIT:
  // 24 MB made hundreds of sockets (a 155 MB clone, 40 000, until the process ran out of files).
  const BODY_BYTES = 24 * 1024 * 1024;
  let origin: http.Server | undefined;
  let edge: Edge | undefined;

  beforeAll(async () => {
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    origin = http.createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(BODY_BYTES) });
      for (let sent = 0; sent < BODY_BYTES; sent += chunk.length) res.write(chunk);
      res.end();
    });
    await new Promise<void>((resolve) => origin!.listen(0, "127.0.0.1", resolve));
    edge = await startEdge(`http://127.0.0.1:${(origin.address() as { port: number }).port}`);
  }, HG_TIMEOUT);

  afterAll(async () => {
    await edge?.stop();
    origin?.closeAllConnections();
    await new Promise((resolve) => origin?.close(resolve));
  });

  it("leaves wrangler with a handful of sockets, not one per few KiB", async () => {
    const response = await fetch(`${edge!.url}/big`);
    expect(response.status).toBe(200);
    expect((await response.arrayBuffer()).byteLength).toBe(BODY_BYTES);
    expect(wranglerSockets(edge!.processGroup)).toBeLessThan(150);
  }, HG_TIMEOUT);
});

describe("npm run deploy", () => {
  const toml = readFileSync(path.join(projectRoot, "wrangler.toml"), "utf8");

  it("refuses a deploy whose Worker would have no ORIGIN_URL, naming it and the fixes", () => {
    expect(missingOriginUrl(toml, [])).toMatch(/ORIGIN_URL is not set.*wrangler\.toml \[vars\].*--var ORIGIN_URL:.*keep_vars/);
    expect(missingOriginUrl(`${toml}\n# ORIGIN_URL = "https://commented.out/"\n`, [])).toBeDefined();
  });

  it("lets it through with ORIGIN_URL in wrangler.toml or on the command line, or keep_vars", () => {
    expect(missingOriginUrl(toml.replace("[vars]", '[vars]\nORIGIN_URL = "https://hg.example.org/"'), [])).toBeUndefined();
    expect(missingOriginUrl(toml, ["--var", "ORIGIN_URL:https://hg.example.org/"])).toBeUndefined();
    expect(missingOriginUrl(`keep_vars = true\n${toml}`, [])).toBeUndefined();
  });
});
