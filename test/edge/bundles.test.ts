/**
 * Clone bundles through the app with the local R2 and a scripted v1 origin: generation by the
 * admin API (stored whole, or not at all), the manifest and capabilities a 6.x client sees,
 * the content route serving the bundle, replacement of old bundles, failures that keep the
 * previous bundle, and the cron trigger's freshness check.
 */
import { env } from "cloudflare:workers";
import { deflate } from "pako";
import { describe, expect, it } from "vitest";
import type { Env } from "../../src/config.ts";
import { bundleDirectory, bundleRecordName, type BundleRecord } from "../../src/cache/bundles.ts";
import { createApp } from "../../src/edge/app.ts";
import { createScheduledHandler, generateBundle } from "../../src/edge/bundles.ts";
import type { OriginFetch } from "../../src/edge/passthrough.ts";
import { parseManifest } from "../../src/protocol/clonebundles.ts";
import { parseConfig } from "../../src/config.ts";
import { bundle2, concat } from "../support/bundle2.ts";

const EDGE = "http://edge.test";
const TOKEN = "t".repeat(40);
const SIGNING_KEY = "k".repeat(40);
const HG01 = "application/mercurial-0.1";
const HEAD_A = "a".repeat(40);
const HEAD_B = "b".repeat(40);
const ORIGIN_MANIFEST = "https://mirror.example/full.hg BUNDLESPEC=gzip-v2\n";
const CAPABILITIES = "batch branchmap bundle2=HG20%0Achangegroup%3D01%2C02 getbundle httpheader=1024 known lookup unbundle=HG10GZ,HG10BZ,HG10UN";
let repoCounter = 0;

/** A repository path of its own for each test: the local R2 is shared by the whole file. */
const freshRepo = () => `/repo-${Date.now()}-${repoCounter++}`;

type Getbundle = (args: URLSearchParams) => Response;

/** A v1 origin: capabilities, heads, known, getbundle (as scripted), clonebundles; every call recorded. */
function scriptedOrigin(options: { heads?: string[]; getbundle?: Getbundle; manifestStatus?: number; known?: string } = {}) {
  const calls: { url: URL; headers: Headers }[] = [];
  const state = { heads: options.heads ?? [HEAD_A], getbundle: options.getbundle ?? zlibBundle(bundle2({ changesets: 5 })), known: options.known };
  const originFetch: OriginFetch = async (url, init) => {
    const parsed = new URL(url);
    const headers = new Headers(init.headers);
    calls.push({ url: parsed, headers });
    const text = (body: string, status = 200) => new Response(body, { status, headers: { "content-type": HG01 } });
    switch (parsed.searchParams.get("cmd")) {
      case "capabilities":
        return text(CAPABILITIES);
      case "heads":
        return text(`${state.heads.join(" ")}\n`);
      case "known":
        return text(state.known ?? "1".repeat(argsOf(headers).get("nodes")!.split(" ").length));
      case "getbundle":
        return state.getbundle(argsOf(headers));
      case "clonebundles":
      case "clonebundles_manifest":
        return options.manifestStatus && options.manifestStatus !== 200 ? new Response("auth required", { status: options.manifestStatus }) : text(ORIGIN_MANIFEST);
      default:
        return text("origin page");
    }
  };
  const commands = () => calls.map((c) => c.url.searchParams.get("cmd"));
  return { originFetch, calls, state, commands };
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
  const ctx = { waitUntil() {}, passThroughOnException() {}, props: {} };
  const bindings = { ORIGIN_URL: "http://origin.test", OBJECTS: env.OBJECTS, ACCESS: "public", ADMIN_TOKEN: TOKEN, ...vars } as Env;
  const fetchEdge = (path: string, init: RequestInit = {}) => app.fetch(new Request(`${EDGE}${path}`, init), bindings, ctx as unknown as ExecutionContext);
  const generate = async (repo: string) => {
    const response = await fetchEdge("/.hgedge/admin/bundles", { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ repo }) });
    return { status: response.status, body: (await response.json()) as { bundle?: BundleRecord; error?: string; kept?: string; removed?: string[] } };
  };
  return { fetchEdge, generate, bindings };
}

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
  it("stores the origin's whole bundle, decompressed, and records heads, size, hash and spec", async () => {
    const repo = freshRepo();
    const bytes = bundle2({ changesets: 12, deltaBytes: 2000 });
    const origin = scriptedOrigin({ heads: [HEAD_B, HEAD_A], getbundle: zlibBundle(bytes) });
    const { status, body } = await edgeApp(origin.originFetch).generate(repo);
    expect(status).toBe(200);
    expect(body.bundle).toMatchObject({ repo, bundlespec: "none-v2", heads: [HEAD_A, HEAD_B], changesets: 12, size: bytes.length, sha256: await sha256(bytes) });
    expect(await record(repo)).toEqual(body.bundle);
    const stored = await env.OBJECTS.get(body.bundle!.name);
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

  it("streams a bundle larger than one R2 part as a multipart upload", async () => {
    const repo = freshRepo();
    const bytes = bundle2({ changesets: 40, deltaBytes: 250_000 }); // ~10 MB
    const origin = scriptedOrigin({ getbundle: () => new Response(concat([new Uint8Array([4]), new TextEncoder().encode("none"), bytes]), { headers: { "content-type": "application/mercurial-0.2" } }) });
    const config = parseConfig({ ORIGIN_URL: "http://origin.test", OBJECTS: env.OBJECTS, ACCESS: "public" });
    const outcome = await generateBundle(config, origin.originFetch, repo, { partSize: 5 * 1024 * 1024 });
    expect(outcome.ok).toBe(true);
    if (!outcome.ok) return;
    expect(outcome.record).toMatchObject({ size: bytes.length, changesets: 40, sha256: await sha256(bytes) });
    const stored = await env.OBJECTS.head(outcome.record.name);
    expect(stored?.size).toBe(bytes.length);
  });

  it("replaces the previous bundle and then deletes it", async () => {
    const repo = freshRepo();
    const origin = scriptedOrigin();
    const { generate } = edgeApp(origin.originFetch);
    const first = (await generate(repo)).body.bundle!;
    origin.state.heads = [HEAD_B];
    origin.state.getbundle = zlibBundle(bundle2({ changesets: 6 }));
    const second = await generate(repo);
    expect(second.status).toBe(200);
    expect(second.body.removed).toEqual([first.name]);
    expect((await record(repo))?.name).toBe(second.body.bundle!.name);
    expect(await bundlesOf(repo)).toEqual([second.body.bundle!.name]);
  });

  it.each([
    ["an origin error", (() => new Response("boom", { status: 500 })) as Getbundle, /500: boom/],
    ["a cut connection", cutBundle(bundle2({ changesets: 5 }).subarray(0, 300)), /connection reset/],
    ["a truncated bundle", zlibBundle(bundle2({ changesets: 5 }).subarray(0, 400)), /ends in the middle/],
    ["an error:abort part", zlibBundle(bundle2({ changesets: 5, abortMessage: "out of memory" })), /error:abort part: out of memory/],
    ["an interrupted part", zlibBundle(bundle2({ changesets: 5, interrupt: true })), /interrupted/],
    ["a bundle1 stream", zlibBundle(new TextEncoder().encode("HG10UN\0\0\0\0")), /not a bundle2 stream/],
    ["an hg-error answer", (() => new Response("getbundle: bad argument", { headers: { "content-type": "application/hg-error" } })) as Getbundle, /bad argument/],
  ])("after %s keeps the previous bundle current and stores nothing", async (_, failing, message) => {
    const repo = freshRepo();
    const origin = scriptedOrigin();
    const { generate, fetchEdge } = edgeApp(origin.originFetch);
    const good = (await generate(repo)).body.bundle!;
    origin.state.heads = [HEAD_B];
    origin.state.getbundle = failing;
    const failed = await generate(repo);
    expect(failed.status).toBe(502);
    expect(failed.body.error).toMatch(message);
    expect(failed.body.kept).toBe(good.name);
    expect(await record(repo)).toEqual(good);
    expect(await bundlesOf(repo)).toEqual([good.name]);
    const manifest = await (await fetchEdge(`${repo}?cmd=clonebundles`)).text();
    expect(manifest).toContain(encodeURIComponent(good.name.split("/").pop()!));
  });

  it("refuses an empty repository, a second generation of the same repository, and bad requests", async () => {
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

describe("what a 6.x client sees", () => {
  it("capabilities gain clonebundles only once a bundle exists", async () => {
    const repo = freshRepo();
    const origin = scriptedOrigin();
    const { fetchEdge, generate } = edgeApp(origin.originFetch);
    const before = await (await fetchEdge(`${repo}?cmd=capabilities`)).text();
    expect(before).toBe(CAPABILITIES);
    await generate(repo);
    const after = await (await fetchEdge(`${repo}?cmd=capabilities`)).text();
    expect(after.split(" ")).toContain("clonebundles");
    expect(after.split(" ").filter((c) => c !== "clonebundles").join(" ")).toBe(CAPABILITIES);
  });

  it("the manifest lists the R2 bundle first, then the origin's entries; the content route serves it with Range and ETag", async () => {
    const repo = freshRepo();
    const bytes = bundle2({ changesets: 3, deltaBytes: 1000 });
    const origin = scriptedOrigin({ getbundle: zlibBundle(bytes) });
    const { fetchEdge, generate } = edgeApp(origin.originFetch);
    const made = (await generate(repo)).body.bundle!;
    for (const command of ["clonebundles", "clonebundles_manifest"]) {
      const response = await fetchEdge(`${repo}?cmd=${command}`);
      expect(response.headers.get("content-type")).toBe(HG01);
      const text = await response.text();
      const entries = parseManifest(text);
      expect(entries[0]!.attributes).toEqual({ BUNDLESPEC: "none-v2" });
      expect(entries[0]!.url).toBe(`${EDGE}/.hgedge/objects/${made.name.split("/").map(encodeURIComponent).join("/")}`);
      expect(text.endsWith(ORIGIN_MANIFEST)).toBe(true);
    }
    const url = parseManifest(await (await fetchEdge(`${repo}?cmd=clonebundles`)).text())[0]!.url;
    const full = await fetchEdge(url.slice(EDGE.length));
    expect(full.status).toBe(200);
    expect(full.headers.get("cache-control")).toContain("immutable");
    expect(full.headers.get("content-type")).toBe("application/octet-stream");
    expect(await bodyOf(full)).toEqual(bytes);
    const part = await fetchEdge(url.slice(EDGE.length), { headers: { range: "bytes=4-11" } });
    expect(part.status).toBe(206);
    expect(await bodyOf(part)).toEqual(bytes.subarray(4, 12));
    const etag = full.headers.get("etag")!;
    expect((await fetchEdge(url.slice(EDGE.length), { headers: { "if-none-match": etag } })).status).toBe(304);
  });

  it("with ACCESS=origin, lists a signed URL, and only to a client the origin answered", async () => {
    const repo = freshRepo();
    const origin = scriptedOrigin();
    const { fetchEdge, generate } = edgeApp(origin.originFetch, { ACCESS: "origin", SIGNING_KEY });
    const made = (await generate(repo)).body.bundle!;
    const url = parseManifest(await (await fetchEdge(`${repo}?cmd=clonebundles`)).text())[0]!.url;
    expect(url).toMatch(/\?expires=\d+&sig=[0-9a-f]{64}$/);
    const path = url.slice(EDGE.length);
    expect((await fetchEdge(path)).status).toBe(200);
    expect((await fetchEdge(path.replace(/\?.*$/, ""))).status).toBe(403);
    // Tampered: the signature's first digit changed (to another digit whatever it was).
    const tampered = path.replace(/sig=(.)/, (_, digit: string) => `sig=${digit === "0" ? "1" : "0"}`);
    expect((await fetchEdge(tampered)).status).toBe(403);

    const refusing = scriptedOrigin({ manifestStatus: 401 });
    const denied = await edgeApp(refusing.originFetch, { ACCESS: "origin", SIGNING_KEY }).fetchEdge(`${repo}?cmd=clonebundles`);
    expect(denied.status).toBe(401);
    expect(await denied.text()).not.toContain(made.name.split("/").pop());
  });

  it("does not list a bundle whose object is gone", async () => {
    const repo = freshRepo();
    const { fetchEdge, generate } = edgeApp(scriptedOrigin().originFetch);
    const made = (await generate(repo)).body.bundle!;
    await env.OBJECTS.delete(made.name);
    expect(await (await fetchEdge(`${repo}?cmd=clonebundles`)).text()).toBe(ORIGIN_MANIFEST);
  });

  it("passes everything through when clone bundles cannot be served (ACCESS=origin without SIGNING_KEY)", async () => {
    const repo = freshRepo();
    const origin = scriptedOrigin();
    const { fetchEdge, generate } = edgeApp(origin.originFetch, { ACCESS: "origin" });
    expect(await generate(repo)).toMatchObject({ status: 503, body: { error: expect.stringMatching(/SIGNING_KEY/) } });
    expect(await (await fetchEdge(`${repo}?cmd=capabilities`)).text()).toBe(CAPABILITIES);
  });
});

describe("cron trigger", () => {
  function cron(originFetch: OriginFetch, repos: string[], threshold = "10") {
    const handler = createScheduledHandler({ originFetch });
    const bindings = { ORIGIN_URL: "http://origin.test", OBJECTS: env.OBJECTS, ACCESS: "public", BUNDLE_REPOS: JSON.stringify(repos), BUNDLE_MIN_NEW_CHANGESETS: threshold } as Env;
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
    expect((await record(repo))?.name).toBe(first!.name);

    // Moved by 3: the count comes from a getbundle of just the new part, cut once counted.
    origin.state.heads = [HEAD_B];
    origin.state.getbundle = zlibBundle(bundle2({ changesets: 3 }));
    origin.calls.length = 0;
    await run();
    expect(origin.commands()).toEqual(["heads", "known", "capabilities", "getbundle"]);
    const countArgs = argsOf(origin.calls[3]!.headers);
    expect(countArgs.get("common")).toBe(HEAD_A);
    expect(countArgs.get("heads")).toBe(HEAD_B);
    expect((await record(repo))?.name).toBe(first!.name);

    // Moved by 10 (counted from the chunks when no count is announced): a new bundle.
    origin.state.getbundle = zlibBundle(bundle2({ changesets: 10, unannounced: true }));
    await run();
    const second = await record(repo);
    expect(second?.name).not.toBe(first!.name);
    expect(second?.heads).toEqual([HEAD_B]);
    expect(await bundlesOf(repo)).toEqual([second!.name]);
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
    expect((await record(repo))?.name).not.toBe(first!.name);
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
