/**
 * Regression tests of issue 15's findings, through the whole app inside workerd with a scripted
 * origin: every decision on the canonical target, origin URLs from one builder, the access check
 * with the data request's client-address headers, stats only for answered repositories, purge
 * of exactly one repository, and the small fixes of issue 14 in the same files.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Env } from "../../src/config.ts";
import { createApp } from "../../src/edge/app.ts";
import type { OriginFetch } from "../../src/origin/client.ts";
import { OTHER_REPOSITORIES, STATS_MAX_REPOSITORIES, emptyCounters, type StatsCounter } from "../../src/cache/stats.ts";
import { bytes, cborMap } from "../../src/protocol/cbor.ts";
import { encodeRequestBody } from "../../src/protocol/requests.ts";
import { fixtureBytes } from "../support/fixtures.ts";

const EDGE = "http://edge.test";
const ORIGIN = "http://origin.test";
const FRAMING = "application/mercurial-exp-framing-0006";
const V2 = "/api/exp-http-v2-0003";
const TOKEN = "t".repeat(40);
let generation = 0;

interface Seen {
  url: string;
  headers: Headers;
}

function recordingOrigin(reply: (seen: Seen) => Response | Promise<Response> = () => new Response("ok")) {
  const seen: Seen[] = [];
  const originFetch: OriginFetch = async (url, init) => {
    const entry = { url, headers: new Headers(init.headers) };
    seen.push(entry);
    if (init.body instanceof ReadableStream) await init.body.cancel();
    return reply(entry);
  };
  return { seen, originFetch };
}

function app(originFetch: OriginFetch, vars: Partial<Record<keyof Env, unknown>> = {}) {
  const hono = createApp({ originFetch });
  const environment = { ORIGIN_URL: ORIGIN, OBJECTS: env.OBJECTS, CACHE_VERSION: `security-${Date.now()}-${generation++}`, MIN_REDIRECT_BYTES: "0", ...vars } as Env;
  const ctx = createExecutionContext();
  const fetchEdge = async (request: Request) => {
    const response = await hono.fetch(request, environment, ctx);
    const body = new Uint8Array(await response.arrayBuffer());
    return { response, body };
  };
  return { fetchEdge, settle: () => waitOnExecutionContext(ctx) };
}

const pushkeyArgs = cborMap({ namespace: bytes("bookmarks"), key: bytes("evil"), old: new Uint8Array(0), new: bytes("0".repeat(40)) });

function v2Request(target: string, name: string, args = cborMap({}), headers: Record<string, string> = {}): Request {
  return new Request(`${EDGE}${target}`, {
    method: "POST",
    headers: { accept: FRAMING, "content-type": FRAMING, ...headers },
    body: encodeRequestBody([{ name, args }], ["identity"]),
  });
}

function manifestRequest(target: string, headers: Record<string, string> = {}): Request {
  const args = cborMap({ tree: new Uint8Array(0), nodes: [new Uint8Array(20).fill(7)] });
  return new Request(`${EDGE}${target}`, {
    method: "POST",
    headers: { accept: FRAMING, "content-type": FRAMING, ...headers },
    body: encodeRequestBody([{ name: "manifestdata", args, redirect: { targets: ["hgedge"], hashes: ["sha256", "sha1"] } }], ["identity"]),
  });
}

afterEach(() => vi.restoreAllMocks());

describe("1. one canonical form for every decision", () => {
  it.each([
    [`${V2}/ro/pushke%79`, 403],
    [`/ro${V2}/ro/pushke%79`, 403],
    [`//${V2.slice(1)}/ro/pushkey`, 403],
    [`${V2}/ro/pushkey%2F`, 400],
    [`/api%2Fexp-http-v2-0003/ro/pushkey`, 400],
    [`${V2}/ro/pushkey/`, 403],
    [`${V2}/ro/pushkey/x`, 400],
    [`${V2}/ro/pushke%2579`, 400],
    [`${V2}/ro/pushkey%00`, 400],
  ])("never lets the origin run a write sent to ro as %s", async (target, status) => {
    const origin = recordingOrigin();
    const { response, body } = await app(origin.originFetch).fetchEdge(v2Request(target, "pushkey", pushkeyArgs));
    expect(response.status).toBe(status);
    expect(response.headers.get("x-hgedge-cache")).toBe("BYPASS");
    expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(new TextDecoder().decode(body)).toMatch(status === 403 ? /insufficient permissions to execute command: pushkey/ : /^hgedge: refused: /);
    expect(origin.seen).toEqual([]);
  });

  it("refuses a v1 request with more than one cmd (hgweb takes the last, others the first)", async () => {
    const origin = recordingOrigin();
    for (const query of ["?cmd=capabilities&cmd=unbundle", "?cmd=heads&c%6Dd=unbundle"]) {
      const { response } = await app(origin.originFetch).fetchEdge(new Request(`${EDGE}/repo${query}`));
      expect(response.status, query).toBe(400);
    }
    expect(origin.seen).toEqual([]);
  });

  it("forwards the canonical path, so that the origin reads the request as hgedge did", async () => {
    const origin = recordingOrigin();
    const { fetchEdge } = app(origin.originFetch, { ORIGIN_URL: `${ORIGIN}/hg/` });
    await fetchEdge(new Request(`${EDGE}//team//pro%6Aect/?cmd=heads`));
    await fetchEdge(v2Request(`/team/project/${V2.slice(1)}//ro/he%61ds`, "heads"));
    expect(origin.seen.map((s) => s.url)).toEqual([`${ORIGIN}/hg/team/project?cmd=heads`, `${ORIGIN}/hg/team/project${V2}/ro/heads`]);
  });

  it("never forwards a look-alike of hgedge's own routes (the admin token would go with it)", async () => {
    const origin = recordingOrigin();
    const { response } = await app(origin.originFetch, { ADMIN_TOKEN: TOKEN }).fetchEdge(
      new Request(`${EDGE}//.hgedge/admin/purge`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: "{}" }),
    );
    expect(response.status).toBe(400);
    expect(origin.seen).toEqual([]);
  });

  it("keys the cache on the canonical repository and command: encoded spellings share one object", async () => {
    const recorded = await fixtureBytes("cmd-manifestdata/002-response.body");
    const origin = recordingOrigin(() => new Response(recorded, { headers: { "content-type": FRAMING } }));
    const { fetchEdge, settle } = app(origin.originFetch, { ACCESS: "public" });
    const cold = await fetchEdge(manifestRequest(`/canon${V2}/ro/manifestdata`));
    expect(cold.response.headers.get("x-hgedge-cache")).toBe("MISS");
    await settle();
    const warm = await fetchEdge(manifestRequest(`//c%61non/${V2.slice(1)}/ro/m%61nifestdata`));
    expect(warm.response.headers.get("x-hgedge-cache")).toBe("REDIRECT");
    expect(origin.seen).toHaveLength(1);
  });
});

describe("2. origin URLs and the access check", () => {
  async function guarded() {
    const recorded = await fixtureBytes("cmd-manifestdata/002-response.body");
    // `/security/core` is private (only `Basic good` may read it); `/core` is public.
    return recordingOrigin(({ url, headers }) => {
      const path = new URL(url).pathname;
      if (path.startsWith("/security/") && headers.get("authorization") !== "Basic good") return new Response("denied", { status: 401 });
      if (new URL(url).search === "?cmd=capabilities") return new Response("caps", { headers: { "content-type": "application/mercurial-0.1" } });
      return new Response(recorded, { headers: { "content-type": FRAMING } });
    });
  }

  it("asks about the repository the request names, also when its path starts with //", async () => {
    const origin = await guarded();
    const { fetchEdge, settle } = app(origin.originFetch, { SIGNING_KEY: "k".repeat(40) });
    const target = `//security/core${V2}/ro/manifestdata`;
    await fetchEdge(manifestRequest(target, { authorization: "Basic good" }));
    await settle();
    const before = origin.seen.length;
    const anonymous = await fetchEdge(manifestRequest(target));
    expect(anonymous.response.status).toBe(401);
    expect(anonymous.response.headers.get("x-hgedge-cache")).not.toBe("REDIRECT");
    expect(origin.seen.slice(before).map((s) => s.url)).toEqual([`${ORIGIN}/security/core?cmd=capabilities`, `${ORIGIN}/security/core${V2}/ro/manifestdata`]);
  });

  it("sends the access check with the data request's client-address headers and strips the client's own claims", async () => {
    const origin = await guarded();
    const { fetchEdge, settle } = app(origin.originFetch, { SIGNING_KEY: "k".repeat(40) });
    const claims = { "cf-connecting-ip": "192.0.2.9", "x-forwarded-for": "10.0.0.1", "x-real-ip": "10.0.0.2", "true-client-ip": "10.0.0.3", forwarded: "for=10.0.0.4" };
    await fetchEdge(manifestRequest(`/security/x${V2}/ro/manifestdata`, { authorization: "Basic good", ...claims }));
    await settle();
    await fetchEdge(manifestRequest(`/security/x${V2}/ro/manifestdata`, { authorization: "Basic good", ...claims }));
    const check = origin.seen.find((s) => s.url.endsWith("?cmd=capabilities"));
    const data = origin.seen[0];
    expect(check).toBeDefined();
    for (const seen of [check, data] as Seen[]) {
      expect(seen.headers.get("x-forwarded-for")).toBe("192.0.2.9");
      expect(seen.headers.get("cf-connecting-ip")).toBe("192.0.2.9");
      expect(seen.headers.get("x-forwarded-host")).toBe("edge.test");
      for (const claim of ["x-real-ip", "true-client-ip", "forwarded"]) expect(seen.headers.get(claim), claim).toBeNull();
    }
  });

  it("says \"the origin\" in 502 and 504 answers, never its address", async () => {
    const failing: OriginFetch = async () => {
      throw new Error(`connect ECONNREFUSED ${ORIGIN}`);
    };
    const { response, body } = await app(failing).fetchEdge(new Request(`${EDGE}/?cmd=heads`));
    expect(response.status).toBe(502);
    expect(new TextDecoder().decode(body)).toBe("hgedge: cannot reach the origin\n");
  });
});

describe("4. stats rows", () => {
  it("counts no repository the origin did not answer for", async () => {
    const origin = recordingOrigin(() => new Response("not found", { status: 404 }));
    const stub = env.STATS.get(env.STATS.idFromName("stats"));
    const { fetchEdge, settle } = app(origin.originFetch, { STATS: env.STATS, STATS_FLUSH_MS: "1", ACCESS: "public" });
    const made = `/made-up-${Date.now()}`;
    await fetchEdge(manifestRequest(`${made}${V2}/ro/manifestdata`));
    await fetchEdge(v2Request(`${made}-2${V2}/ro/heads`, "heads"));
    await fetchEdge(new Request(`${EDGE}${made}-3?cmd=capabilities`, { headers: { "x-hgupgrade-1": "exp-http-v2-0003", "x-hgproto-1": "cbor" } }));
    await settle();
    const rows = Object.keys(await stub.read());
    expect(rows.filter((repo) => repo.startsWith(made))).toEqual([]);
  });

  it(`keeps at most ${STATS_MAX_REPOSITORIES} rows and counts the rest as ${OTHER_REPOSITORIES}`, async () => {
    const stub = env.STATS.get(env.STATS.idFromName(`stats-cap-${Date.now()}`)) as DurableObjectStub<StatsCounter>;
    const batch = Object.fromEntries(Array.from({ length: STATS_MAX_REPOSITORIES + 50 }, (_, i) => [`/r${i}`, { ...emptyCounters(), misses: 1 }]));
    await stub.add(batch);
    await stub.add({ "/r0": { ...emptyCounters(), misses: 1 }, "/another": { ...emptyCounters(), hits: 2 } });
    const rows = await stub.read();
    expect(Object.keys(rows)).toHaveLength(STATS_MAX_REPOSITORIES + 1);
    expect(rows["/r0"]?.misses).toBe(2);
    expect(rows[OTHER_REPOSITORIES]).toMatchObject({ misses: 50, hits: 2 });
  });
});

describe("5. purge scope", () => {
  const purge = (body: unknown) =>
    app(recordingOrigin().originFetch, { ADMIN_TOKEN: TOKEN }).fetchEdge(
      new Request(`${EDGE}/.hgedge/admin/purge`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(body) }),
    );

  it.each([["/.bundles"], [""], ["/team/"], ["//team"], ["team"], ["/a/../b"], ["/.root"]])("refuses %j, which is not one repository", async (repo) => {
    const { response } = await purge({ repo });
    expect(response.status).toBe(400);
  });

  it("deletes one repository's objects, never a nested repository's or the clone bundles", async () => {
    const team = `scope-${Date.now()}`;
    const names = [`${team}/filesdata/k1`, `${team}/manifestdata/k2`, `${team}/project/filesdata/k3`, `${team}/filesdata/nested/manifestdata/k4`, `.bundles/${team}/current.json`];
    await Promise.all(names.map((name) => env.OBJECTS.put(name, "x")));
    const { response, body } = await purge({ repo: `/${team}` });
    expect(response.status).toBe(200);
    expect(JSON.parse(new TextDecoder().decode(body))).toMatchObject({ deleted: 2, more: false });
    const left = await Promise.all(names.map(async (name) => ((await env.OBJECTS.head(name)) ? name : undefined)));
    expect(left.filter(Boolean)).toEqual(names.slice(2));
  });
});

describe("suspected: a slow-reading client leading a fill", () => {
  it("cannot keep other fills from their slot: a fill past its grace and under the minimum pace gives it up", async () => {
    const recorded = await fixtureBytes("cmd-manifestdata/002-response.body");
    const origin = recordingOrigin(() => new Response(recorded, { headers: { "content-type": FRAMING } }));
    const hono = createApp({ originFetch: origin.originFetch });
    const environment = { ORIGIN_URL: ORIGIN, OBJECTS: env.OBJECTS, ACCESS: "public", CACHE_VERSION: `slow-${Date.now()}`, MIN_REDIRECT_BYTES: "0", FILL_CONCURRENCY: "1" } as Env;
    const warn = vi.spyOn(console, "warn");
    // The slow client: its answer's body is not read, so its fill does not move.
    const slow = await hono.fetch(manifestRequest(`/slow${V2}/ro/manifestdata`), environment);
    expect(slow.headers.get("x-hgedge-cache")).toBe("MISS");
    expect(slow.headers.get("x-hgedge-fill")).toBeNull();
    const now = Date.now();
    vi.spyOn(Date, "now").mockReturnValue(now + 31_000);
    const other = await hono.fetch(manifestRequest(`/other${V2}/ro/manifestdata`), environment);
    expect(other.headers.get("x-hgedge-cache")).toBe("MISS");
    expect(other.headers.get("x-hgedge-fill")).toBeNull(); // it got the slot
    expect(warn.mock.calls.map((c) => String(c[0])).some((line) => line.includes("cache-fill-preempted"))).toBe(true);
    // The slow client still gets the origin's whole answer, now unstored.
    expect(new Uint8Array(await slow.arrayBuffer())).toEqual(recorded);
    await other.arrayBuffer();
  });
});

describe("issue 14 items in these files", () => {
  it("refuses an empty framed v2 body at the edge (a stock origin answers it with a 500)", async () => {
    const origin = recordingOrigin();
    const request = new Request(`${EDGE}${V2}/ro/heads`, { method: "POST", headers: { accept: FRAMING, "content-type": FRAMING }, body: new Uint8Array(0) });
    const { response, body } = await app(origin.originFetch).fetchEdge(request);
    expect(response.status).toBe(200);
    expect(new TextDecoder().decode(body)).toMatch(/^hgedge: malformed request: /);
    expect(origin.seen).toEqual([]);
  });

  it("does not call an origin's error answer a MISS", async () => {
    const origin = recordingOrigin(() => new Response("Internal Server Error", { status: 500 }));
    const { response } = await app(origin.originFetch, { ACCESS: "public" }).fetchEdge(manifestRequest(`/errs${V2}/ro/manifestdata`));
    expect(response.status).toBe(500);
    expect(response.headers.get("x-hgedge-cache")).toBe("BYPASS");
  });

  it("logs a configuration that refuses the cache once per isolate, as a warning", async () => {
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    const error = vi.spyOn(console, "error").mockImplementation(() => undefined);
    const recorded = await fixtureBytes("cmd-manifestdata/002-response.body");
    const origin = recordingOrigin(() => new Response(recorded, { headers: { "content-type": FRAMING } }));
    const { fetchEdge } = app(origin.originFetch); // ACCESS=origin, no SIGNING_KEY
    for (let i = 0; i < 3; i++) await fetchEdge(manifestRequest(`/refused${V2}/ro/manifestdata`));
    const lines = [...log.mock.calls, ...warn.mock.calls, ...error.mock.calls].map((call) => String(call[0])).filter((line) => line.includes("cache-refused"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('"level":"warn"');
  });
});
