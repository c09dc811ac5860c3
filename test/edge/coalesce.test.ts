/**
 * Single-flight of concurrent misses through the COALESCER Durable Object (the real local
 * implementation): many clients missing one object at once cause one origin fill, the others
 * are answered from R2; a failed leader is replaced; a wait that runs out falls back to the
 * origin; without the binding every miss asks the origin, as before.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { OriginFetch } from "../../src/origin/client.ts";
import { collectResponses } from "../../src/protocol/responses.ts";
import { edge, FRAMING, manifestRequest } from "../support/cacheapp.ts";
import { fixtureBytes } from "../support/fixtures.ts";

const recorded = fixtureBytes("cmd-manifestdata/002-response.body");
const CLIENTS = 50;

/**
 * An origin whose answers are scripted per call; each answer is held until `release()` so that
 * every client's request is in flight before the first fill can end.
 */
function heldOrigin(answer: (call: number) => Promise<Response> | Response) {
  let calls = 0;
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const originFetch: OriginFetch = async () => {
    const call = ++calls;
    if (call === 1) await released;
    return answer(call);
  };
  return { originFetch, release, calls: () => calls };
}

const ok = async () => new Response(await recorded, { headers: { "content-type": FRAMING } });

/** Sends `count` identical requests at once; each client reads its whole answer as it comes. */
async function clients(fetchEdge: (r: Request) => Promise<Response>, count: number, targets?: string[]) {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const response = await fetchEdge(manifestRequest(targets ? { targets } : {}));
      const body = new Uint8Array(await response.arrayBuffer());
      return { cache: response.headers.get("x-hgedge-cache"), body };
    }),
  );
}

/** Lets every request reach the Durable Object before the held origin answers. */
const settleIn = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("single-flight of concurrent misses", () => {
  it(`fills once for ${CLIENTS} concurrent misses, and answers the others from R2`, async () => {
    const upstream = heldOrigin(ok);
    const { fetchEdge, settle } = edge(upstream.originFetch, { COALESCER: env.COALESCER });
    const answers = clients(fetchEdge, CLIENTS);
    await settleIn(200);
    upstream.release();
    const results = await answers;
    await settle();
    expect(upstream.calls()).toBe(1);
    const outcomes = results.map((r) => r.cache).sort();
    expect(outcomes.filter((c) => c === "MISS")).toHaveLength(1);
    expect(outcomes.filter((c) => c === "HIT")).toHaveLength(CLIENTS - 1);
    const expected = collectResponses(await recorded).get(1)?.objects;
    for (const { body } of results) expect(collectResponses(body).get(1)?.objects).toEqual(expected);
  });

  it("answers followers that accept a redirect with a redirect", async () => {
    const upstream = heldOrigin(ok);
    const { fetchEdge, settle } = edge(upstream.originFetch, { COALESCER: env.COALESCER });
    const answers = clients(fetchEdge, 5, ["hgedge"]);
    await settleIn(100);
    upstream.release();
    const outcomes = (await answers).map((r) => r.cache).sort();
    await settle();
    expect(outcomes).toEqual(["MISS", "REDIRECT", "REDIRECT", "REDIRECT", "REDIRECT"]);
    expect(upstream.calls()).toBe(1);
  });

  it("replaces a leader whose fill failed: the next one fills, the rest still wait", async () => {
    const upstream = heldOrigin((call) => (call === 1 ? new Response("origin trouble", { status: 500 }) : ok()));
    const { fetchEdge, settle } = edge(upstream.originFetch, { COALESCER: env.COALESCER });
    const answers = clients(fetchEdge, 10);
    await settleIn(100);
    upstream.release();
    const outcomes = (await answers).map((r) => r.cache);
    await settle();
    expect(upstream.calls()).toBe(2);
    // The failed leader's client got the origin's 500 (a BYPASS: nothing stored), the next leader filled.
    expect(outcomes.filter((c) => c === "BYPASS")).toHaveLength(1);
    expect(outcomes.filter((c) => c === "MISS")).toHaveLength(1);
    expect(outcomes.filter((c) => c === "HIT")).toHaveLength(8);
  });

  it("sends followers to the origin, without storing, when the leader takes longer than COALESCE_WAIT_MS", async () => {
    const upstream = heldOrigin(ok);
    const { fetchEdge, settle } = edge(upstream.originFetch, { COALESCER: env.COALESCER, COALESCE_WAIT_MS: "100" });
    const answers = clients(fetchEdge, 4);
    // The followers give up after 100 ms and are answered by the origin (calls 2-4) while the
    // leader's own origin answer is still held.
    while (upstream.calls() < 4) await settleIn(20);
    upstream.release();
    const outcomes = (await answers).map((r) => r.cache);
    await settle();
    expect(outcomes).toEqual(["MISS", "MISS", "MISS", "MISS"]);
    expect(upstream.calls()).toBe(4);
  });

  it("asks the origin for every concurrent miss without the binding, as before", async () => {
    const upstream = heldOrigin(ok);
    const { fetchEdge, settle } = edge(upstream.originFetch);
    const answers = clients(fetchEdge, 3);
    await settleIn(100);
    upstream.release();
    await answers;
    await settle();
    expect(upstream.calls()).toBe(3);
  });
});

describe("Coalescer Durable Object", () => {
  const stub = (name: string) => env.COALESCER.get(env.COALESCER.idFromName(name));

  it("elects one leader and tells the followers how the fill ended", async () => {
    const flight = stub(`outcome-${Date.now()}`);
    const leader = await flight.join(10_000, 10_000);
    expect(leader.role).toBe("leader");
    const follower = flight.join(10_000, 10_000);
    await settleIn(50);
    await flight.settle((leader as { lease: string }).lease, true);
    expect(await follower).toEqual({ role: "follower", outcome: "committed" });
    // The flight is over: the next miss (the object is in R2 by now, or was purged) leads again.
    expect((await flight.join(10_000, 10_000)).role).toBe("leader");
  });

  it("ignores a replaced leader's late report, and replaces a leader whose lease ran out", async () => {
    const flight = stub(`lease-${Date.now()}`);
    const first = (await flight.join(50, 10_000)) as { lease: string };
    await settleIn(80);
    const second = (await flight.join(10_000, 10_000)) as { role: string; lease: string };
    expect(second.role).toBe("leader");
    const follower = flight.join(10_000, 10_000);
    await flight.settle(first.lease, false);
    await settleIn(50);
    await flight.settle(second.lease, true);
    expect(await follower).toEqual({ role: "follower", outcome: "committed" });
  });

  it("ends a follower's wait when the leader's lease runs out", async () => {
    const flight = stub(`expiry-${Date.now()}`);
    await flight.join(100, 10_000);
    expect(await flight.join(10_000, 10_000)).toEqual({ role: "follower", outcome: "timeout" });
  });
});
