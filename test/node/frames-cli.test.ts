/**
 * The `frames` CLI over every recorded body in test/fixtures: it must decode each framed
 * body into as many frames as Mercurial's own dump lists, and report malformed bodies with the
 * byte offset Mercurial's reader stopped at.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { runFramesCli } from "../../scripts/frames.ts";
import { assertFixturesPresent, fixturesDir, projectRoot } from "../../harness/paths.ts";

assertFixturesPresent();

interface Recorded {
  file: string;
  frames: number;
  parseErrorAt?: number;
  /** Offset of the frame whose payload Mercurial's cborutil refused. */
  cborErrorAt?: number;
}

/** Framed bodies with the frame count of their section in NNN-frames.txt. */
function framedBodies(): Recorded[] {
  const bodies: Recorded[] = [];
  for (const scenario of readdirSync(fixturesDir).sort()) {
    if (scenario.includes(".")) continue;
    for (const dump of readdirSync(join(fixturesDir, scenario)).filter((f) => f.endsWith("-frames.txt"))) {
      const seq = dump.slice(0, 3);
      const text = readFileSync(join(fixturesDir, scenario, dump), "utf8");
      for (const [, label, count, summary] of text.matchAll(/== (request|response) frames[^\n]*\n[\s\S]*?\n-- (\d+) frame\(s\): ([^\n]*)/g)) {
        const parseError = /parse-error@(\d+)/.exec(summary ?? "");
        const section = text.slice(0, text.indexOf(summary ?? "")).split(`== ${label} frames`).at(-1) ?? "";
        const cborError = /\nframe \d+ @(\d+):[^\n]*\n[^\n]*\n  !! CBOR decode error/.exec(section);
        bodies.push({
          file: join(scenario, `${seq}-${label}.body`),
          frames: Number(count),
          ...(parseError ? { parseErrorAt: Number(parseError[1]) } : {}),
          ...(cborError ? { cborErrorAt: Number(cborError[1]) } : {}),
        });
      }
    }
  }
  return bodies;
}

async function run(args: string[], stdin: Readable = Readable.from([])) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on("data", (d: Buffer) => out.push(d));
  stderr.on("data", (d: Buffer) => err.push(d));
  const code = await runFramesCli(args, { stdin, stdout, stderr });
  return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

const bodies = framedBodies();

describe("frames decode", () => {
  it("finds the framed bodies of the fixtures", () => {
    expect(bodies.length).toBeGreaterThan(150);
  });

  it.each(bodies)("$file", async ({ file, frames, parseErrorAt, cborErrorAt }) => {
    const result = await run(["decode", "--payloads", join(fixturesDir, file)]);
    const lines = result.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const frameLines = lines.filter((l) => "type" in l);
    expect(frameLines).toHaveLength(frames);
    if (cborErrorAt !== undefined) {
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`payload of the frame at byte ${cborErrorAt}`);
    } else if (parseErrorAt === undefined) {
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      for (const line of frameLines) expect(Object.keys(line)).toEqual(expect.arrayContaining(["requestId", "streamId", "streamFlags", "type", "flags", "length"]));
    } else {
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`at byte ${parseErrorAt}`);
    }
  });

  it("prints the reassembled response after the frames", async () => {
    const { stdout, code } = await run(["decode", "--payloads", join(fixturesDir, "cmd-heads/002-response.body")]);
    expect(code).toBe(0);
    const last = JSON.parse(stdout.trim().split("\n").at(-1) as string) as { response: number; complete: boolean; values: unknown[] };
    expect(last.response).toBe(1);
    expect(last.complete).toBe(true);
    expect(last.values[0]).toEqual({ status: "6f6b" });
    expect(Array.isArray(last.values[1])).toBe(true);
  });

  it("reads standard input with -", async () => {
    const body = readFileSync(join(fixturesDir, "cmd-lookup/002-response.body"));
    const { stdout, code } = await run(["decode", "-"], Readable.from([body.subarray(0, 5), body.subarray(5)]));
    expect(code).toBe(0);
    expect(stdout.split("\n").filter(Boolean).map((l) => (JSON.parse(l) as { type: string }).type)).toContain("command-response");
  });

  it("refuses misuse with the usage line", async () => {
    for (const args of [[], ["bogus", "x"], ["decode"], ["decode", "--bogus", "x"]]) {
      const { code, stderr } = await run(args);
      expect(code).toBe(2);
      expect(stderr).toContain("usage:");
    }
  });

  it("runs as `npm run -s frames` and exits non-zero on a truncated body", () => {
    const truncated = Buffer.from([0x0b, 0x00, 0x00, 0x01, 0x00, 0x02, 0x01, 0x31, 0xa1]);
    const result = spawnSync("npm", ["run", "-s", "frames", "--", "decode", "-"], {
      cwd: projectRoot,
      input: truncated,
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/malformed input: .*at byte 0/);
  });
});
