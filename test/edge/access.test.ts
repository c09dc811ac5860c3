/**
 * The access matrix: nobody gets cached data the origin would refuse them. The scripted origin
 * lets `Basic good` read and refuses everyone else, as hgweb does with pull permission.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { signature } from "../../src/cache/signing.ts";
import type { Env } from "../../src/config.ts";
import { createApp } from "../../src/edge/app.ts";
import type { OriginFetch } from "../../src/origin/client.ts";
import { cborMap, mapGet, text, type CborMap } from "../../src/protocol/cbor.ts";
import { encodeRequestBody } from "../../src/protocol/requests.ts";
import { collectResponses } from "../../src/protocol/responses.ts";
import { fixtureBytes } from "../support/fixtures.ts";

const FRAMING = "application/mercurial-exp-framing-0006";
const SIGNING_KEY = "k".repeat(40);
let generation = 0;

function guardedOrigin(recorded: Uint8Array, allowed: Set<string>) {
  const calls: { path: string; auth: string | null }[] = [];
  const originFetch: OriginFetch = async (url, init) => {
    const auth = new Headers(init.headers).get("authorization");
    calls.push({ path: new URL(url).pathname + new URL(url).search, auth });
    if (!auth || !allowed.has(auth)) return new Response("permission denied", { status: 401, statusText: "authorization required" });
    if (new URL(url).search === "?cmd=capabilities") return new Response("capabilities", { headers: { "content-type": "application/mercurial-0.1" } });
    return new Response(recorded, { headers: { "content-type": FRAMING } });
  };
  return { calls, originFetch };
}

function edge(originFetch: OriginFetch, vars: Record<string, string> = {}) {
  const app = createApp({ originFetch });
  const environment = { ORIGIN_URL: "http://origin.test", OBJECTS: env.OBJECTS, CACHE_VERSION: `access-${Date.now()}-${generation++}`, MIN_REDIRECT_BYTES: "0", SIGNING_KEY, ...vars } as Env;
  return async (request: Request) => {
    const ctx = createExecutionContext();
    const response = await app.fetch(request, environment, ctx);
    const body = new Uint8Array(await response.arrayBuffer());
    await waitOnExecutionContext(ctx);
    return { response, body };
  };
}

function manifestRequest(auth?: string): Request {
  const body = encodeRequestBody(
    [{ name: "manifestdata", args: cborMap({ tree: new Uint8Array(0), nodes: [new Uint8Array(20).fill(9)] }), redirect: { targets: ["hgedge"], hashes: ["sha256", "sha1"] } }],
    ["identity"],
  );
  const headers: Record<string, string> = { accept: FRAMING, "content-type": FRAMING };
  if (auth) headers.authorization = auth;
  return new Request("http://edge.test/private/api/exp-http-v2-0003/ro/manifestdata", { method: "POST", headers, body });
}

function redirectUrl(body: Uint8Array): URL {
  const status = collectResponses(body).get(1)!.statusMap!;
  return new URL(text(mapGet(mapGet(status, "location") as CborMap, "url") as Uint8Array));
}

describe("ACCESS=origin", async () => {
  const recorded = await fixtureBytes("cmd-manifestdata/002-response.body");

  async function warmed(vars: Record<string, string> = {}) {
    const allowed = new Set(["Basic good"]);
    const origin = guardedOrigin(recorded, allowed);
    const fetchEdge = edge(origin.originFetch, vars);
    const cold = await fetchEdge(manifestRequest("Basic good"));
    expect(cold.response.headers.get("x-hgedge-cache")).toBe("MISS");
    return { origin, fetchEdge, allowed };
  }

  it("serves a reader the origin says yes to, with a signed URL that works", async () => {
    const { fetchEdge } = await warmed();
    const hit = await fetchEdge(manifestRequest("Basic good"));
    expect(hit.response.headers.get("x-hgedge-cache")).toBe("REDIRECT");
    const url = redirectUrl(hit.body);
    expect(url.pathname).toMatch(/^\/\.hgedge\/objects\/private\/manifestdata\/[0-9a-f]{64}$/);
    expect(url.searchParams.get("sig")).toMatch(/^[0-9a-f]{64}$/);
    const object = await fetchEdge(new Request(url));
    expect(object.response.status).toBe(200);
    expect(object.response.headers.get("cache-control")).toMatch(/^private, max-age=\d+$/);
    expect(object.body.length).toBeGreaterThan(0);
  });

  it.each([
    ["anonymous", undefined],
    ["wrong credentials", "Basic wrong"],
  ])("never answers %s clients from the cache: the origin's refusal reaches them", async (_name, auth) => {
    const { fetchEdge, origin } = await warmed();
    const before = origin.calls.length;
    const denied = await fetchEdge(manifestRequest(auth));
    expect(denied.response.status).toBe(401);
    // The origin's refusal is not a command answer: nothing was or could be stored (not a MISS).
    expect(denied.response.headers.get("x-hgedge-cache")).toBe("BYPASS");
    // hgedge asked the origin (capabilities), then forwarded the command itself.
    expect(origin.calls.slice(before).map((c) => c.path)).toEqual(["/private?cmd=capabilities", "/private/api/exp-http-v2-0003/ro/manifestdata"]);
  });

  it("remembers a yes for ACCESS_TTL, and notices a revocation once it expires", async () => {
    const remembered = await warmed({ ACCESS_TTL: "3600" });
    await remembered.fetchEdge(manifestRequest("Basic good"));
    const asked = remembered.origin.calls.length;
    expect((await remembered.fetchEdge(manifestRequest("Basic good"))).response.headers.get("x-hgedge-cache")).toBe("REDIRECT");
    expect(remembered.origin.calls.length).toBe(asked);

    const revocable = await warmed({ ACCESS_TTL: "0" });
    expect((await revocable.fetchEdge(manifestRequest("Basic good"))).response.headers.get("x-hgedge-cache")).toBe("REDIRECT");
    revocable.allowed.delete("Basic good");
    const revoked = await revocable.fetchEdge(manifestRequest("Basic good"));
    expect(revoked.response.status).toBe(401);
  });

  it("refuses unsigned, tampered, expired and replayed-after-expiry object URLs, with no bytes", async () => {
    const { fetchEdge } = await warmed();
    const good = redirectUrl((await fetchEdge(manifestRequest("Basic good"))).body);
    const name = decodeURIComponent(good.pathname.slice("/.hgedge/objects/".length));
    const variants: [string, URL][] = [];
    const unsigned = new URL(good);
    unsigned.search = "";
    variants.push(["unsigned", unsigned]);
    const tamperedSig = new URL(good);
    tamperedSig.searchParams.set("sig", "0".repeat(64));
    variants.push(["tampered signature", tamperedSig]);
    const longer = new URL(good);
    longer.searchParams.set("expires", String(Number(good.searchParams.get("expires")) + 3600));
    variants.push(["extended expiry", longer]);
    const otherObject = new URL(good);
    otherObject.pathname = good.pathname.replace(/[0-9a-f]{64}$/, "f".repeat(64));
    variants.push(["another object", otherObject]);
    const past = Math.floor(Date.now() / 1000) - 10;
    const expired = new URL(good);
    expired.searchParams.set("expires", String(past));
    expired.searchParams.set("sig", await signature(SIGNING_KEY, name, past));
    variants.push(["expired (genuinely signed)", expired]);
    for (const [label, url] of variants) {
      const { response, body } = await fetchEdge(new Request(url));
      expect(response.status, label).toBe(403);
      expect(new TextDecoder().decode(body), label).toMatch(/^hgedge: /);
      expect(response.headers.get("content-type"), label).toMatch(/^text\/plain/);
    }
  });

  it("refuses to serve cached data without SIGNING_KEY, and says why", async () => {
    const origin = guardedOrigin(recorded, new Set(["Basic good"]));
    const fetchEdge = edge(origin.originFetch, { SIGNING_KEY: "" });
    for (let i = 0; i < 2; i++) {
      expect((await fetchEdge(manifestRequest("Basic good"))).response.headers.get("x-hgedge-cache")).toBe("BYPASS");
    }
    const route = await fetchEdge(new Request(`http://edge.test/.hgedge/objects/private/manifestdata/${"a".repeat(64)}`));
    expect(route.response.status).toBe(503);
    expect(new TextDecoder().decode(route.body)).toMatch(/SIGNING_KEY is not set/);
  });
});

describe("ACCESS=public", async () => {
  const recorded = await fixtureBytes("cmd-manifestdata/002-response.body");

  it("serves anyone, on unsigned URLs", async () => {
    const origin = guardedOrigin(recorded, new Set(["Basic good"]));
    const fetchEdge = edge(origin.originFetch, { ACCESS: "public", SIGNING_KEY: "" });
    await fetchEdge(manifestRequest("Basic good"));
    const hit = await fetchEdge(manifestRequest());
    expect(hit.response.headers.get("x-hgedge-cache")).toBe("REDIRECT");
    const url = redirectUrl(hit.body);
    expect(url.search).toBe("");
    const object = await fetchEdge(new Request(url));
    expect(object.response.status).toBe(200);
    expect(object.response.headers.get("cache-control")).toMatch(/^public, max-age=31536000, immutable/);
  });
});

