import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig, type Env } from "../src/config.ts";

const base: Env = { ORIGIN_URL: "http://127.0.0.1:8000" };
const TWO = '[{"name":"a","protocol":"https","uris":["https://a.example/"]},{"name":"b","protocol":"https","uris":["https://b.example/"]}]';
const errorOf = (env: Env) => {
  try {
    parseConfig(env);
  } catch (error) {
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError");
};

describe("config", () => {
  it("has safe defaults", () => {
    const config = parseConfig(base);
    expect(config).toMatchObject({ cacheVersion: "1", minRedirectBytes: 32768, redirectFullHashes: false, redirectMode: "replace", originTimeoutMs: 30000 });
    expect(config.redirectTargets).toBeUndefined();
    expect(config.publicObjectsUrl).toBeUndefined();
    // A stock origin may work on a big filesdata answer for minutes before its headers.
    expect(config.originCacheableTimeoutMs).toBe(15 * 60_000);
    expect(config.popCache).toBe(true);
    expect(parseConfig({ ...base, POP_CACHE: "off" }).popCache).toBe(false);
    expect(config).toMatchObject({ accessTtlSeconds: 60, urlTtlSeconds: 300 });
    // Without a bucket, or with ACCESS=origin and no SIGNING_KEY, cached data is never served.
    expect(config.cache).toEqual({ mode: "off", reason: expect.stringMatching(/no OBJECTS bucket/) });
    const bucket = {} as R2Bucket;
    expect(parseConfig({ ...base, OBJECTS: bucket }).cache).toEqual({ mode: "off", bucket, reason: expect.stringMatching(/SIGNING_KEY is not set/) });
    expect(parseConfig({ ...base, OBJECTS: bucket, SIGNING_KEY: "x".repeat(32) }).cache).toEqual({ mode: "signed", bucket, signingKey: "x".repeat(32) });
    expect(parseConfig({ ...base, OBJECTS: bucket, ACCESS: "public" }).cache).toEqual({ mode: "public", bucket });
  });

  it.each([
    [{ ORIGIN_URL: undefined }, "ORIGIN_URL", /is not set.*wrangler\.toml \[vars\].*\.dev\.vars/],
    [{ ORIGIN_URL: "not a url" }, "ORIGIN_URL", /is not a URL/],
    [{ ORIGIN_URL: "ftp://x" }, "ORIGIN_URL", /http or https/],
    [{ ORIGIN_URL: "http://x/?a=1" }, "ORIGIN_URL", /query/],
    [{ ORIGIN_TIMEOUT_MS: "0" }, "ORIGIN_TIMEOUT_MS", /positive whole number/],
    [{ ORIGIN_CACHEABLE_TIMEOUT_MS: "soon" }, "ORIGIN_CACHEABLE_TIMEOUT_MS", /positive whole number/],
    [{ POP_CACHE: "no" }, "POP_CACHE", /one of on, off/],
    [{ ACCESS: "everyone" }, "ACCESS", /one of origin, public/],
    [{ REDIRECT_MODE: "merge" }, "REDIRECT_MODE", /replace.*append/],
    [{ MIN_REDIRECT_BYTES: "-1" }, "MIN_REDIRECT_BYTES", /whole number/],
    [{ REDIRECT_FULLHASHES: "yes" }, "REDIRECT_FULLHASHES", /false, true/],
    [{ PUBLIC_OBJECTS_URL: "s3://bucket" }, "PUBLIC_OBJECTS_URL", /http or https/],
    [{ SIGNING_KEY: "short" }, "SIGNING_KEY", /at least 32 characters/],
    [{ URL_TTL: "0" }, "URL_TTL", /positive whole number/],
    [{ ACCESS_TTL: "soon" }, "ACCESS_TTL", /whole number/],
    [{ REDIRECT_TARGETS: "{" }, "REDIRECT_TARGETS", /not valid JSON/],
    [{ REDIRECT_TARGETS: "[]" }, "REDIRECT_TARGETS", /non-empty/],
    [{ REDIRECT_TARGETS: '[{"name":"a","protocol":"https","uris":["https://a/"],"tlsversions":["1.3"]}]' }, "REDIRECT_TARGETS", /must include one of 1.0, 1.1, 1.2/],
    [{ REDIRECT_TARGETS: '[{"name":"a","protocol":"http","uris":["http://a/"]},{"name":"a","protocol":"http","uris":["http://b/"]}]' }, "REDIRECT_TARGETS", /used twice/],
    [{ REDIRECT_TARGETS: '[{"name":"a","protocol":"http","uris":[]}]' }, "REDIRECT_TARGETS", /uris/],
    [{ REDIRECT_TARGETS: '[{"name":"a","protocol":"http","uris":["http://a/"],"priority":1}]' }, "REDIRECT_TARGETS", /unknown key "priority"/],
    [{ TARGET_RETRY_SECONDS: "0" }, "TARGET_RETRY_SECONDS", /positive whole number/],
    [{ TARGET_REGIONS: '{"continents":{"EU":["a"]}}' }, "TARGET_REGIONS", /needs REDIRECT_TARGETS/],
    [{ REDIRECT_TARGETS: TWO, TARGET_REGIONS: "[" }, "TARGET_REGIONS", /not valid JSON/],
    [{ REDIRECT_TARGETS: TWO, TARGET_REGIONS: '[["EU","a"]]' }, "TARGET_REGIONS", /must be a JSON object/],
    [{ REDIRECT_TARGETS: TWO, TARGET_REGIONS: '{"EU":["a"]}' }, "TARGET_REGIONS", /unknown key "EU": expected "countries" and\/or "continents"/],
    [{ REDIRECT_TARGETS: TWO, TARGET_REGIONS: '{"continents":{"EU":["a","r2-mars"]}}' }, "TARGET_REGIONS", /continents "EU": "r2-mars" is not a target in REDIRECT_TARGETS \(known: a, b\)/],
    [{ REDIRECT_TARGETS: TWO, TARGET_REGIONS: '{"countries":{"DE":[]}}' }, "TARGET_REGIONS", /non-empty array/],
    [{ REDIRECT_TARGETS: TWO, TARGET_REGIONS: '{"countries":{"Germany":["a"]}}' }, "TARGET_REGIONS", /"Germany" in "countries" is not a two-letter country code/],
    [{ REDIRECT_TARGETS: TWO, TARGET_REGIONS: '{"continents":{"EUROPE":["a"]}}' }, "TARGET_REGIONS", /not a continent code \(AF, AN, AS, EU, NA, OC, SA\)/],
    [{ TARGET_OBJECT_URLS: '{"a":"https://a.example/"}' }, "TARGET_OBJECT_URLS", /needs REDIRECT_TARGETS/],
    [{ REDIRECT_TARGETS: TWO, ACCESS: "public", TARGET_OBJECT_URLS: '{"c":"https://c.example/"}' }, "TARGET_OBJECT_URLS", /key: "c" is not a target/],
    [{ REDIRECT_TARGETS: TWO, ACCESS: "public", TARGET_OBJECT_URLS: '{"a":"ftp://a.example/"}' }, "TARGET_OBJECT_URLS", /http or https/],
    [{ REDIRECT_TARGETS: TWO, TARGET_OBJECT_URLS: '{"a":"https://a.example/"}' }, "TARGET_OBJECT_URLS", /ACCESS=origin .* must be https:\/\/<an hgedge host>\/\.hgedge\/objects\//],
  ])("refuses %o, naming %s", (override, binding, message) => {
    const error = errorOf({ ...base, ...override } as Env);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.binding).toBe(binding);
    expect(error.message).toMatch(message);
  });

  it("reads redirect targets as Mercurial clients will see them", () => {
    const config = parseConfig({
      ...base,
      REDIRECT_TARGETS: '[{"name":"r2-eu","protocol":"https","uris":["https://objects.example/"],"snirequired":true,"tlsversions":["1.2","1.3"]}]',
      REDIRECT_MODE: "append",
      ACCESS: "public",
    });
    expect(config.redirectTargets).toEqual([
      { name: "r2-eu", protocol: "https", uris: ["https://objects.example/"], snirequired: true, tlsversions: ["1.2", "1.3"] },
    ]);
    expect(config.redirectMode).toBe("append");
    expect(config.cache.mode).toBe("off"); // ACCESS=public, but no bucket
  });

  it("reads the region preferences, object URLs and retry period of the targets", () => {
    const config = parseConfig({
      ...base,
      REDIRECT_TARGETS: TWO,
      TARGET_REGIONS: '{"countries":{"de":["b","a"]},"continents":{"EU":["b"],"NA":["a"]}}',
      TARGET_OBJECT_URLS: '{"b":"https://edge-b.example/.hgedge/objects/"}',
      TARGET_RETRY_SECONDS: "120",
    });
    expect(config.targetRegions?.countries).toEqual(new Map([["DE", ["b", "a"]]]));
    expect(config.targetRegions?.continents).toEqual(new Map([["EU", ["b"]], ["NA", ["a"]]]));
    expect(config.targetObjectUrls).toEqual(new Map([["b", new URL("https://edge-b.example/.hgedge/objects/")]]));
    expect(config.targetRetrySeconds).toBe(120);
    expect(parseConfig(base)).toMatchObject({ targetRetrySeconds: 60 });
    expect(parseConfig(base).targetRegions).toBeUndefined();
    // A public deployment may point a target at an R2 custom domain serving the bucket.
    expect(parseConfig({ ...base, ACCESS: "public", REDIRECT_TARGETS: TWO, TARGET_OBJECT_URLS: '{"a":"https://eu.objects.example/"}' }).targetObjectUrls?.get("a")?.href).toBe(
      "https://eu.objects.example/",
    );
  });
});
