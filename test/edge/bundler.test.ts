/**
 * The BUNDLER Durable Object (the real local implementation) with a scripted v1 origin: a push
 * through the edge that lands BUNDLE_MIN_NEW_CHANGESETS makes new bundles from the object's
 * alarm without any admin call; a push that changes nothing, or that the origin refused, makes
 * none; two isolates asking at once get one generation, and pushes during it one more check
 * after it; admin/stats shows the progress and the last result; the alarm deletes replaced
 * bundles when their grace period ends.
 *
 * The object reads its configuration from the test bindings (vitest.workers.config.ts: ACCESS
 * public, BUNDLE_GRACE_SECONDS 2, BUNDLE_MIN_NEW_CHANGESETS by default 100) and reaches the
 * scripted origin through useOrigin.
 */
import { env } from "cloudflare:workers";
import { createExecutionContext, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { deflate } from "pako";
import { describe, expect, it } from "vitest";
import type { Env } from "../../src/config.ts";
import { bundleDirectory, bundleRecordName, type BundleRecord } from "../../src/cache/bundles.ts";
import { bundlerStub, type Bundler, type BundlerStatus } from "../../src/cache/bundler.ts";
import { createApp } from "../../src/edge/app.ts";
import type { OriginFetch } from "../../src/origin/client.ts";
import { bundle2 } from "../support/bundle2.ts";

const EDGE = "http://edge.test";
const TOKEN = "t".repeat(40);
const HG01 = "application/mercurial-0.1";
const HEAD_A = "a".repeat(40);
const HEAD_B = "b".repeat(40);
const CAPABILITIES = "batch bundle2=HG20%0Achangegroup%3D01%2C02 getbundle httpheader=1024 known lookup unbundle=HG10GZ,HG10BZ,HG10UN";
let counter = 0;
const freshRepo = () => `/bundler-${Date.now()}-${counter++}`;

/** A v1 origin whose changegroup answers can be held; it counts generations in flight at once. */
function origin() {
  const state = { heads: [HEAD_A], changesets: 5, hold: undefined as Promise<void> | undefined, inFlight: 0, maxInFlight: 0, fullBundles: 0, pushes: 0 };
  const text = (body: string) => new Response(body, { headers: { "content-type": HG01 } });
  const originFetch: OriginFetch = async (url, init) => {
    const command = new URL(url).searchParams.get("cmd");
    const headers = new Headers(init.headers);
    let args = "";
    for (let n = 1; headers.has(`x-hgarg-${n}`); n++) args += headers.get(`x-hgarg-${n}`);
    const params = new URLSearchParams(args);
    switch (command) {
      case "capabilities":
        return text(CAPABILITIES);
      case "heads":
        return text(`${state.heads.join(" ")}\n`);
      case "known":
        return text("1".repeat(params.get("nodes")!.split(" ").length));
      case "unbundle":
        state.pushes++;
        return text("pushed");
      case "clonebundles":
        return text("");
      case "getbundle": {
        const full = params.get("common") === "0".repeat(40);
        if (!full) return new Response(deflate(bundle2({ changesets: state.changesets })), { headers: { "content-type": HG01 } });
        state.fullBundles++;
        state.maxInFlight = Math.max(state.maxInFlight, ++state.inFlight);
        try {
          await state.hold;
          return new Response(deflate(bundle2({ changesets: state.changesets })), { headers: { "content-type": HG01 } });
        } finally {
          state.inFlight--;
        }
      }
      default:
        return text("");
    }
  };
  return { originFetch, state };
}

/** The edge as one isolate runs it, with the BUNDLER binding; waitUntil promises are kept to await. */
function isolate(originFetch: OriginFetch, vars: Partial<Record<keyof Env, string>> = {}) {
  const app = createApp({ originFetch });
  const ctx = createExecutionContext();
  const bindings = { ORIGIN_URL: "http://origin.test", OBJECTS: env.OBJECTS, BUNDLER: env.BUNDLER, ACCESS: "public", ADMIN_TOKEN: TOKEN, ...vars } as Env;
  const fetchEdge = (path: string, init: RequestInit = {}) => app.fetch(new Request(`${EDGE}${path}`, init), bindings, ctx);
  return {
    fetchEdge,
    generate: async (repo: string) => {
      const response = await fetchEdge("/.hgedge/admin/bundles", { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ repo }) });
      return { status: response.status, body: (await response.json()) as { error?: string; changesets?: number } };
    },
    push: async (repo: string) => {
      const response = await fetchEdge(`${repo}?cmd=unbundle`, { method: "POST", body: "HG20..." });
      await response.arrayBuffer();
      await waitOnExecutionContext(ctx);
      return response.status;
    },
    stats: async (repo: string) => {
      const response = await fetchEdge(`/.hgedge/admin/stats?repo=${encodeURIComponent(repo)}`, { headers: { authorization: `Bearer ${TOKEN}` } });
      return ((await response.json()) as { bundles: Record<string, { generator: BundlerStatus }> }).bundles[repo]!.generator;
    },
  };
}

async function useOrigin(repo: string, originFetch: OriginFetch): Promise<DurableObjectStub<Bundler>> {
  const stub = bundlerStub(env.BUNDLER, repo);
  await runInDurableObject(stub, (instance) => (instance as unknown as Bundler).useOrigin(originFetch));
  return stub;
}

async function record(repo: string): Promise<BundleRecord | undefined> {
  const object = await env.OBJECTS.get(bundleRecordName(repo));
  return object ? ((await object.json()) as BundleRecord) : undefined;
}

/** Waits (bounded) for the generator's status to satisfy `done`; the alarm runs on its own. */
async function until(stub: DurableObjectStub<Bundler>, done: (status: BundlerStatus) => boolean, what: string): Promise<BundlerStatus> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const status = await stub.status();
    if (done(status)) return status;
    if (Date.now() > deadline) throw new Error(`the generator did not get to: ${what} (${JSON.stringify(status)})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("bundles made when pushes land", () => {
  it("a push through the edge of BUNDLE_MIN_NEW_CHANGESETS makes new bundles without any admin call; a smaller one does not", async () => {
    const repo = freshRepo();
    const upstream = origin();
    const stub = await useOrigin(repo, upstream.originFetch);
    const edge = isolate(upstream.originFetch);
    expect((await edge.generate(repo)).status).toBe(200);
    const first = await record(repo);

    // 3 new changesets: fewer than the default threshold of 100.
    upstream.state.heads = [HEAD_B];
    upstream.state.changesets = 3;
    expect(await edge.push(repo)).toBe(200);
    const small = await until(stub, (s) => s.last?.trigger === "push", "the first push's check");
    expect(small.last).toMatchObject({ action: "kept", reason: expect.stringMatching(/3 new changesets, fewer than BUNDLE_MIN_NEW_CHANGESETS=100/) });
    expect((await record(repo))?.bundles).toEqual(first!.bundles);

    // 120 new changesets: one generation, from the alarm.
    upstream.state.changesets = 120;
    const before = upstream.state.fullBundles;
    expect(await edge.push(repo)).toBe(200);
    const big = await until(stub, (s) => s.last?.trigger === "push" && s.last.action === "generated", "a generation after the second push");
    expect(big.last?.reason).toMatch(/120 new changesets/);
    expect(big.last?.bundles?.map((b) => b.format)).toEqual(["zstd-v2"]);
    expect(big.last?.skipped?.["stream-v2"]).toMatch(/does not offer stream clones/);
    const fresh = await record(repo);
    expect(fresh?.heads).toEqual([HEAD_B]);
    expect(fresh?.changesets).toBe(120);
    expect(upstream.state.fullBundles - before).toBe(1);
    expect(upstream.state.pushes).toBe(2);
  });

  it("a push the origin refused, or to a repository without bundles, asks for nothing", async () => {
    const repo = freshRepo();
    const upstream = origin();
    const refusing: OriginFetch = async (url, init) =>
      new URL(url).searchParams.get("cmd") === "unbundle" ? new Response("push refused", { headers: { "content-type": "application/hg-error" } }) : upstream.originFetch(url, init);
    const stub = await useOrigin(repo, upstream.originFetch);
    expect((await isolate(upstream.originFetch).generate(repo)).status).toBe(200);
    const last = (await stub.status()).last;
    await isolate(refusing).push(repo);
    const failing: OriginFetch = async (url, init) => (new URL(url).searchParams.get("cmd") === "unbundle" ? new Response("boom", { status: 500 }) : upstream.originFetch(url, init));
    await isolate(failing).push(repo);
    expect(await stub.status()).toMatchObject({ last });
    expect((await stub.status()).pending).toBeUndefined();

    const bare = freshRepo();
    const bareStub = await useOrigin(bare, upstream.originFetch);
    await isolate(upstream.originFetch).push(bare);
    expect(await bareStub.status()).toEqual({});
    // Listed in BUNDLE_REPOS, it gets its first bundles from a push.
    await isolate(upstream.originFetch, { BUNDLE_REPOS: JSON.stringify([bare]) }).push(bare);
    await until(bareStub, (s) => s.last?.action === "generated", "the first bundles of a BUNDLE_REPOS repository");
  });

  it("two isolates asking at once get one generation; pushes meanwhile get one check after it; stats show the progress", async () => {
    const repo = freshRepo();
    const upstream = origin();
    const stub = await useOrigin(repo, upstream.originFetch);
    let release!: () => void;
    upstream.state.hold = new Promise((resolve) => (release = resolve));
    // Listed in BUNDLE_REPOS: pushes count before the repository has bundles.
    const vars = { BUNDLE_REPOS: JSON.stringify([repo]) };
    const [one, two] = [isolate(upstream.originFetch, vars), isolate(upstream.originFetch, vars)];
    const first = one.generate(repo);
    await until(stub, (s) => s.running !== undefined && upstream.state.inFlight === 1, "a running generation");
    const second = await two.generate(repo);
    expect(second.status).toBe(409);
    expect(second.body.error).toMatch(/already running \(started .* by admin/);
    expect(await one.stats(repo)).toMatchObject({ running: { trigger: "admin" } });

    for (let i = 0; i < 3; i++) expect(await two.push(repo)).toBe(200);
    expect(await stub.status()).toMatchObject({ running: { trigger: "admin" }, pending: { trigger: "push" } });
    release();
    expect((await first).status).toBe(200);
    const after = await until(stub, (s) => s.last?.trigger === "push" && s.pending === undefined && s.running === undefined, "the check after the pushes");
    expect(after.last).toMatchObject({ action: "kept", reason: "the origin's heads are the bundle's" });
    expect(upstream.state.fullBundles).toBe(1);
    expect(upstream.state.maxInFlight).toBe(1);
    const stats = await two.stats(repo);
    expect(stats.last).toMatchObject({ trigger: "push", action: "kept" });
  });

  it("the alarm deletes the bundles a generation replaced once their grace period (2 s here) ends", async () => {
    const repo = freshRepo();
    const upstream = origin();
    const stub = await useOrigin(repo, upstream.originFetch);
    const edge = isolate(upstream.originFetch);
    await edge.generate(repo);
    const old = (await record(repo))!.bundles.map((b) => b.name);
    upstream.state.heads = [HEAD_B];
    await edge.generate(repo);
    expect((await record(repo))!.retired.map((b) => b.name)).toEqual(old);
    expect((await stub.status()).nextAlarm).toBeDefined();
    const deadline = Date.now() + 30_000;
    while ((await record(repo))!.retired.length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await record(repo))!.retired).toEqual([]);
    const listed = await env.OBJECTS.list({ prefix: bundleDirectory(repo), delimiter: "/" });
    expect(listed.objects.map((o) => o.key).filter((k) => k.endsWith(".hg"))).toEqual((await record(repo))!.bundles.map((b) => b.name));
  });
});
