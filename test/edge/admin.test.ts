/**
 * The admin API: off without ADMIN_TOKEN, bearer-checked, and purge deleting a repository's (or
 * one command's) objects by prefix, in pages, PoP-cache copies included, with the local R2.
 */
import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Env } from "../../src/config.ts";
import { PURGE_MAX_OBJECTS } from "../../src/edge/admin.ts";
import { createApp } from "../../src/edge/app.ts";
import { deleteByPrefix, deleteByPrefixes } from "../../src/cache/purge.ts";
import { repositoryOfObject } from "../../src/cache/stats.ts";
import { edge, FRAMING, manifestRequest } from "../support/cacheapp.ts";
import { fixtureBytes } from "../support/fixtures.ts";

const EDGE = "http://edge.test";
const TOKEN = "t".repeat(40);

function adminEdge(vars: Partial<Record<keyof Env, string>> = { ADMIN_TOKEN: TOKEN }) {
  const app = createApp({ originFetch: async () => new Response("origin must not be asked", { status: 500 }) });
  const ctx = createExecutionContext();
  return (path: string, init: RequestInit = {}) =>
    app.fetch(new Request(`${EDGE}${path}`, init), { ORIGIN_URL: "http://origin.test", OBJECTS: env.OBJECTS, ACCESS: "public", ...vars } as Env, ctx);
}

const auth = (token = TOKEN) => ({ authorization: `Bearer ${token}` });
const post = (body: unknown, token = TOKEN): RequestInit => ({ method: "POST", headers: { ...auth(token), "content-type": "application/json" }, body: JSON.stringify(body) });

async function seed(names: string[]): Promise<void> {
  await Promise.all(names.map((name) => env.OBJECTS.put(name, `bytes of ${name}`)));
}

async function listed(prefix: string): Promise<string[]> {
  const names: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await env.OBJECTS.list({ prefix, ...(cursor ? { cursor } : {}) });
    names.push(...page.objects.map((o) => o.key));
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return names.sort();
}

describe("admin API access", () => {
  it("is off, and says how to turn it on, without ADMIN_TOKEN", async () => {
    const response = await adminEdge({})("/.hgedge/admin/purge", post({ repo: "/r" }));
    expect(response.status).toBe(404);
    expect(await response.text()).toContain("ADMIN_TOKEN");
  });

  it.each([
    ["no header", {}],
    ["another scheme", { authorization: `Basic ${TOKEN}` }],
    ["a wrong token", auth("u".repeat(40))],
    ["a prefix of the token", auth(TOKEN.slice(0, 39))],
    ["the token and more", auth(`${TOKEN}x`)],
  ])("refuses %s with 401 and a Bearer challenge", async (_, headers) => {
    const response = await adminEdge()("/.hgedge/admin/purge", { method: "POST", headers, body: "{}" });
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toMatch(/^Bearer /);
  });

  it("rejects a short ADMIN_TOKEN as a configuration error", async () => {
    const response = await adminEdge({ ADMIN_TOKEN: "short" })("/.hgedge/admin/purge", post({ repo: "/r" }, "short"));
    expect(response.status).toBe(500);
    expect(await response.text()).toContain("ADMIN_TOKEN: must be at least 32 characters");
  });

  it("answers 404 for an unknown action and 405 for the wrong method", async () => {
    const fetchAdmin = adminEdge();
    expect((await fetchAdmin("/.hgedge/admin/nothing", { headers: auth() })).status).toBe(404);
    const wrong = await fetchAdmin("/.hgedge/admin/purge", { headers: auth() });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("allow")).toBe("POST");
  });
});

describe("purge", () => {
  it("deletes one repository's objects and nothing else", async () => {
    await seed(["purge-a/x/filesdata/1", "purge-a/x/manifestdata/2", "purge-a/xy/filesdata/3", "purge-a/filesdata/4"]);
    const response = await adminEdge()("/.hgedge/admin/purge", post({ repo: "/purge-a/x" }));
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ deleted: 2, more: false, prefix: "purge-a/x/" });
    expect(await listed("purge-a/")).toEqual(["purge-a/filesdata/4", "purge-a/xy/filesdata/3"]);
  });

  it("deletes one command's objects when asked, and the root repository's as .root", async () => {
    await seed([".root/filesdata/1", ".root/filesdata/2", ".root/manifestdata/3"]);
    const response = await adminEdge()("/.hgedge/admin/purge", post({ repo: "/", command: "filesdata" }));
    expect(await response.json()).toMatchObject({ deleted: 2, prefix: ".root/filesdata/" });
    expect(await listed(".root/")).toEqual([".root/manifestdata/3"]);
  });

  it("drops the PoP-cache copy of a purged object", async () => {
    await seed(["purge-pop/filesdata/1"]);
    const key = new Request(`${EDGE}/.hgedge/objects/purge-pop/filesdata/1`);
    await caches.default.put(key, new Response("cached copy", { headers: { "cache-control": "max-age=3600" } }));
    expect(await caches.default.match(key)).toBeDefined();
    await adminEdge()("/.hgedge/admin/purge", post({ repo: "/purge-pop" }));
    expect(await caches.default.match(key)).toBeUndefined();
  });

  it.each([
    ["not JSON", "{", "JSON object"],
    ["no repo", { command: "filesdata" }, "\"repo\""],
    ["a bad command", { repo: "/r", command: "../x" }, "\"command\""],
  ])("refuses a body with %s", async (_, body, message) => {
    const init = typeof body === "string" ? { method: "POST", headers: auth(), body } : post(body);
    const response = await adminEdge()("/.hgedge/admin/purge", init);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toContain(message);
  });

  it("pages through more than one R2 page and stops at its cap, saying more remain", async () => {
    const names = Array.from({ length: 1205 }, (_, i) => `purge-many/filesdata/${String(i).padStart(5, "0")}`);
    for (let i = 0; i < names.length; i += 200) await seed(names.slice(i, i + 200));
    expect(await deleteByPrefix(env.OBJECTS, "purge-many/filesdata/", 1100)).toEqual({ deleted: 1100, more: true });
    expect(await listed("purge-many/")).toHaveLength(105);
    expect(await deleteByPrefix(env.OBJECTS, "purge-many/filesdata/", PURGE_MAX_OBJECTS)).toEqual({ deleted: 105, more: false });
    expect(await listed("purge-many/")).toEqual([]);
  });

  it("says more only when objects are left, also when a purge ends exactly at its cap", async () => {
    await seed(["purge-cap/filesdata/a", "purge-cap/filesdata/b", "purge-cap/manifestdata/c"]);
    const prefixes = ["purge-cap/filesdata/", "purge-cap/manifestdata/", "purge-cap/filedata/"];
    expect(await deleteByPrefixes(env.OBJECTS, prefixes, 2)).toEqual({ deleted: 2, more: true });
    expect(await deleteByPrefixes(env.OBJECTS, prefixes, 1)).toEqual({ deleted: 1, more: false });
    expect(await listed("purge-cap/")).toEqual([]);
  });
});

describe("stats", () => {
  it("reports objects and bytes stored per repository and the cache counters kept in STATS", async () => {
    const repo = `stats-${Date.now()}`;
    const recorded = await fixtureBytes("cmd-manifestdata/002-response.body");
    const originFetch = async () => new Response(recorded, { headers: { "content-type": FRAMING } });
    const vars = { ADMIN_TOKEN: TOKEN, STATS: env.STATS, STATS_FLUSH_MS: "10" };
    const { fetchEdge, settle } = edge(originFetch, vars);
    const send = async (request: Request) => (await fetchEdge(request)).arrayBuffer();
    const at = (r: Request) => new Request(r.url.replace("/repo/", `/${repo}/`), { method: r.method, headers: r.headers, body: r.body });
    await send(at(manifestRequest()));
    await settle();
    await send(at(manifestRequest()));
    await send(at(manifestRequest({ targets: ["hgedge"] })));
    await settle();

    const response = await fetchEdge(new Request(`${EDGE}/.hgedge/admin/stats?repo=/${repo}`, { headers: auth() }));
    expect(response.status).toBe(200);
    const body = (await response.json()) as { repositories: Record<string, { stored: { objects: number; bytes: number }; counters: Record<string, number> }> };
    const stored = await env.OBJECTS.list({ prefix: `${repo}/` });
    expect(body.repositories).toEqual({
      [`/${repo}`]: {
        stored: { objects: 1, bytes: stored.objects[0]?.size },
        counters: { misses: 1, hits: 1, redirects: 1, bypasses: 0, savedBytes: 2 * (stored.objects[0]?.size ?? 0) },
      },
    });
  });

  it("says counters are not kept without the STATS binding", async () => {
    const response = await adminEdge()("/.hgedge/admin/stats?repo=/nothing-here", { headers: auth() });
    expect(await response.json()).toMatchObject({ repositories: {}, counters: expect.stringContaining("STATS") });
  });

  it("names repositories as requests do", () => {
    expect(repositoryOfObject(".root/filesdata/k")).toBe("/");
    expect(repositoryOfObject("a/b/manifestdata/k")).toBe("/a/b");
    expect(repositoryOfObject(".bundles/a/x.hg")).toBe(".bundles");
  });
});
