// The real-Mercurial test support itself: the installed tools, a v2 clone captured by the
// recording proxy (5.6.1 client and server), and a v1 clone + push through it (6.x).
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  cloneArgs,
  hg56Path,
  hg6Path,
  makeRepo,
  projectRoot,
  runHg,
  runHgOk,
  serveRepo,
  skipUnlessAvailable,
  startRecordingProxy,
  type Exchange,
  type Served,
} from "../../harness/mercurial.ts";
import { decodeOne, mapGet, type CborMap, type CborValue } from "../../src/protocol/cbor.ts";
import { parseRequestBody } from "../../src/protocol/requests.ts";
import { collectResponses } from "../../src/protocol/responses.ts";

const V2_API = "/api/exp-http-v2-0003/ro/";
const FRAMING = "application/mercurial-exp-framing-0006";
const HG_TIMEOUT = 60_000;
/** A hook or test runs several hg commands: on a busy 2-core machine they add up past one command's limit. */
const TEST_TIMEOUT = 180_000;

const HG56 = hg56Path() ?? "";
const HG6 = hg6Path() ?? "";
const hg56 = skipUnlessAvailable(hg56Path(), "Mercurial 5.6.1 (.tools/bin/hg-5.6.1)");
const hg6 = skipUnlessAvailable(hg6Path(), "Mercurial 6.x (.tools/bin/hg-6)");

/** A suite's title, carrying the reason when it is skipped (so the report says why). */
const title = (name: string, tool: { skip: boolean; reason: string }) =>
  tool.skip ? `${name} (skipped: ${tool.reason})` : name;

/** Runs `fn` with process.env.CI set to `value` (or unset), restoring it afterwards. */
function withCI<T>(value: string | undefined, fn: () => T): T {
  const saved = process.env.CI;
  if (value === undefined) delete process.env.CI;
  else process.env.CI = value;
  try {
    return fn();
  } finally {
    if (saved === undefined) delete process.env.CI;
    else process.env.CI = saved;
  }
}

describe("skipUnlessAvailable", () => {
  const fake = path.join(projectRoot, ".tools", "bin", "no-such-hg");

  it("skips a missing tool outside CI, saying how to install it", () => {
    const r = withCI(undefined, () => skipUnlessAvailable(fake, "fake hg"));
    expect(r.skip).toBe(true);
    expect(r.reason).toMatch(/fake hg is missing.*install-mercurial/);
  });

  it("fails (throws) for a missing tool under CI", () => {
    expect(() => withCI("true", () => skipUnlessAvailable(fake, "fake hg"))).toThrow(/install-mercurial/);
    expect(() => withCI("true", () => skipUnlessAvailable(undefined, "fake hg"))).toThrow(/fake hg/);
  });

  it("never skips a tool that is there", () => {
    expect(withCI("true", () => skipUnlessAvailable(process.execPath, "node"))).toEqual({ skip: false, reason: "" });
  });
});

describe.skipIf(hg56.skip || hg6.skip)(title("installed tools", hg56.skip ? hg56 : hg6), () => {
  it("report Mercurial 5.6.1 and 6.x", async () => {
    expect(await runHgOk(HG56, ["--version"])).toMatch(/\(version 5\.6\.1\)/);
    expect(await runHgOk(HG6, ["--version"])).toMatch(/\(version 6\.\d+/);
  });
});

/** The origin's and the clone's `hg log` must agree node for node. */
async function expectSameHistory(hgPath: string, origin: string, clone: string): Promise<void> {
  const log = (repo: string) => runHgOk(hgPath, ["-R", repo, "log", "-T", "{node}\n"]);
  expect(await log(clone)).toBe(await log(origin));
  await runHgOk(hgPath, ["-R", clone, "verify"]);
}

describe.skipIf(hg56.skip)(title("Mercurial 5.6.1, wire protocol v2", hg56), () => {
  let work = "";
  let origin = "";
  let server: Served | undefined;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), "hgedge-v2-"));
    origin = path.join(work, "origin");
    await makeRepo(origin, HG56);
    server = await serveRepo({ hgPath: HG56, repoDir: origin, v2: true });
  }, TEST_TIMEOUT);

  afterAll(async () => {
    await server?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** `hg clone -U` through a fresh recording proxy; resolves with what it recorded. */
  async function cloneThroughProxy(name: string, encoderOrder: string) {
    const proxy = await startRecordingProxy(server!.url);
    const dest = path.join(work, name);
    try {
      const args = ["clone", "-U", "--verbose", ...cloneArgs({ v2: true, encoderOrder }), proxy.url, dest];
      const result = await runHg(HG56, args, { timeoutMs: HG_TIMEOUT });
      expect(result.code, `${result.stderr}\nserver: ${server!.errors()}`).toBe(0);
      return { dest, exchanges: [...proxy.exchanges] };
    } finally {
      await proxy.stop();
    }
  }

  const v2Commands = (exchanges: Exchange[]) =>
    exchanges.filter((e) => e.method === "POST" && e.path.startsWith(V2_API));

  it(
    "clones with identity encoding: CBOR handshake, then framed v2 commands",
    async () => {
      const { dest, exchanges } = await cloneThroughProxy("clone-identity", "identity");

      const handshake = exchanges.find((e) => e.method === "GET" && e.path === "/?cmd=capabilities");
      expect(handshake?.status).toBe(200);
      expect(handshake?.responseHeaders["content-type"]).toBe("application/mercurial-cbor");

      const commands = v2Commands(exchanges);
      for (const e of commands) {
        expect(e.status, e.path).toBe(200);
        expect(e.requestHeaders["content-type"], e.path).toBe(FRAMING);
        expect(e.responseHeaders["content-type"], e.path).toBe(FRAMING);
      }
      const names = commands.map((e) => e.path.slice(V2_API.length));
      expect(names).toEqual(expect.arrayContaining(["manifestdata", "filesdata"]));
      // The 100 KiB blob travels in filesdata, unencoded.
      const filesdata = commands.find((e) => e.path.endsWith("/filesdata"))!;
      expect(filesdata.responseBody.length).toBeGreaterThan(100 * 1024);

      await expectSameHistory(HG56, origin, dest);
    },
    TEST_TIMEOUT,
  );

  it(
    "clones with zlib encoding",
    async () => {
      const { dest, exchanges } = await cloneThroughProxy("clone-zlib", "zlib");
      const manifestdata = v2Commands(exchanges).find((e) => e.path.endsWith("/manifestdata"));
      expect(manifestdata?.responseHeaders["content-type"]).toBe(FRAMING);
      // The stream-settings frame names the encoding the server picked.
      expect(manifestdata?.responseBody.includes("zlib")).toBe(true);
      await expectSameHistory(HG56, origin, dest);
    },
    TEST_TIMEOUT,
  );
});

/**
 * Every v2 exchange of a real clone, decoded with our codec: the handshake's CBOR, each request
 * body as Mercurial's server reads it, each response as its client reads it.
 */
function decodeWithOurCodec(exchanges: Exchange[]): { commands: string[]; objects: number } {
  const handshake = exchanges.find((e) => e.path === "/?cmd=capabilities")!;
  const descriptor = decodeOne(new Uint8Array(handshake.responseBody)) as CborMap;
  const apis = mapGet(descriptor, "apis") as CborMap;
  const commandsAdvertised = mapGet(mapGet(apis, "exp-http-v2-0003") as CborMap, "commands") as CborMap;
  expect(mapGet(commandsAdvertised, "filesdata")).toBeInstanceOf(Map);

  const commands: string[] = [];
  let objects = 0;
  for (const e of exchanges.filter((x) => x.method === "POST" && x.path.startsWith(V2_API))) {
    const request = parseRequestBody(new Uint8Array(e.requestBody));
    commands.push(...request.commands.map((c) => c.name));
    const responses = collectResponses(new Uint8Array(e.responseBody));
    expect([...responses.keys()].sort()).toEqual(request.commands.map((c) => c.requestId).sort());
    for (const [id, response] of responses) {
      expect(response.status, `${e.path} request ${id}`).toBe("ok");
      expect(response.ended).toBe(true);
      objects += response.objects.length;
      checkTotals(response.objects);
    }
  }
  return { commands, objects };
}

/** manifestdata/filesdata announce `totalitems`: the items that follow must match. */
function checkTotals(objects: CborValue[]): void {
  const [header] = objects;
  if (!(header instanceof Map) || mapGet(header, "totalpaths") !== undefined) return;
  const total = mapGet(header, "totalitems");
  if (typeof total !== "number") return;
  const items = objects.filter((o) => o instanceof Map && mapGet(o, "node") !== undefined);
  expect(items).toHaveLength(total);
}

describe.skipIf(hg56.skip)(title("our codec reads a real Mercurial 5.6.1 v2 clone", hg56), () => {
  let work = "";
  let server: Served | undefined;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), "hgedge-codec-"));
    await makeRepo(path.join(work, "origin"), HG56);
    server = await serveRepo({ hgPath: HG56, repoDir: path.join(work, "origin"), v2: true });
  }, TEST_TIMEOUT);

  afterAll(async () => {
    await server?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  // "default" lets the client offer its own order: zstd-8mb first (Debian's 5.6.1 has zstd).
  it.each(["identity", "zlib", "default"])(
    "decodes every exchange of a clone with %s encoding",
    async (order) => {
      const proxy = await startRecordingProxy(server!.url);
      try {
        const encoder = order === "default" ? {} : { encoderOrder: order };
        const args = ["clone", "-U", ...cloneArgs({ v2: true, ...encoder }), proxy.url, path.join(work, `clone-${order}`)];
        await runHgOk(HG56, args, { timeoutMs: HG_TIMEOUT });
        const { commands, objects } = decodeWithOurCodec(proxy.exchanges);
        expect(commands).toEqual(expect.arrayContaining(["heads", "known", "changesetdata", "manifestdata", "filesdata"]));
        expect(objects).toBeGreaterThan(20);
        const settings = proxy.exchanges.find((e) => e.path.endsWith("/filesdata"))!.responseBody;
        const expected = order === "default" ? "zstd-8mb" : order;
        expect(settings.subarray(0, 40).includes(expected)).toBe(true);
      } finally {
        await proxy.stop();
      }
    },
    TEST_TIMEOUT,
  );
});

describe.skipIf(hg6.skip)(title("Mercurial 6.x, wire protocol v1", hg6), () => {
  let work = "";

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), "hgedge-v1-"));
  });

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it(
    "clones and pushes back through the recording proxy",
    async () => {
      const origin = path.join(work, "origin");
      const clone = path.join(work, "clone");
      await makeRepo(origin, HG6);
      const server = await serveRepo({ hgPath: HG6, repoDir: origin, v2: false });
      const proxy = await startRecordingProxy(server.url);
      try {
        await runHgOk(HG6, ["clone", proxy.url, clone], { timeoutMs: HG_TIMEOUT });
        await expectSameHistory(HG6, origin, clone);

        await writeFile(path.join(clone, "pushed.txt"), "pushed through the proxy\n");
        await runHgOk(HG6, ["-R", clone, "commit", "--config", "ui.username=test", "-d", "0 0", "-A", "-m", "push me"]);
        const node = (await runHgOk(HG6, ["-R", clone, "log", "-r", ".", "-T", "{node}"])).trim();
        await runHgOk(HG6, ["-R", clone, "push", "-r", "."], { timeoutMs: HG_TIMEOUT });

        const unbundle = proxy.exchanges.find((e) => e.method === "POST" && e.path === "/?cmd=unbundle");
        expect(unbundle?.status).toBe(200);
        expect(unbundle?.requestBody.length).toBeGreaterThan(0);
        expect(await runHgOk(HG6, ["-R", origin, "log", "-r", node, "-T", "{desc}"])).toBe("push me");
      } finally {
        await proxy.stop();
        await server.stop();
      }
    },
    TEST_TIMEOUT,
  );
});
