/**
 * The warmer's parts that need no network: its arguments, the state file that makes re-runs
 * resume, the progress estimates (what "total" means before every object's size is known) and
 * the exit status.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bytes, cborMap, encodeSequence } from "../../src/protocol/cbor.ts";
import { filesdataArgs, manifestdataArgs } from "../../src/protocol/clone.ts";
import { exitStatus, joinRepoUrl, parseArgs } from "../../scripts/warm.ts";
import { CannotWarm } from "../../scripts/warm/edge.ts";
import { ItemProgress, Progress, formatBytes, formatDuration, progressBar, progressLine } from "../../scripts/warm/progress.ts";
import type { WarmSummary } from "../../scripts/warm/run.ts";
import { WarmState, requestIdentity } from "../../scripts/warm/state.ts";

const node = (n: number) => new Uint8Array(20).fill(n);

describe("arguments", () => {
  it("joins edge and repository path the way a client's clone URL reads", () => {
    expect(joinRepoUrl("http://127.0.0.1:8788", "/")).toBe("http://127.0.0.1:8788/");
    expect(joinRepoUrl("https://hg.example.org/", "/projects/foo/")).toBe("https://hg.example.org/projects/foo");
    expect(joinRepoUrl("https://hg.example.org/base", "foo")).toBe("https://hg.example.org/base/foo");
    expect(joinRepoUrl("ftp://x", "/")).toEqual({ error: "the edge URL must be http or https: ftp://x" });
  });

  it("reads options and refuses bad ones with a reason", () => {
    const parsed = parseArgs(["http://e", "r", "--header", "Authorization: Basic eDp5", "--concurrency", "3", "--max-requests", "5", "--state", "/tmp/s.json"]);
    if (typeof parsed === "string") throw new Error(parsed);
    expect(parsed.options).toMatchObject({ repoUrl: "http://e/r", headers: [["Authorization", "Basic eDp5"]], concurrency: 3, maxRequests: 5, statePath: "/tmp/s.json" });
    expect(parseArgs(["http://e", "r", "--header", "no colon"])).toBe("--header needs 'Name: value', not no colon");
    expect(parseArgs(["http://e", "r", "--concurrency", "0"])).toBe("--concurrency needs a whole number ≥ 1, not 0");
    expect(parseArgs(["http://e", "r", "--frobnicate"])).toBe("unknown option --frobnicate");
    expect(parseArgs(["http://e"])).toBe("expected <edge url> and <repo path>");
  });
});

describe("state file", () => {
  let dir = "";
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "hgedge-warm-state-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("names a request by command and exact arguments", () => {
    const a = requestIdentity("filesdata", filesdataArgs([node(1), node(2)]));
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(requestIdentity("filesdata", filesdataArgs([node(1), node(2)]))).toBe(a);
    expect(requestIdentity("filesdata", filesdataArgs([node(2), node(1)]))).not.toBe(a);
    expect(requestIdentity("manifestdata", manifestdataArgs([node(1), node(2)]))).not.toBe(a);
  });

  it("remembers finished objects across runs, for one repository URL only", async () => {
    const file = path.join(dir, "nested", "state.json");
    const first = WarmState.load(file, "http://e/r", false);
    first.record("abc", { command: "filesdata", batch: 0, bytes: 10, cache: "MISS", at: "2026-01-01T00:00:00Z" });
    expect(WarmState.load(file, "http://e/r", false).get("abc")).toMatchObject({ bytes: 10 });
    expect(WarmState.load(file, "http://e/r", true).get("abc")).toBeUndefined();
    expect(() => WarmState.load(file, "http://e/other", false)).toThrow(CannotWarm);
    expect(() => WarmState.load(file, "http://e/other", false)).toThrow(/belongs to http:\/\/e\/r/);
    await writeFile(file, "{ torn");
    expect(() => WarmState.load(file, "http://e/r", false)).toThrow(/not JSON: remove it, or pass --fresh/);
  });

  it("replaces the file whole (no temporary left behind)", async () => {
    const file = path.join(dir, "whole.json");
    const state = WarmState.load(file, "http://e/r", false);
    for (let i = 0; i < 3; i++) state.record(`id${i}`, { command: "manifestdata", batch: i, bytes: i, cache: "MISS", at: "t" });
    expect(Object.keys(JSON.parse(await readFile(file, "utf8")).done)).toEqual(["id0", "id1", "id2"]);
    expect((await readdir(dir)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });
});

describe("progress", () => {
  it("knows the object count at once, and the byte total only once each command has a size", () => {
    const progress = new Progress(["manifestdata", "filesdata", "filesdata", "filesdata"], 0);
    expect(progress.snapshot(1000)).toMatchObject({ objectsDone: 0, objectsTotal: 4, bytesTotal: undefined, eta: undefined });
    progress.start("m", "manifestdata");
    progress.finish("m", "miss", 1000);
    // filesdata: nothing known yet.
    expect(progress.snapshot(1000).bytesTotal).toBeUndefined();
    progress.start("f1", "filesdata");
    progress.update("f1", 3000, 0.5); // half its items read: about 6000 bytes
    expect(progress.snapshot(2000)).toMatchObject({ objectsDone: 1, bytesDone: 4000, bytesTotal: 1000 + 6000 + 2 * 6000 });
    progress.finish("f1", "hit", 6000);
    const s = progress.snapshot(2000);
    expect(s).toMatchObject({ objectsDone: 2, hits: 1, misses: 1, bytesDone: 7000, bytesTotal: 19000, rate: 3500 });
    expect(s.eta).toBeCloseTo(12000 / 3500);
  });

  it("counts objects finished by an earlier run as done, without speeding up the rate", () => {
    const progress = new Progress(["filesdata", "filesdata"], 0);
    progress.resumed("filesdata", 5000);
    const s = progress.snapshot(1000);
    expect(s).toMatchObject({ objectsDone: 1, resumed: 1, bytesDone: 5000, bytesTotal: 10000, rate: 0, eta: undefined });
    expect(progressLine(s)).toBe("warm: 1/2 objects, 4.9 KiB of ~9.8 KiB, 0 B/s, ETA ?, 0 hit, 0 miss, 1 done earlier");
  });

  it("puts an object stopped by an interrupt back among the objects to do", () => {
    const progress = new Progress(["filesdata", "filesdata"], 0);
    progress.start("a", "filesdata");
    progress.update("a", 700, 0.5);
    progress.finish("a", "cancelled", 700);
    expect(progress.snapshot(1000)).toMatchObject({ objectsDone: 0, objectsTotal: 2, failed: 0, bytesDone: 0, rate: 0 });
  });

  it("reads the share of an answer's items from its header and the values after it", () => {
    const revision = () => [cborMap({ node: node(1), fieldsfollowing: [[bytes("revision"), 3]] }), bytes("abc")];
    const body = encodeSequence([
      cborMap({ totalitems: 4, totalpaths: 2 }),
      cborMap({ path: bytes("a"), totalitems: 2 }),
      ...revision(),
      ...revision(),
      cborMap({ path: bytes("b"), totalitems: 2 }),
      ...revision(),
      ...revision(),
    ]);
    const items = new ItemProgress("filesdata");
    expect(items.fraction()).toBeUndefined();
    const half = body.length / 2;
    for (let i = 0; i < half; i++) items.push(body.subarray(i, i + 1)); // byte by byte
    const middle = items.fraction() as number;
    expect(middle).toBeGreaterThan(0.2);
    expect(middle).toBeLessThan(0.8);
    items.push(body.subarray(half));
    expect(items.fraction()).toBe(1);
  });

  it("renders sizes, durations and a bar that fits the terminal", () => {
    expect([formatBytes(512), formatBytes(1536), formatBytes(5 * 1024 ** 3)]).toEqual(["512 B", "1.5 KiB", "5.0 GiB"]);
    expect([formatDuration(7.4), formatDuration(92), formatDuration(7500)]).toEqual(["7s", "1m32s", "2h05m"]);
    const progress = new Progress(["filesdata", "filesdata"], 0);
    progress.start("a", "filesdata");
    progress.finish("a", "miss", 2048);
    const bar = progressBar(progress.snapshot(1000), 100);
    expect(bar.length).toBeLessThan(100);
    expect(bar).toMatch(/^\[#+-+\] 1\/2 objects · 2\.0 KiB of ~4\.0 KiB · 2\.0 KiB\/s · ETA 1s · 0 hit, 1 miss$/);
  });
});

describe("exit status", () => {
  const base = { failed: [], notStored: 0, remaining: 0 } as unknown as WarmSummary;
  it("is 0 only when every object is warm", () => {
    expect(exitStatus(base)).toBe(0);
    expect(exitStatus({ ...base, notStored: 1, remaining: 1 })).toBe(1);
    expect(exitStatus({ ...base, failed: [{ command: "filesdata", batch: 0, error: "x" }] })).toBe(1);
    expect(exitStatus({ ...base, verified: { checked: 3, notCached: 1 } })).toBe(1);
    expect(exitStatus({ ...base, stopped: "max-requests", remaining: 4 })).toBe(3);
    expect(exitStatus({ ...base, stopped: "interrupted", remaining: 4 })).toBe(130);
  });
});
