/**
 * Clone bundles through the app with the local R2 and a scripted v1 origin, made inline (no
 * BUNDLER binding; test/edge/bundler.test.ts covers the Durable Object): generation by the admin
 * API in every format (stored whole, or not at all), the stream bundle taken from the origin's
 * stream clone or skipped with the reason, the manifest and capabilities 6.x and 7.x clients
 * see, the content route serving the bundles, replaced bundles kept for their grace period,
 * failures that keep the previous bundles, and the cron trigger's freshness check.
 */
import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { decompress as zstdDecompress } from "fzstd";
import { deflate, inflate } from "pako";
import { describe, expect, it } from "vitest";
import type { Env } from "../../src/config.ts";
import { bundleDirectory, bundleRecordName, expireRetiredBundles, type BundleRecord, type StoredBundle } from "../../src/cache/bundles.ts";
import { generateBundles } from "../../src/cache/bundlegen.ts";
import { createApp } from "../../src/edge/app.ts";
import { createScheduledHandler } from "../../src/edge/scheduled.ts";
import type { OriginFetch } from "../../src/origin/client.ts";
import { parseManifest } from "../../src/protocol/clonebundles.ts";
import { parseConfig } from "../../src/config.ts";
import { bundle2, concat } from "../support/bundle2.ts";
import { stream2Bundle } from "../support/stream2.ts";

const EDGE = "http://edge.test";
const TOKEN = "t".repeat(40);
const SIGNING_KEY = "k".repeat(40);
const HG01 = "application/mercurial-0.1";
const HEAD_A = "a".repeat(40);
const HEAD_B = "b".repeat(40);
const ORIGIN_MANIFEST = "https://mirror.example/full.hg BUNDLESPEC=gzip-v2\n";
const CAPABILITIES = "batch branchmap bundle2=HG20%0Achangegroup%3D01%2C02 getbundle httpheader=1024 known lookup unbundle=HG10GZ,HG10BZ,HG10UN";
/** A 7.x origin that allows stream clones (abridged). */
const STREAM_CAPABILITIES = "batch branchmap bundle2=HG20%0Achangegroup%3D01%2C02%0Astream%3Dv2 getbundle httpheader=1024 known lookup streamreqs=generaldelta,revlogv1,sparserevlog unbundle=HG10GZ,HG10BZ,HG10UN";
const STREAM_FILES = [
  { name: "00changelog.i", data: new Uint8Array(5000).fill(7) },
  { name: "data/a.i", data: new Uint8Array(300).fill(8) },
];
const STREAM_SPEC = "none-v2;stream=v2;requirements%3Dgeneraldelta%2Crevlogv1%2Csparserevlog";
let repoCounter = 0;

/** A repository path of its own for each test: the local R2 is shared by the whole file. */
const freshRepo = () => `/repo-${Date.now()}-${repoCounter++}`;

type Getbundle = (args: URLSearchParams) => Response;

/**
 * A v1 origin: capabilities, heads, known, getbundle (as scripted: the changegroup, or with
 * `stream=1` the stream clone), clonebundles; every call recorded.
 */
function scriptedOrigin(options: { heads?: string[]; getbundle?: Getbundle; stream?: Getbundle; manifestStatus?: number; known?: string } = {}) {
  const calls: { url: URL; headers: Headers }[] = [];
  const state = {
    heads: options.heads ?? [HEAD_A],
    getbundle: options.getbundle ?? zlibBundle(bundle2({ changesets: 5 })),
    stream: options.stream,
    known: options.known,
  };
  const originFetch: OriginFetch = async (url, init) => {
    const parsed = new URL(url);
    const headers = new Headers(init.headers);
    calls.push({ url: parsed, headers });
    const text = (body: string, status = 200) => new Response(body, { status, headers: { "content-type": HG01 } });
    switch (parsed.searchParams.get("cmd")) {
      case "capabilities":
        return text(state.stream ? STREAM_CAPABILITIES : CAPABILITIES);
      case "heads":
        return text(`${state.heads.join(" ")}\n`);
      case "known":
        return text(state.known ?? "1".repeat(argsOf(headers).get("nodes")!.split(" ").length));
      case "getbundle": {
        const args = argsOf(headers);
        if (args.get("stream") === "1") return state.stream ? state.stream(args) : new Response("no stream", { status: 500 });
        return state.getbundle(args);
      }
      case "clonebundles":
        return options.manifestStatus && options.manifestStatus !== 200 ? new Response("auth required", { status: options.manifestStatus }) : text(ORIGIN_MANIFEST);
      default:
        return text("origin page");
    }
  };
  const commands = () => calls.map((c) => c.url.searchParams.get("cmd"));
  return { originFetch, calls, state, commands };
}

/** The stream clone as a 7.x origin sends it: uncompressed, it prefers that for stream clones. */
function plainAnswer(bytes: Uint8Array): Getbundle {
  return () => new Response(concat([new Uint8Array([4]), new TextEncoder().encode("none"), bytes]), { headers: { "content-type": "application/mercurial-0.2" } });
}

function argsOf(headers: Headers): URLSearchParams {
  let joined = "";
  for (let n = 1; headers.has(`x-hgarg-${n}`); n++) joined += headers.get(`x-hgarg-${n}`);
  return new URLSearchParams(joined);
}

function zlibBundle(bytes: Uint8Array): Getbundle {
  return () => new Response(deflate(bytes), { headers: { "content-type": HG01 } });
}

/** A body that sends `bytes` and then fails, as a connection cut mid-stream does. */
function cutBundle(bytes: Uint8Array): Getbundle {
  return () => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(concat([new Uint8Array([4]), new TextEncoder().encode("none"), bytes]));
        controller.error(new Error("connection reset"));
      },
    });
    return new Response(body, { headers: { "content-type": "application/mercurial-0.2" } });
  };
}

function edgeApp(originFetch: OriginFetch, vars: Partial<Record<keyof Env, string>> = {}) {
  const app = createApp({ originFetch });
  const ctx = createExecutionContext();
  const bindings = { ORIGIN_URL: "http://origin.test", OBJECTS: env.OBJECTS, ACCESS: "public", ADMIN_TOKEN: TOKEN, ...vars } as Env;
  const fetchEdge = (path: string, init: RequestInit = {}) => app.fetch(new Request(`${EDGE}${path}`, init), bindings, ctx);
  const generate = async (repo: string) => {
    const response = await fetchEdge("/.hgedge/admin/bundles", { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ repo }) });
    return { status: response.status, body: (await response.json()) as AdminAnswer };
  };
  return { fetchEdge, generate, bindings };
}

interface AdminAnswer {
  bundles?: StoredBundle[];
  skipped?: Record<string, string>;
  changesets?: number;
  heads?: string[];
  error?: string;
  kept?: string[];
  removed?: string[];
  retired?: { name: string; retiredAt: string }[];
}

const NONE_ONLY = { BUNDLE_FORMATS: '["none-v2"]' };

async function record(repo: string): Promise<BundleRecord | undefined> {
  const object = await env.OBJECTS.get(bundleRecordName(repo));
  return object ? ((await object.json()) as BundleRecord) : undefined;
}

async function bundlesOf(repo: string): Promise<string[]> {
  const listed = await env.OBJECTS.list({ prefix: bundleDirectory(repo), delimiter: "/" });
  return listed.objects.map((o) => o.key).filter((k) => k.endsWith(".hg"));
}

const bodyOf = async (r: Response) => new Uint8Array(await r.arrayBuffer());
const sha256 = async (b: Uint8Array) => Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", b)), (x) => x.toString(16).padStart(2, "0")).join("");

describe("clone bundle generation", () => {
  it("stores the origin's whole bundle, decompressed, as none-v2, and records heads, size, hash and spec", async () => {
    const repo = freshRepo();
    const bytes = bundle2({ changesets: 12, deltaBytes: 2000 });
    const origin = scriptedOrigin({ heads: [HEAD_B, HEAD_A], getbundle: zlibBundle(bytes) });
    const { status, body } = await edgeApp(origin.originFetch, NONE_ONLY).generate(repo);
    expect(status).toBe(200);
    expect(body).toMatchObject({ heads: [HEAD_A, HEAD_B], changesets: 12, retired: [] });
    expect(body.bundles).toEqual([{ format: "none-v2", name: expect.stringMatching(/-none-v2\.hg$/), bundlespec: "none-v2", size: bytes.length, sha256: await sha256(bytes) }]);
    expect((await record(repo))?.bundles).toEqual(body.bundles);
    const stored = await env.OBJECTS.get(body.bundles![0]!.name);
    expect(await bodyOf(new Response(stored!.body))).toEqual(bytes);

    // What hgedge asked: getbundle of exactly the heads it saw, over nothing, bundle2 with phases.
    expect(origin.commands()).toEqual(["capabilities", "heads", "getbundle"]);
    const args = argsOf(origin.calls[2]!.headers);
    expect(args.get("heads")).toBe(`${HEAD_A} ${HEAD_B}`);
    expect(args.get("common")).toBe("0".repeat(40));
    expect(args.get("bundlecaps")).toBe("HG20,bundle2=HG20%0Achangegroup%3D02%0Aphases%3Dheads");
    expect(args.get("phases")).toBe("1");
    expect(origin.calls[2]!.headers.get("x-hgproto-1")).toBe("0.1 0.2 comp=zstd,zlib,none");
  });

  it("makes the stream bundle from the origin's stream clone and the zstd bundle from its changegroup, best first", async () => {
    const repo = freshRepo();
    const stream = stream2Bundle({ files: STREAM_FILES });
    const changegroup = bundle2({ changesets: 9, deltaBytes: 3000 });
    const origin = scriptedOrigin({ stream: plainAnswer(stream), getbundle: zlibBundle(changegroup) });
    const { status, body } = await edgeApp(origin.originFetch).generate(repo);
    expect(status).toBe(200);
    expect(body.bundles!.map((b) => [b.format, b.bundlespec])).toEqual([["stream-v2", STREAM_SPEC], ["zstd-v2", "zstd-v2"]]);
    expect(body.skipped).toBeUndefined();

    // The stream bundle is the origin's answer as it came.
    const [streamBundle, zstdBundle] = body.bundles!;
    expect(await bodyOf(new Response((await env.OBJECTS.get(streamBundle!.name))!.body))).toEqual(stream);
    expect(streamBundle!.size).toBe(stream.length);
    // The zstd bundle: Compression=ZS, then the changegroup's parts through zstd.
    const zstd = await bodyOf(new Response((await env.OBJECTS.get(zstdBundle!.name))!.body));
    expect(new TextDecoder().decode(zstd.subarray(0, 22))).toBe("HG20\0\0\0\x0eCompression=ZS");
    expect(zstdDecompress(zstd.subarray(22))).toEqual(changegroup.subarray(8));
    expect(zstd.length).toBeLessThan(changegroup.length / 4);

    // Asked as a 7.x client asks for a stream clone: bundle2 stream=v2, stream=1, no changegroup.
    expect(origin.commands()).toEqual(["capabilities", "heads", "getbundle", "getbundle"]);
    const args = argsOf(origin.calls[2]!.headers);
    expect(Object.fromEntries(args)).toEqual({ bundlecaps: "HG20,bundle2=HG20%0Astream%3Dv2", cg: "0", common: "0".repeat(40), heads: HEAD_A, stream: "1" });
  });

  it("writes gzip-v2 and none-v2 from the same changegroup when BUNDLE_FORMATS asks for them", async () => {
    const repo = freshRepo();
    const changegroup = bundle2({ changesets: 4, deltaBytes: 100 });
    const origin = scriptedOrigin({ getbundle: zlibBundle(changegroup) });
    const { body } = await edgeApp(origin.originFetch, { BUNDLE_FORMATS: '["gzip-v2", "none-v2"]' }).generate(repo);
    expect(body.bundles!.map((b) => b.format)).toEqual(["gzip-v2", "none-v2"]);
    const gzip = await bodyOf(new Response((await env.OBJECTS.get(body.bundles![0]!.name))!.body));
    expect(new TextDecoder().decode(gzip.subarray(0, 22))).toBe("HG20\0\0\0\x0eCompression=GZ");
    expect(inflate(gzip.subarray(22))).toEqual(changegroup.subarray(8));
    expect(origin.commands().filter((c) => c === "getbundle")).toHaveLength(1);
  });

  it.each([
    ["an origin that advertises no stream clone", undefined, /server.uncompressed=false/],
    ["an origin that answers the stream request with an error part", zlibBundle(bundle2({ changesets: 0, abortMessage: "stream data requested but server does not allow this feature" })), /refused its stream clone: .*does not allow/],
  ])("with %s, makes the other formats and says why the stream bundle is missing", async (_, stream, reason) => {
    const repo = freshRepo();
    const origin = scriptedOrigin(stream ? { stream } : {});
    const { status, body } = await edgeApp(origin.originFetch).generate(repo);
    expect(status).toBe(200);
    expect(body.bundles!.map((b) => b.format)).toEqual(["zstd-v2"]);
    expect(body.skipped?.["stream-v2"]).toMatch(reason);
    expect((await record(repo))?.skipped?.["stream-v2"]).toMatch(reason);
    expect(await bundlesOf(repo)).toEqual([body.bundles![0]!.name]);
  });

  it("refuses a stream clone whose files are not the ones announced, and keeps the previous bundles", async () => {
    const repo = freshRepo();
    const origin = scriptedOrigin({ stream: plainAnswer(stream2Bundle({ files: STREAM_FILES })) });
    const { generate } = edgeApp(origin.originFetch);
    const good = (await generate(repo)).body.bundles!;
    origin.state.stream = plainAnswer(stream2Bundle({ files: STREAM_FILES, announcedBytes: 5301 }));
    const failed = await generate(repo);
    expect(failed.status).toBe(502);
    expect(failed.body.error).toMatch(/announced 2 files of 5301 bytes/);
    expect(failed.body.kept).toEqual(good.map((b) => b.name));
    expect((await record(repo))?.bundles).toEqual(good);
    expect((await bundlesOf(repo)).sort()).toEqual(good.map((b) => b.name).sort());
  });

  it("streams a bundle larger than one R2 part as a multipart upload", async () => {
    const repo = freshRepo();
    const bytes = bundle2({ changesets: 40, deltaBytes: 250_000 }); // ~10 MB
    const origin = scriptedOrigin({ getbundle: plainAnswer(bytes) });
    const config = parseConfig({ ORIGIN_URL: "http://origin.test", OBJECTS: env.OBJECTS, ACCESS: "public", BUNDLE_FORMATS: '["none-v2", "zstd-v2"]' });
    const outcome = await generateBundles(config, origin.originFetch, repo, { partSize: 5 * 1024 * 1024 });
    expect(outcome.ok).toBe(true);
    if (!outcome.ok) return;
    const [none, zstd] = outcome.record.bundles;
    expect(none).toMatchObject({ size: bytes.length, sha256: await sha256(bytes) });
    expect(outcome.record.changesets).toBe(40);
    expect((await env.OBJECTS.head(none!.name))?.size).toBe(bytes.length);
    const compressed = await bodyOf(new Response((await env.OBJECTS.get(zstd!.name))!.body));
    expect(compressed.length).toBe(zstd!.size);
    // Compared by hash: a failing toEqual would print megabytes.
    const restored = zstdDecompress(compressed.subarray(22));
    expect(restored.length).toBe(bytes.length - 8);
    expect(await sha256(restored)).toBe(await sha256(bytes.subarray(8)));
  });

  it("keeps the replaced bundles readable, as retired, until their grace period ends", async () => {
    const repo = freshRepo();
    const origin = scriptedOrigin();
    const { generate, fetchEdge } = edgeApp(origin.originFetch);
    const first = (await generate(repo)).body.bundles!;
    origin.state.heads = [HEAD_B];
    origin.state.getbundle = zlibBundle(bundle2({ changesets: 6 }));
    const second = await generate(repo);
    expect(second.status).toBe(200);
    expect(second.body.removed).toEqual([]);
    expect(second.body.retired!.map((b) => b.name)).toEqual(first.map((b) => b.name));
    const current = await record(repo);
    expect(current?.bundles).toEqual(second.body.bundles);
    // A client that read the old manifest a moment ago still gets the old bundle.
    expect((await fetchEdge(`/.hgedge/objects/${first[0]!.name}`)).status).toBe(200);

    const graceMs = 6 * 3600 * 1000;
    const retiredAt = Date.parse(current!.retired[0]!.retiredAt);
    expect(await expireRetiredBundles(env.OBJECTS, repo, "http://origin.test/", graceMs, retiredAt + graceMs - 1)).toEqual({ removed: [], nextDue: retiredAt + graceMs });
    expect(await expireRetiredBundles(env.OBJECTS, repo, "http://origin.test/", graceMs, retiredAt + graceMs)).toEqual({ removed: first.map((b) => b.name) });
    expect((await record(repo))?.retired).toEqual([]);
    expect(await bundlesOf(repo)).toEqual(second.body.bundles!.map((b) => b.name));
    expect((await fetchEdge(`/.hgedge/objects/${first[0]!.name}`, { headers: { range: "bytes=0-3" } })).status).toBe(404);
  });

  it.each([
    ["an origin error", (() => new Response("boom", { status: 500 })) as Getbundle, /500: boom/],
    ["a cut connection", cutBundle(bundle2({ changesets: 5 }).subarray(0, 300)), /connection reset/],
    ["a truncated bundle", zlibBundle(bundle2({ changesets: 5 }).subarray(0, 400)), /ends in the middle/],
    ["an error:abort part", zlibBundle(bundle2({ changesets: 5, abortMessage: "out of memory" })), /error:abort part: out of memory/],
    ["an interrupted part", zlibBundle(bundle2({ changesets: 5, interrupt: true })), /interrupted/],
    ["a bundle1 stream", zlibBundle(new TextEncoder().encode("HG10UN\0\0\0\0")), /not a bundle2 stream/],
    ["stream parameters", zlibBundle(bundle2({ changesets: 5, streamParams: ["Compression=BZ"] })), /stream parameters/],
    ["an hg-error answer", (() => new Response("getbundle: bad argument", { headers: { "content-type": "application/hg-error" } })) as Getbundle, /bad argument/],
  ])("after %s keeps the previous bundles current and stores nothing", async (_, failing, message) => {
    const repo = freshRepo();
    const origin = scriptedOrigin();
    const { generate, fetchEdge } = edgeApp(origin.originFetch, { BUNDLE_FORMATS: '["zstd-v2", "none-v2"]' });
    const good = (await generate(repo)).body.bundles!;
    origin.state.heads = [HEAD_B];
    origin.state.getbundle = failing;
    const failed = await generate(repo);
    expect(failed.status).toBe(502);
    expect(failed.body.error).toMatch(message);
    expect(failed.body.kept).toEqual(good.map((b) => b.name));
    expect((await record(repo))?.bundles).toEqual(good);
    expect((await bundlesOf(repo)).sort()).toEqual(good.map((b) => b.name).sort());
    const manifest = await (await fetchEdge(`${repo}?cmd=clonebundles`)).text();
    for (const bundle of good) expect(manifest).toContain(encodeURIComponent(bundle.name.split("/").pop()!));
  });

  it("refuses an empty repository, a second generation of the same repository in the isolate, and bad requests", async () => {
    const repo = freshRepo();
    const { generate } = edgeApp(scriptedOrigin({ heads: ["0".repeat(40)] }).originFetch);
    expect(await generate(repo)).toMatchObject({ status: 409, body: { error: expect.stringMatching(/nothing to bundle/) } });
    expect(await record(repo)).toBeUndefined();

    let release: () => void = () => undefined;
    const slow = scriptedOrigin({
      getbundle: () => {
        const body = new ReadableStream<Uint8Array>({ start: (c) => void (release = () => (c.enqueue(deflate(bundle2({ changesets: 1 }))), c.close())) });
        return new Response(body, { headers: { "content-type": HG01 } });
      },
    });
    const app = edgeApp(slow.originFetch);
    const first = app.generate(repo);
    while (!slow.commands().includes("getbundle")) await new Promise((r) => setTimeout(r, 5));
    expect(await app.generate(repo)).toMatchObject({ status: 409 });
    release();
    expect((await first).status).toBe(200);

    const bad = await app.fetchEdge("/.hgedge/admin/bundles", { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: "{}" });
    expect(bad.status).toBe(400);
  });
});

describe("what 6.x and 7.x clients see", () => {
  it("capabilities gain clonebundles and clonebundles_manifest only once a bundle exists", async () => {
    const repo = freshRepo();
    const origin = scriptedOrigin();
    const { fetchEdge, generate } = edgeApp(origin.originFetch);
    const before = await (await fetchEdge(`${repo}?cmd=capabilities`)).text();
    expect(before).toBe(CAPABILITIES);
    await generate(repo);
    const after = (await (await fetchEdge(`${repo}?cmd=capabilities`)).text()).split(" ");
    expect(after).toEqual(expect.arrayContaining(["clonebundles", "clonebundles_manifest"]));
    expect(after.filter((c) => !c.startsWith("clonebundles")).join(" ")).toBe(CAPABILITIES);
  });

  it("the manifest lists the R2 bundles best first, then the origin's entries; the content route serves them with Range and ETag", async () => {
    const repo = freshRepo();
    const stream = stream2Bundle({ files: STREAM_FILES });
    const origin = scriptedOrigin({ stream: plainAnswer(stream) });
    const { fetchEdge, generate } = edgeApp(origin.originFetch);
    const made = (await generate(repo)).body.bundles!;
    for (const command of ["clonebundles", "clonebundles_manifest"]) {
      origin.calls.length = 0;
      const response = await fetchEdge(`${repo}?cmd=${command}`);
      expect(response.headers.get("content-type")).toBe(HG01);
      const text = await response.text();
      // The stream bundlespec is written as hg debugbundle --spec prints it.
      expect(text.split("\n")[0]).toMatch(new RegExp(` BUNDLESPEC=${STREAM_SPEC.replace(/[;%]/g, (c) => `\\${c}`)}$`));
      const entries = parseManifest(text);
      expect(entries.map((e) => e.attributes)).toEqual([{ BUNDLESPEC: "none-v2;stream=v2;requirements=generaldelta,revlogv1,sparserevlog" }, { BUNDLESPEC: "zstd-v2" }, { BUNDLESPEC: "gzip-v2" }]);
      expect(entries.slice(0, 2).map((e) => e.url)).toEqual(made.map((b) => `${EDGE}/.hgedge/objects/${b.name.split("/").map(encodeURIComponent).join("/")}`));
      expect(text.endsWith(ORIGIN_MANIFEST)).toBe(true);
      // Whichever the client asked, the origin is asked the command every origin knows.
      expect(origin.commands()).toEqual(["clonebundles"]);
    }
    const url = parseManifest(await (await fetchEdge(`${repo}?cmd=clonebundles`)).text())[0]!.url;
    const full = await fetchEdge(url.slice(EDGE.length));
    expect(full.status).toBe(200);
    expect(full.headers.get("cache-control")).toContain("immutable");
    expect(full.headers.get("content-type")).toBe("application/octet-stream");
    expect(await bodyOf(full)).toEqual(stream);
    const part = await fetchEdge(url.slice(EDGE.length), { headers: { range: "bytes=4-11" } });
    expect(part.status).toBe(206);
    expect(await bodyOf(part)).toEqual(stream.subarray(4, 12));
    const etag = full.headers.get("etag")!;
    expect((await fetchEdge(url.slice(EDGE.length), { headers: { "if-none-match": etag } })).status).toBe(304);
  });

  it("with ACCESS=origin, lists signed URLs, and only to a client the origin answered", async () => {
    const repo = freshRepo();
    const origin = scriptedOrigin();
    const { fetchEdge, generate } = edgeApp(origin.originFetch, { ACCESS: "origin", SIGNING_KEY });
    const made = (await generate(repo)).body.bundles!;
    const url = parseManifest(await (await fetchEdge(`${repo}?cmd=clonebundles`)).text())[0]!.url;
    expect(url).toMatch(/\?expires=\d+&sig=[0-9a-f]{64}$/);
    const path = url.slice(EDGE.length);
    expect((await fetchEdge(path)).status).toBe(200);
    expect((await fetchEdge(path.replace(/\?.*$/, ""))).status).toBe(403);
    // Tampered: the signature's first digit changed (to another digit whatever it was).
    const tampered = path.replace(/sig=(.)/, (_, digit: string) => `sig=${digit === "0" ? "1" : "0"}`);
    expect((await fetchEdge(tampered)).status).toBe(403);

    const refusing = scriptedOrigin({ manifestStatus: 401 });
    const denied = await edgeApp(refusing.originFetch, { ACCESS: "origin", SIGNING_KEY }).fetchEdge(`${repo}?cmd=clonebundles_manifest`);
    expect(denied.status).toBe(401);
    expect(await denied.text()).not.toContain(made[0]!.name.split("/").pop());
  });

  it("does not list a bundle whose object is gone", async () => {
    const repo = freshRepo();
    const { fetchEdge, generate } = edgeApp(scriptedOrigin().originFetch, NONE_ONLY);
    const made = (await generate(repo)).body.bundles!;
    await env.OBJECTS.delete(made[0]!.name);
    expect(await (await fetchEdge(`${repo}?cmd=clonebundles`)).text()).toBe(ORIGIN_MANIFEST);
  });

  it("passes everything through when clone bundles cannot be served (ACCESS=origin without SIGNING_KEY)", async () => {
    const repo = freshRepo();
    const origin = scriptedOrigin();
    const { fetchEdge, generate } = edgeApp(origin.originFetch, { ACCESS: "origin" });
    expect(await generate(repo)).toMatchObject({ status: 503, body: { error: expect.stringMatching(/SIGNING_KEY/) } });
    expect(await (await fetchEdge(`${repo}?cmd=capabilities`)).text()).toBe(CAPABILITIES);
  });

  it("refuses BUNDLE_FORMATS it cannot make, and a grace period shorter than a signed URL's life", () => {
    expect(parseConfig({ ORIGIN_URL: "http://o.test" }).bundleFormats).toEqual(["stream-v2", "zstd-v2"]);
    expect(parseConfig({ ORIGIN_URL: "http://o.test", BUNDLE_FORMATS: '["zstd-v2","stream-v2"]' }).bundleFormats).toEqual(["zstd-v2", "stream-v2"]);
    expect(() => parseConfig({ ORIGIN_URL: "http://o.test", BUNDLE_FORMATS: '["bzip2-v2"]' })).toThrow(/BUNDLE_FORMATS: "bzip2-v2" is not a bundle format: expected a JSON array of bundle formats, best first, from stream-v2, zstd-v2, gzip-v2, none-v2/);
    expect(() => parseConfig({ ORIGIN_URL: "http://o.test", BUNDLE_FORMATS: "zstd-v2" })).toThrow(/BUNDLE_FORMATS: is not valid JSON/);
    expect(() => parseConfig({ ORIGIN_URL: "http://o.test", BUNDLE_FORMATS: '["zstd-v2","zstd-v2"]' })).toThrow(/listed twice/);
    expect(() => parseConfig({ ORIGIN_URL: "http://o.test", BUNDLE_FORMATS: "[]" })).toThrow(/BUNDLE_FORMATS/);
    expect(() => parseConfig({ ORIGIN_URL: "http://o.test", URL_TTL: "600", BUNDLE_GRACE_SECONDS: "600" })).toThrow(/BUNDLE_GRACE_SECONDS: must be longer than URL_TTL \(600 s\)/);
  });
});

describe("cron trigger", () => {
  function cron(originFetch: OriginFetch, repos: string[], threshold = "10") {
    const handler = createScheduledHandler({ originFetch });
    const bindings = { ORIGIN_URL: "http://origin.test", OBJECTS: env.OBJECTS, ACCESS: "public", BUNDLE_REPOS: JSON.stringify(repos), BUNDLE_MIN_NEW_CHANGESETS: threshold, ...NONE_ONLY } as Env;
    return () => handler({} as ScheduledController, bindings);
  }

  it("makes a first bundle, leaves it while the origin is unchanged or moved by fewer than the threshold, and replaces it past it", async () => {
    const repo = freshRepo();
    const origin = scriptedOrigin();
    const run = cron(origin.originFetch, [repo]);
    await run();
    const first = await record(repo);
    expect(first?.heads).toEqual([HEAD_A]);

    origin.calls.length = 0;
    await run();
    expect(origin.commands()).toEqual(["heads"]);
    expect((await record(repo))?.bundles).toEqual(first!.bundles);

    // Moved by 3: the count comes from a getbundle of just the new part, cut once counted.
    origin.state.heads = [HEAD_B];
    origin.state.getbundle = zlibBundle(bundle2({ changesets: 3 }));
    origin.calls.length = 0;
    await run();
    expect(origin.commands()).toEqual(["heads", "known", "capabilities", "getbundle"]);
    const countArgs = argsOf(origin.calls[3]!.headers);
    expect(countArgs.get("common")).toBe(HEAD_A);
    expect(countArgs.get("heads")).toBe(HEAD_B);
    expect((await record(repo))?.bundles).toEqual(first!.bundles);

    // Moved by 10 (counted from the chunks when no count is announced): a new bundle.
    origin.state.getbundle = zlibBundle(bundle2({ changesets: 10, unannounced: true }));
    await run();
    const second = await record(repo);
    expect(second?.bundles[0]!.name).not.toBe(first!.bundles[0]!.name);
    expect(second?.heads).toEqual([HEAD_B]);
    expect(second?.retired.map((b) => b.name)).toEqual([first!.bundles[0]!.name]);
    expect((await bundlesOf(repo)).sort()).toEqual([first!.bundles[0]!.name, second!.bundles[0]!.name].sort());
  });

  it("replaces a bundle whose head the origin no longer has", async () => {
    const repo = freshRepo();
    const origin = scriptedOrigin();
    const run = cron(origin.originFetch, [repo], "1000");
    await run();
    const first = await record(repo);
    origin.state.heads = [HEAD_B];
    origin.state.known = "0";
    await run();
    expect((await record(repo))?.bundles[0]!.name).not.toBe(first!.bundles[0]!.name);
  });

  it("makes bundles of a format BUNDLE_FORMATS added, even when nothing else changed", async () => {
    const repo = freshRepo();
    const origin = scriptedOrigin();
    await cron(origin.originFetch, [repo])();
    expect((await record(repo))?.bundles.map((b) => b.format)).toEqual(["none-v2"]);
    const handler = createScheduledHandler({ originFetch: origin.originFetch });
    const more = { ORIGIN_URL: "http://origin.test", OBJECTS: env.OBJECTS, ACCESS: "public", BUNDLE_REPOS: JSON.stringify([repo]), BUNDLE_FORMATS: '["zstd-v2", "none-v2"]' } as Env;
    await handler({} as ScheduledController, more);
    expect((await record(repo))?.bundles.map((b) => b.format)).toEqual(["zstd-v2", "none-v2"]);
  });

  it("does nothing without BUNDLE_REPOS, and refuses a malformed one", async () => {
    const origin = scriptedOrigin();
    await createScheduledHandler({ originFetch: origin.originFetch })({} as ScheduledController, { ORIGIN_URL: "http://origin.test", OBJECTS: env.OBJECTS } as Env);
    expect(origin.calls).toEqual([]);
    expect(() => parseConfig({ ORIGIN_URL: "http://o.test", BUNDLE_REPOS: '"/"' })).toThrow(/BUNDLE_REPOS: expected a JSON array/);
    expect(() => parseConfig({ ORIGIN_URL: "http://o.test", BUNDLE_REPOS: '["repo"]' })).toThrow(/BUNDLE_REPOS: "repo" is not a repository path/);
    expect(() => parseConfig({ ORIGIN_URL: "http://o.test", BUNDLE_MIN_NEW_CHANGESETS: "0" })).toThrow(/BUNDLE_MIN_NEW_CHANGESETS/);
    expect(parseConfig({ ORIGIN_URL: "http://o.test", BUNDLE_REPOS: '["/", "/team/project/"]' }).bundleRepos).toEqual(["/", "/team/project"]);
  });
});
