/**
 * The cache behind a cacheable v2 command, end to end through the app with the local R2:
 * miss → filled; hit → redirect (no origin, no R2 read) or inline; nothing stored on failure.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Env } from "../../src/config.ts";
import { createApp } from "../../src/edge/app.ts";
import type { OriginFetch } from "../../src/origin/client.ts";
import { cborMap, mapGet, text, type CborMap } from "../../src/protocol/cbor.ts";
import { parseFrames } from "../../src/protocol/frames.ts";
import { encodeRequestBody } from "../../src/protocol/requests.ts";
import { collectResponses, encodeCommandError } from "../../src/protocol/responses.ts";
import { fixtureBytes } from "../support/fixtures.ts";
import { EDGE, edge, FRAMING, manifestRequest } from "../support/cacheapp.ts";

/** A scripted origin answering every request with `body`, counting calls. */
function origin(body: Uint8Array, status = 200) {
  const calls: string[] = [];
  const originFetch: OriginFetch = async (url) => {
    calls.push(url);
    return new Response(body, { status, headers: { "content-type": FRAMING } });
  };
  return { calls, originFetch };
}

const recorded = fixtureBytes("cmd-manifestdata/002-response.body");
const bodyOf = async (r: Response) => new Uint8Array(await r.arrayBuffer());

async function warm(fetchEdge: (r: Request) => Promise<Response>, settle: () => Promise<void>) {
  const miss = await fetchEdge(manifestRequest());
  const received = await bodyOf(miss);
  await settle();
  return { miss, received };
}

describe("cacheable v2 commands", () => {
  it("fills on a miss, then redirects without asking the origin", async () => {
    const upstream = origin(await recorded);
    const { fetchEdge, settle } = edge(upstream.originFetch);
    const { miss, received } = await warm(fetchEdge, settle);
    expect(miss.headers.get("x-hgedge-cache")).toBe("MISS");
    expect(received).toEqual(await recorded);

    const hit = await fetchEdge(manifestRequest({ targets: ["hgedge"] }));
    expect(hit.headers.get("x-hgedge-cache")).toBe("REDIRECT");
    expect(upstream.calls).toHaveLength(1);
    const frames = parseFrames(await bodyOf(hit));
    expect(frames).toHaveLength(1);
    expect(frames[0]).toMatchObject({ requestId: 1, streamId: 2, streamFlags: 1, typeId: 3, flags: 2 });
    const status = collectResponses(await bodyOf(await fetchEdge(manifestRequest({ targets: ["hgedge"] })))).get(1)!.statusMap!;
    const location = mapGet(status, "location") as CborMap;
    expect(text(mapGet(location, "url") as Uint8Array)).toMatch(/^http:\/\/edge\.test\/\.hgedge\/objects\/repo\/manifestdata\/[0-9a-f]{64}$/);
    expect(text(mapGet(location, "mediatype") as Uint8Array)).toBe("application/mercurial-cbor");
    expect(mapGet(location, "fullhashes")).toBeUndefined();

    // What the redirect points at is exactly the bytes after the status map.
    const name = text(mapGet(location, "url") as Uint8Array).split("/.hgedge/objects/")[1]!;
    const object = await env.OBJECTS.get(name);
    const inline = collectResponses(await recorded).get(1)!;
    expect(mapGet(location, "size")).toBe(object?.size);
    expect(collectResponses(await bodyOf(await fetchEdge(manifestRequest()))).get(1)?.objects).toEqual(inline.objects);
  });

  it.each([
    ["no redirect map", {}],
    ["an empty target list", { targets: [] }],
    ["only targets we do not serve", { targets: ["elsewhere"] }],
  ])("answers inline from R2 when the client sends %s", async (_name, options) => {
    const upstream = origin(await recorded);
    const { fetchEdge, settle } = edge(upstream.originFetch);
    await warm(fetchEdge, settle);
    for (const encodings of [["identity"], ["zstd-8mb", "zlib", "identity"]]) {
      const hit = await fetchEdge(manifestRequest({ ...options, encodings }));
      expect(hit.headers.get("x-hgedge-cache")).toBe("HIT");
      const result = collectResponses(await bodyOf(hit)).get(1);
      expect(result?.status).toBe("ok");
      expect(result?.objects).toEqual(collectResponses(await recorded).get(1)?.objects);
    }
    expect(upstream.calls).toHaveLength(1);
  });

  it("answers small objects inline even to clients that accept a redirect", async () => {
    const upstream = origin(await recorded);
    const { fetchEdge, settle } = edge(upstream.originFetch, { MIN_REDIRECT_BYTES: "1000000" });
    await warm(fetchEdge, settle);
    expect((await fetchEdge(manifestRequest({ targets: ["hgedge"] }))).headers.get("x-hgedge-cache")).toBe("HIT");
  });

  it("points redirects at PUBLIC_OBJECTS_URL, with full hashes when asked to", async () => {
    const upstream = origin(await recorded);
    const { fetchEdge, settle } = edge(upstream.originFetch, { PUBLIC_OBJECTS_URL: "https://objects.example/", REDIRECT_FULLHASHES: "true" });
    await warm(fetchEdge, settle);
    const status = collectResponses(await bodyOf(await fetchEdge(manifestRequest({ targets: ["hgedge"] })))).get(1)!.statusMap!;
    const location = mapGet(status, "location") as CborMap;
    expect(text(mapGet(location, "url") as Uint8Array)).toMatch(/^https:\/\/objects\.example\/repo\/manifestdata\/[0-9a-f]{64}$/);
    const hashes = (mapGet(location, "fullhashes") as Uint8Array[][]).map(([name, digest]) => [text(name!), digest!.length]);
    expect(hashes).toEqual([["sha256", 32], ["sha1", 20]]);
  });

  it("stores nothing when the origin answers with an error, and asks it again next time", async () => {
    const upstream = origin(encodeCommandError(1, "unknown node: %s", ["01"]));
    const { fetchEdge, settle } = edge(upstream.originFetch);
    for (let i = 0; i < 2; i++) {
      const response = await fetchEdge(manifestRequest({ targets: ["hgedge"] }));
      expect(response.headers.get("x-hgedge-cache")).toBe("MISS");
      expect(collectResponses(await bodyOf(response)).get(1)?.status).toBe("error");
      await settle();
    }
    expect(upstream.calls).toHaveLength(2);
  });

  it("bypasses the cache unless ACCESS=public (origin authorization is not there yet)", async () => {
    const upstream = origin(await recorded);
    const { fetchEdge, settle } = edge(upstream.originFetch, { ACCESS: "origin" });
    for (let i = 0; i < 2; i++) {
      expect((await fetchEdge(manifestRequest({ targets: ["hgedge"] }))).headers.get("x-hgedge-cache")).toBe("BYPASS");
      await settle();
    }
    expect(upstream.calls).toHaveLength(2);
  });

  it("stores at most FILL_CONCURRENCY responses at once, and one object only once", async () => {
    const upstream = origin(await recorded);
    const app = createApp({ originFetch: upstream.originFetch });
    const ctx = createExecutionContext();
    const vars = { ORIGIN_URL: "http://origin.test", OBJECTS: env.OBJECTS, ACCESS: "public", CACHE_VERSION: `cap-${Date.now()}`, MIN_REDIRECT_BYTES: "0", FILL_CONCURRENCY: "1" } as Env;
    const send = (request: Request) => app.fetch(request, vars, ctx);
    // The first fill stays open while its body is unread; the second miss for the same object
    // and a miss for another object are both answered without storing.
    const first = await send(manifestRequest());
    const same = await send(manifestRequest());
    const other = await send(
      new Request(`${EDGE}/other/api/exp-http-v2-0003/ro/manifestdata`, { method: "POST", headers: manifestRequest().headers, body: await manifestRequest().arrayBuffer() }),
    );
    for (const r of [first, same, other]) expect(r.headers.get("x-hgedge-cache")).toBe("MISS");
    // Only the answers that are not being stored say so (a pre-warmer counts on it).
    expect([first, same, other].map((r) => r.headers.get("x-hgedge-fill"))).toEqual([null, "skipped", "skipped"]);
    await Promise.all([bodyOf(same), bodyOf(other), bodyOf(first)]);
    await waitOnExecutionContext(ctx);
    const listed = await env.OBJECTS.list({ prefix: "" });
    const ours = listed.objects.filter((o) => o.key.includes("/manifestdata/")).length;
    expect(ours).toBeGreaterThan(0);
    // One stored object for /repo; none for /other, which was skipped while /repo filled.
    expect((await bodyOf(await send(manifestRequest()))).length).toBeGreaterThan(0);
    const again = await send(
      new Request(`${EDGE}/other/api/exp-http-v2-0003/ro/manifestdata`, { method: "POST", headers: manifestRequest().headers, body: await manifestRequest().arrayBuffer() }),
    );
    expect(again.headers.get("x-hgedge-cache")).toBe("MISS");
    await bodyOf(again);
    await waitOnExecutionContext(ctx);
    expect(upstream.calls).toHaveLength(4);
  });

  it("forgets a fill whose client vanished without a word once it has been idle for ORIGIN_IDLE_TIMEOUT_MS", async () => {
    const upstream = origin(await recorded);
    const app = createApp({ originFetch: upstream.originFetch });
    const ctx = createExecutionContext();
    const vars = { ORIGIN_URL: "http://origin.test", OBJECTS: env.OBJECTS, ACCESS: "public", CACHE_VERSION: `idle-${Date.now()}`, FILL_CONCURRENCY: "1", ORIGIN_IDLE_TIMEOUT_MS: "50" } as Env;
    const send = (request: Request) => app.fetch(request, vars, ctx);
    const other = async () =>
      send(new Request(`${EDGE}/other/api/exp-http-v2-0003/ro/manifestdata`, { method: "POST", headers: manifestRequest().headers, body: await manifestRequest().arrayBuffer() }));
    // A fill whose body nobody reads and nobody cancels: what a dropped request leaves behind.
    const abandoned = await send(manifestRequest());
    expect(abandoned.headers.get("x-hgedge-fill")).toBeNull();
    const blocked = await other();
    expect(blocked.headers.get("x-hgedge-fill")).toBe("skipped");
    await bodyOf(blocked);
    await new Promise((resolve) => setTimeout(resolve, 120));
    const freed = await other();
    expect(freed.headers.get("x-hgedge-cache")).toBe("MISS");
    expect(freed.headers.get("x-hgedge-fill")).toBeNull();
    await bodyOf(freed);
    await abandoned.body?.cancel();
  });

  it("bypasses what it does not understand", async () => {
    const upstream = origin(await recorded);
    const { fetchEdge, settle } = edge(upstream.originFetch);
    const request = (args: CborMap) =>
      new Request(`${EDGE}/repo/api/exp-http-v2-0003/ro/manifestdata`, {
        method: "POST",
        headers: { accept: FRAMING, "content-type": FRAMING },
        body: encodeRequestBody([{ name: "manifestdata", args }]),
      });
    const unknownArg = await fetchEdge(request(cborMap({ tree: new Uint8Array(0), nodes: [], bogus: true })));
    expect(unknownArg.headers.get("x-hgedge-cache")).toBe("BYPASS");
    await settle();
    const missingArg = await fetchEdge(request(cborMap({ nodes: [] })));
    expect(missingArg.headers.get("x-hgedge-cache")).toBe("BYPASS");
  });
});
