/**
 * The target decision (cache/redirect.ts) and the health memory behind it (cache/health.ts), with
 * scripted places, scripted probes and a clock moved by hand.
 */
import { describe, expect, it, vi } from "vitest";
import { TargetHealth, type ProbeFetch } from "../../src/cache/health.ts";
import { chooseTarget, preferenceOrder } from "../../src/cache/redirect.ts";
import type { TargetRegions } from "../../src/config/targets.ts";
import type { RedirectTarget } from "../../src/protocol/capabilities.ts";
import { bytes } from "../../src/protocol/cbor.ts";
import type { RedirectRequest } from "../../src/protocol/requests.ts";

const target = (name: string): RedirectTarget => ({ name, protocol: "https", uris: [`https://${name}.objects.test/`] });
const ours = [target("r2-us"), target("r2-eu"), target("r2-de"), target("r2-ap")];
/** What a real 5.x client sends: every target it accepts, in the order we advertised. */
const accepting = (...names: string[]): RedirectRequest => ({ targets: names.map(bytes), hashes: [bytes("sha256")] });
const all = accepting(...ours.map((t) => t.name));
const regions: TargetRegions = {
  countries: new Map([["DE", ["r2-de", "r2-eu"]], ["AS", ["r2-ap"]]]),
  continents: new Map([["EU", ["r2-eu"]], ["AS", ["r2-ap", "r2-us"]]]),
};
const nameOf = (t: RedirectTarget | undefined) => t?.name;

describe("choosing a redirect target", () => {
  it("prefers the client's country, then its continent, then the configured order", () => {
    const names = (place: { country?: string; continent?: string }) => preferenceOrder(ours, place, regions).map((t) => t.name);
    expect(names({ country: "DE", continent: "EU" })).toEqual(["r2-de", "r2-eu", "r2-us", "r2-ap"]);
    expect(names({ country: "FR", continent: "EU" })).toEqual(["r2-eu", "r2-us", "r2-de", "r2-ap"]);
    // "AS" is American Samoa as a country and Asia as a continent: the two never mix.
    expect(names({ country: "AS", continent: "OC" })).toEqual(["r2-ap", "r2-us", "r2-eu", "r2-de"]);
    expect(names({ country: "JP", continent: "AS" })).toEqual(["r2-ap", "r2-us", "r2-eu", "r2-de"]);
    expect(names({})).toEqual(["r2-us", "r2-eu", "r2-de", "r2-ap"]);
    expect(preferenceOrder(ours, { country: "DE" }).map((t) => t.name)).toEqual(["r2-us", "r2-eu", "r2-de", "r2-ap"]);
  });

  it("only ever picks a target the client accepts", () => {
    const de = { place: { country: "DE", continent: "EU" }, regions };
    expect(nameOf(chooseTarget(all, ours, de))).toBe("r2-de");
    expect(nameOf(chooseTarget(accepting("r2-us", "r2-eu"), ours, de))).toBe("r2-eu");
    expect(nameOf(chooseTarget(accepting("r2-us"), ours, de))).toBe("r2-us");
    expect(chooseTarget(accepting("elsewhere"), ours, de)).toBeUndefined();
    expect(chooseTarget(accepting(), ours, de)).toBeUndefined();
    expect(chooseTarget(undefined, ours, de)).toBeUndefined();
  });

  it("skips unhealthy targets, and answers inline when every accepted one is", () => {
    const de = { place: { country: "DE", continent: "EU" }, regions };
    const down = (...names: string[]) => ({ ...de, isHealthy: (name: string) => !names.includes(name) });
    expect(nameOf(chooseTarget(all, ours, down("r2-de")))).toBe("r2-eu");
    expect(nameOf(chooseTarget(all, ours, down("r2-de", "r2-eu")))).toBe("r2-us");
    expect(chooseTarget(accepting("r2-de", "r2-eu"), ours, down("r2-de", "r2-eu"))).toBeUndefined();
    expect(chooseTarget(all, ours, down("r2-us", "r2-eu", "r2-de", "r2-ap"))).toBeUndefined();
  });
});

/** A scripted target host: answers each probe as `answer` says, counting them. */
function scriptedProbe() {
  const probes: { url: string; method: string | undefined }[] = [];
  let answer: () => Promise<Response> = async () => new Response(null, { status: 404 });
  const probeFetch: ProbeFetch = (url, init) => {
    probes.push({ url, method: init.method });
    return answer();
  };
  return { probes, probeFetch, answerWith: (next: () => Promise<Response>) => (answer = next) };
}

describe("target health", () => {
  const eu = { name: "r2-eu", url: "https://eu.objects.test/" };
  const us = { name: "r2-us", url: "https://us.objects.test/" };

  it("presumes a target healthy, probes it at most once per retry period, and keeps it while it answers", async () => {
    let now = 1_000_000;
    const host = scriptedProbe();
    const health = new TargetHealth(host.probeFetch, () => now);
    expect(health.isHealthy(eu)).toBe(true);
    await Promise.all(health.probeIfDue([eu, us], 60));
    expect(host.probes).toEqual([
      { url: eu.url, method: "HEAD" },
      { url: us.url, method: "HEAD" },
    ]);
    // A 404 from a bucket's root is a host that answers: healthy.
    expect(health.isHealthy(eu)).toBe(true);
    now += 59_999;
    expect(health.probeIfDue([eu, us], 60)).toHaveLength(0);
    now += 1;
    await Promise.all(health.probeIfDue([eu], 60));
    expect(host.probes).toHaveLength(3);
  });

  it.each([
    ["a server error", async () => new Response("bad gateway", { status: 502 }), /HTTP 502/],
    ["a network error", async () => Promise.reject(new TypeError("connection refused")), /connection refused/],
    ["a timeout", async () => Promise.reject(new DOMException("The operation was aborted due to timeout", "TimeoutError")), /TimeoutError/],
  ])("marks a target down for the retry period after %s, then tries it again", async (_what, failure, reason) => {
    let now = 5_000_000;
    const host = scriptedProbe();
    const health = new TargetHealth(host.probeFetch, () => now);
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    const info = vi.spyOn(console, "log").mockImplementation(() => undefined);
    try {
      host.answerWith(failure);
      await Promise.all(health.probeIfDue([eu], 30));
      expect(health.isHealthy(eu)).toBe(false);
      expect(health.isHealthy(us)).toBe(true);
      const down = JSON.parse(warn.mock.calls.at(-1)![0] as string);
      expect(down).toMatchObject({ level: "warn", event: "target-down", target: "r2-eu", url: eu.url, retrySeconds: 30 });
      expect(down.reason).toMatch(reason);
      // Not probed again, and skipped, until the period is over.
      now += 29_999;
      expect(health.probeIfDue([eu], 30)).toHaveLength(0);
      expect(health.isHealthy(eu)).toBe(false);
      now += 1;
      expect(health.isHealthy(eu)).toBe(true);
      // Tried again: the target answers now, and says so once.
      host.answerWith(async () => new Response(null, { status: 200 }));
      await Promise.all(health.probeIfDue([eu], 30));
      expect(health.isHealthy(eu)).toBe(true);
      expect(info.mock.calls.map(([line]) => JSON.parse(line as string))).toEqual([{ level: "info", event: "target-up", target: "r2-eu", url: eu.url }]);
      expect(warn).toHaveBeenCalledTimes(1);
    } finally {
      warn.mockRestore();
      info.mockRestore();
    }
  });

  it("starts one probe per target however many requests ask while it runs", async () => {
    let release!: () => void;
    const host = scriptedProbe();
    host.answerWith(() => new Promise((resolve) => (release = () => resolve(new Response(null, { status: 503 })))));
    const health = new TargetHealth(host.probeFetch, () => 0);
    const first = health.probeIfDue([eu], 10);
    const waited: Promise<unknown>[] = [];
    expect(health.probeIfDue([eu], 0, (p) => waited.push(p))).toHaveLength(0);
    expect(host.probes).toHaveLength(1);
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    release();
    await Promise.all(first);
    warn.mockRestore();
    expect(health.isHealthy(eu)).toBe(false);
    expect(waited).toHaveLength(0);
  });
});
