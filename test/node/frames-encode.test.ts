/**
 * `frames encode`: the framed body of one v2 command request, for `curl --data-binary @-`. Its
 * frames are byte for byte what a stock 5.x client sends (Mercurial's own test of the v2 HTTP API,
 * tests/test-http-api-httpv2.t, shows these bytes for `heads`); the arguments it reads as JSON come
 * out as the CBOR values hgedge's parser reads; and a stock 5.6.1 origin answers the body the way
 * README's curl recipe says.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { PassThrough, Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { runFramesCli } from "../../scripts/frames.ts";
import { bytes, cborMap, encode } from "../../src/protocol/cbor.ts";
import { fromHex } from "../../src/protocol/hex.ts";
import { parseRequestBody } from "../../src/protocol/requests.ts";
import { hg56Path, makeRepo, projectRoot, runHgOk, serveRepo, skipUnlessAvailable } from "../../harness/mercurial.ts";

const FRAMING = "application/mercurial-exp-framing-0006";

async function run(args: string[], tty = false) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  if (tty) Object.assign(stdout, { isTTY: true });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on("data", (d: Buffer) => out.push(d));
  stderr.on("data", (d: Buffer) => err.push(d));
  const code = await runFramesCli(args, { stdin: Readable.from([]), stdout, stderr });
  return { code, body: Buffer.concat(out), stderr: Buffer.concat(err).toString() };
}

const hexBytes = (hex: string) => Buffer.from(hex.replace(/\s+/g, ""), "hex");

describe("frames encode", () => {
  it("frames `heads` as a stock client does: one command-request frame, request 1, stream 1", async () => {
    const { code, body } = await run(["encode", "heads"]);
    expect(code).toBe(0);
    // length 12, request 1, stream 1, stream-begin, command-request/new; {name: heads}
    expect(body).toEqual(Buffer.concat([hexBytes("0c0000 0100 01 01 11"), Buffer.from("\xa1Dname\x45heads", "latin1")]));
  });

  it("puts the sender-settings frame first with --encodings, as the client's request in Mercurial's test", async () => {
    const { code, body } = await run(["encode", "--encodings", "identity", "heads"]);
    expect(code).toBe(0);
    const settings = Buffer.concat([hexBytes("1c0000 0100 01 01 82"), Buffer.from(encode(cborMap({ contentencodings: [bytes("identity")] })))]);
    const command = Buffer.concat([hexBytes("0c0000 0100 01 00 11"), Buffer.from(encode(cborMap({ name: bytes("heads") })))]);
    expect(body).toEqual(Buffer.concat([settings, command]));
  });

  it("turns JSON arguments into Mercurial's CBOR: byte strings, hex nodes, sets, booleans", async () => {
    const node = "992f4779029a3df8d0666d00bb924f69634e2641";
    const args = JSON.stringify({ tree: "", nodes: [{ hex: node }], fields: { set: ["parents", "revision"] }, haveparents: true });
    const { code, body } = await run(["encode", "--redirect", "hgedge", "manifestdata", args]);
    expect(code).toBe(0);
    const [command] = parseRequestBody(new Uint8Array(body)).commands;
    expect(command?.name).toBe("manifestdata");
    expect(command?.args).toEqual(
      cborMap({ tree: bytes(""), nodes: [fromHex(node)], fields: new Set([bytes("parents"), bytes("revision")]), haveparents: true }),
    );
    expect(command?.redirect).toEqual(cborMap({ targets: [bytes("hgedge")], hashes: [bytes("sha256"), bytes("sha1")] }));
  });

  it("refuses what it cannot encode, and a terminal as its output", async () => {
    for (const args of [["encode"], ["encode", "heads", "{not json"], ["encode", "heads", "[1]"], ["encode", "known", '{"nodes": [{"hex": "abc"}]}'], ["encode", "heads", '{"x": 1.5}'], ["encode", "--redirect"], ["encode", "--bogus", "heads"], ["encode", "a", "{}", "b"]]) {
      const { code, stderr, body } = await run(args);
      expect(code, args.join(" ")).toBe(2);
      expect(stderr).toContain("usage:");
      expect(body.length).toBe(0);
    }
    const { code, stderr } = await run(["encode", "heads"], true);
    expect(code).toBe(2);
    expect(stderr).toContain("the body is binary");
  });
});

const hg56 = skipUnlessAvailable(hg56Path(), "Mercurial 5.6.1 (.tools/bin/hg-5.6.1)");

describe.skipIf(hg56.skip)(`frames encode against a stock 5.6.1 origin${hg56.skip ? ` (skipped: ${hg56.reason})` : ""}`, () => {
  it("README's recipe: `npm run -s frames -- encode heads` posted to ro/heads gets the origin's heads", async () => {
    const HG56 = hg56Path() as string;
    const work = await mkdtemp(path.join(os.tmpdir(), "hgedge-frames-encode-"));
    const origin = await (async () => {
      await makeRepo(path.join(work, "repo"), HG56);
      return serveRepo({ hgPath: HG56, repoDir: path.join(work, "repo"), v2: true });
    })().catch(async (error) => {
      await rm(work, { recursive: true, force: true });
      throw error;
    });
    try {
      const encoded = spawnSync("npm", ["run", "-s", "frames", "--", "encode", "heads"], { cwd: projectRoot, timeout: 60_000 });
      expect(encoded.status, encoded.stderr.toString()).toBe(0);
      const response = await fetch(`${origin.url}/api/exp-http-v2-0003/ro/heads`, {
        method: "POST",
        headers: { accept: FRAMING, "content-type": FRAMING },
        body: new Uint8Array(encoded.stdout),
      });
      expect(response.headers.get("content-type")).toBe(FRAMING);
      const decoded = spawnSync("npm", ["run", "-s", "frames", "--", "decode", "--payloads", "-"], {
        cwd: projectRoot,
        input: Buffer.from(await response.arrayBuffer()),
        encoding: "utf8",
        timeout: 60_000,
      });
      expect(decoded.status, decoded.stderr).toBe(0);
      const last = JSON.parse(decoded.stdout.trim().split("\n").at(-1) as string) as { values: unknown[] };
      const heads = (await runHgOk(HG56, ["-R", path.join(work, "repo"), "heads", "-T", "{node}\n"])).trim().split("\n").sort();
      expect(last.values[0]).toEqual({ status: "6f6b" });
      expect(([...(last.values[1] as string[])]).sort()).toEqual(heads);
    } finally {
      await origin.stop();
      await rm(work, { recursive: true, force: true });
    }
  }, 120_000);
});
