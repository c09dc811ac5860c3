/**
 * Choosing the redirect target through the app, inside workerd: the client's place comes from
 * scripted `request.cf` properties, target health from scripted probes, time from a clock moved
 * by hand. The cache is the local R2, filled by a scripted origin.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import type { Env } from "../../src/config.ts";
import { createApp } from "../../src/edge/app.ts";
import type { OriginFetch } from "../../src/origin/client.ts";
import type { ProbeFetch } from "../../src/cache/health.ts";
import { advertisedTargets } from "../../src/protocol/capabilities.ts";
import { bytes, cborMap, decodeOne, mapGet, text, type CborMap } from "../../src/protocol/cbor.ts";
import { encodeRequestBody } from "../../src/protocol/requests.ts";
import { collectResponses } from "../../src/protocol/responses.ts";
import { exchanges, fixtureBytes } from "../support/fixtures.ts";

const EDGE = "http://edge.test";
const FRAMING = "application/mercurial-exp-framing-0006";
const NAMES = ["r2-us", "r2-eu", "r2-de"];
const TARGETS = JSON.stringify(NAMES.map((name) => ({ name, protocol: "https", uris: [`https://${name}.hg.test/`], tlsversions: ["1.2", "1.3"] })));
/** Each target an R2 custom domain serving the bucket. */
const OBJECT_URLS = JSON.stringify(Object.fromEntries(NAMES.map((name) => [name, `https://${name}.objects.test/`])));
const REGIONS = JSON.stringify({ countries: { DE: ["r2-de"] }, continents: { EU: ["r2-eu"], NA: ["r2-us"] } });
const RETRY_SECONDS = 30;
let generation = 0;

/** Target hosts that answer probes with whatever `status` says for them (a thrown error: unreachable). */
function scriptedTargets() {
  const probed: string[] = [];
  const status = new Map<string, number | Error>();
  const probeFetch: ProbeFetch = async (url, init) => {
    expect(init.method).toBe("HEAD");
    const host = new URL(url).hostname;
    probed.push(host);
    const answer = status.get(host) ?? 404;
    if (answer instanceof Error) throw answer;
    return new Response(null, { status: answer });
  };
  return { probed, status, probeFetch };
}

function edge(options: { vars?: Partial<Record<keyof Env, string>>; originFetch?: OriginFetch } = {}) {
  const recorded = fixtureBytes("cmd-manifestdata/002-response.body");
  const originCalls: string[] = [];
  const originFetch: OriginFetch =
    options.originFetch ??
    (async (url) => {
      originCalls.push(url);
      return new Response(await recorded, { headers: { "content-type": FRAMING } });
    });
  const targets = scriptedTargets();
  let now = 1_700_000_000_000;
  const app = createApp({ originFetch, probeFetch: targets.probeFetch, clock: () => now });
  const ctx = createExecutionContext();
  const vars = {
    ORIGIN_URL: "http://origin.test",
    OBJECTS: env.OBJECTS,
    ACCESS: "public",
    CACHE_VERSION: `targets-${Date.now()}-${generation++}`,
    MIN_REDIRECT_BYTES: "0",
    REDIRECT_TARGETS: TARGETS,
    TARGET_OBJECT_URLS: OBJECT_URLS,
    TARGET_REGIONS: REGIONS,
    TARGET_RETRY_SECONDS: String(RETRY_SECONDS),
    ...options.vars,
  };
  const fetchEdge = (request: Request) => app.fetch(request, vars as unknown as Env, ctx);
  const settle = () => waitOnExecutionContext(ctx);
  return { fetchEdge, settle, targets, originCalls, advance: (seconds: number) => (now += seconds * 1000) };
}

/** A manifestdata request from a 5.x client that accepts `accepted`, from where `cf` says. */
function manifestRequest(accepted: string[] | undefined, cf?: { continent?: string; country?: string }, url = EDGE): Request {
  const body = encodeRequestBody(
    [
      {
        name: "manifestdata",
        args: cborMap({ tree: new Uint8Array(0), nodes: [new Uint8Array(20).fill(1)], fields: new Set([bytes("revision")]) }),
        ...(accepted ? { redirect: { targets: accepted, hashes: ["sha256", "sha1"] } } : {}),
      },
    ],
    ["identity"],
  );
  return new Request(`${url}/repo/api/exp-http-v2-0003/ro/manifestdata`, {
    method: "POST",
    headers: { accept: FRAMING, "content-type": FRAMING },
    body,
    ...(cf ? { cf } : {}),
  });
}

type Edge = ReturnType<typeof edge>;

/** Where the edge sent this client: the redirect URL's host, or "inline". */
async function answerFor(e: Edge, accepted: string[] | undefined, cf?: { continent?: string; country?: string }): Promise<string> {
  const response = await e.fetchEdge(manifestRequest(accepted, cf));
  const result = collectResponses(new Uint8Array(await response.arrayBuffer())).get(1)!;
  await e.settle();
  if (response.headers.get("x-hgedge-cache") === "HIT") {
    expect(result.status).toBe("ok");
    expect(result.objects.length).toBeGreaterThan(0);
    return "inline";
  }
  expect(response.headers.get("x-hgedge-cache")).toBe("REDIRECT");
  const url = text(mapGet(mapGet(result.statusMap!, "location") as CborMap, "url") as Uint8Array);
  expect(url).toMatch(/^https:\/\/[a-z0-9-]+\.objects\.test\/repo\/manifestdata\/[0-9a-f]{64}$/);
  return new URL(url).hostname.replace(".objects.test", "");
}

async function warmed(options: Parameters<typeof edge>[0] = {}): Promise<Edge> {
  const e = edge(options);
  const miss = await e.fetchEdge(manifestRequest(undefined));
  expect(miss.headers.get("x-hgedge-cache")).toBe("MISS");
  await miss.arrayBuffer();
  await e.settle();
  return e;
}

describe("choosing the redirect target", () => {
  it("sends each client to the target of its country, else its continent, else the first configured", async () => {
    const e = await warmed();
    expect(await answerFor(e, NAMES, { continent: "EU", country: "DE" })).toBe("r2-de");
    expect(await answerFor(e, NAMES, { continent: "EU", country: "FR" })).toBe("r2-eu");
    expect(await answerFor(e, NAMES, { continent: "NA", country: "CA" })).toBe("r2-us");
    expect(await answerFor(e, NAMES, { continent: "AS", country: "JP" })).toBe("r2-us");
    expect(await answerFor(e, NAMES)).toBe("r2-us"); // no cf: a local run
    // Never a target the client did not accept.
    expect(await answerFor(e, ["r2-us", "r2-eu"], { continent: "EU", country: "DE" })).toBe("r2-eu");
    expect(await answerFor(e, [], { continent: "EU", country: "DE" })).toBe("inline");
    expect(e.originCalls).toHaveLength(1);
  });

  it("probes the targets a client accepts in the background, at most once per retry period", async () => {
    const e = await warmed();
    await answerFor(e, NAMES, { continent: "EU", country: "DE" });
    expect(e.targets.probed.sort()).toEqual(["r2-de.objects.test", "r2-eu.objects.test", "r2-us.objects.test"]);
    await answerFor(e, NAMES, { continent: "EU", country: "FR" });
    expect(e.targets.probed).toHaveLength(3);
    e.advance(RETRY_SECONDS);
    await answerFor(e, ["r2-de"], { continent: "EU", country: "DE" });
    expect(e.targets.probed).toHaveLength(4);
  });

  it("skips a target whose probe failed, and tries it again after TARGET_RETRY_SECONDS", async () => {
    const e = await warmed();
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    try {
      e.targets.status.set("r2-de.objects.test", 503);
      const de = { continent: "EU", country: "DE" };
      // Presumed healthy until the first probe (which this request starts) says otherwise.
      expect(await answerFor(e, NAMES, de)).toBe("r2-de");
      expect(await answerFor(e, NAMES, de)).toBe("r2-eu");
      const events = warn.mock.calls.map(([line]) => JSON.parse(line as string)).filter((l) => l.event === "target-down");
      expect(events).toEqual([{ level: "warn", event: "target-down", target: "r2-de", url: "https://r2-de.objects.test/", reason: "HTTP 503", retrySeconds: RETRY_SECONDS }]);
      e.advance(RETRY_SECONDS - 1);
      expect(await answerFor(e, NAMES, de)).toBe("r2-eu");
      e.targets.status.delete("r2-de.objects.test");
      e.advance(1);
      expect(await answerFor(e, NAMES, de)).toBe("r2-de");
      expect(await answerFor(e, NAMES, de)).toBe("r2-de");
    } finally {
      warn.mockRestore();
    }
  });

  it("answers inline from R2 when every target the client accepts is down", async () => {
    const e = await warmed();
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    try {
      e.targets.status.set("r2-de.objects.test", new TypeError("connection refused") as never);
      e.targets.status.set("r2-eu.objects.test", 502);
      await answerFor(e, ["r2-de", "r2-eu"], { continent: "EU", country: "DE" });
      expect(await answerFor(e, ["r2-de", "r2-eu"], { continent: "EU", country: "DE" })).toBe("inline");
      // A client that also accepts a healthy target goes there instead.
      expect(await answerFor(e, NAMES, { continent: "EU", country: "DE" })).toBe("r2-us");
      expect(e.originCalls).toHaveLength(1);
    } finally {
      warn.mockRestore();
    }
  });

  it("signs redirects to another hgedge host's content route when repositories are private, and that route serves them", async () => {
    const recorded = await fixtureBytes("cmd-manifestdata/002-response.body");
    const originFetch: OriginFetch = async (url) =>
      url.includes("cmd=capabilities")
        ? new Response("capabilities", { headers: { "content-type": "application/mercurial-0.1" } })
        : new Response(recorded, { headers: { "content-type": FRAMING } });
    const e = await warmed({
      originFetch,
      vars: { ACCESS: "origin", SIGNING_KEY: "k".repeat(32), TARGET_OBJECT_URLS: JSON.stringify({ "r2-eu": "http://eu.edge.test/.hgedge/objects/" }) },
    });
    const response = await e.fetchEdge(manifestRequest(NAMES, { continent: "EU", country: "FR" }));
    expect(response.headers.get("x-hgedge-cache")).toBe("REDIRECT");
    const status = collectResponses(new Uint8Array(await response.arrayBuffer())).get(1)!.statusMap!;
    const url = new URL(text(mapGet(mapGet(status, "location") as CborMap, "url") as Uint8Array));
    expect(url.origin + url.pathname).toMatch(/^http:\/\/eu\.edge\.test\/\.hgedge\/objects\/repo\/manifestdata\/[0-9a-f]{64}$/);
    expect(url.searchParams.get("sig")).toMatch(/^[0-9a-f]{64}$/);
    const object = await e.fetchEdge(new Request(url.href));
    expect(object.status).toBe(200);
    expect((await object.arrayBuffer()).byteLength).toBeGreaterThan(0);
    // A target without an entry keeps the content route of the edge the client asked.
    const us = await e.fetchEdge(manifestRequest(["r2-us"], { continent: "NA" }));
    const usStatus = collectResponses(new Uint8Array(await us.arrayBuffer())).get(1)!.statusMap!;
    expect(text(mapGet(mapGet(usStatus, "location") as CborMap, "url") as Uint8Array)).toMatch(/^http:\/\/edge\.test\/\.hgedge\/objects\//);
  });

  it("still advertises every target, in configured order, wherever the client is", async () => {
    const [, upgrade] = await exchanges("v1-handshake");
    const headers = new Headers();
    for (const [name, value] of upgrade!.meta.response_headers as [string, string][]) {
      if (name.toLowerCase() !== "transfer-encoding") headers.append(name, value);
    }
    const e = edge({ originFetch: async () => new Response(upgrade!.response, { status: 200, headers }) });
    const requestHeaders = new Headers();
    for (const [name, value] of upgrade!.meta.request_headers as [string, string][]) {
      if (!["host", "content-length", "transfer-encoding"].includes(name.toLowerCase())) requestHeaders.append(name, value);
    }
    for (const cf of [{ continent: "EU", country: "DE" }, { continent: "NA", country: "US" }, undefined]) {
      const response = await e.fetchEdge(new Request(`${EDGE}${upgrade!.meta.target}`, { headers: requestHeaders, ...(cf ? { cf } : {}) }));
      const descriptor = mapGet(mapGet(decodeOne(new Uint8Array(await response.arrayBuffer())) as CborMap, "apis") as CborMap, "exp-http-v2-0003") as CborMap;
      expect(advertisedTargets(descriptor)).toEqual(NAMES);
      // The object URLs are hgedge's business, not part of what clients are told.
      const advertised = mapGet(mapGet(descriptor, "redirect") as CborMap, "targets") as CborMap[];
      expect(advertised.map((t) => [...t.keys()].map((k) => text(k as Uint8Array)).sort())).toEqual(NAMES.map(() => ["name", "protocol", "tlsversions", "uris"]));
    }
  });

  it("refuses a region map naming a target that is not configured, saying which", async () => {
    const e = edge({ vars: { TARGET_REGIONS: JSON.stringify({ continents: { EU: ["r2-eu", "r2-fr"] } }) } });
    const error = vi.spyOn(console, "error").mockImplementation(() => undefined);
    try {
      const response = await e.fetchEdge(manifestRequest(NAMES, { continent: "EU" }));
      expect(response.status).toBe(500);
      expect(await response.text()).toMatch(/TARGET_REGIONS: continents "EU": "r2-fr" is not a target in REDIRECT_TARGETS \(known: r2-us, r2-eu, r2-de\)/);
    } finally {
      error.mockRestore();
    }
  });
});
