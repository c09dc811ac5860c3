/**
 * Env bindings → a typed, validated Config, parsed once per isolate (the app keeps it in its
 * isolate state; a Durable Object in its own instance). Nothing else reads `env`. Errors name the
 * binding and say how to fix it, so a misconfigured deployment fails loudly on its first request
 * instead of misbehaving.
 *
 * The value parsers are in src/config/: values.ts (numbers, words, URLs), targets.ts (redirect
 * targets, regions, object URLs), bundles.ts (clone bundles).
 */
import type { RedirectMode, RedirectTarget } from "./protocol/capabilities.ts";
import type { BundleFormat } from "./protocol/clonebundles.ts";
import { DEFAULT_REQUEST_LIMITS, type RequestLimits } from "./protocol/requests.ts";
import type { DurableObjectBinding, Env } from "./config/env.ts";
import { ConfigError, parseChoice, parseCount, parseHttpUrl, parseOriginUrl, parsePositiveInt } from "./config/values.ts";
import { parseRedirectMode, parseRedirectTargets, parseTargetObjectUrls, parseTargetRegions, type TargetRegions } from "./config/targets.ts";
import { DEFAULT_BUNDLE_GRACE_SECONDS, parseBundleFormats, parseBundleRepos } from "./config/bundles.ts";

export type { Env } from "./config/env.ts";
export { ConfigError } from "./config/values.ts";

/**
 * Whether and how cached data is served — one of three, so that no impossible combination (a
 * signed mode without a key, a cache without a bucket) can be written down:
 * - `off`: only proxying; `reason` says why (no OBJECTS bucket, or ACCESS=origin without
 *   SIGNING_KEY). A bound bucket is kept for the admin API (purge, stats) but never served from.
 * - `public`: every repository is public; object URLs are plain.
 * - `signed`: the origin decides who may read (ACCESS=origin): each hit is checked with the origin,
 *   and object URLs are signed with `signingKey` and expire.
 */
export type CacheMode =
  | { mode: "off"; reason: string; bucket?: R2Bucket }
  | { mode: "public"; bucket: R2Bucket }
  | { mode: "signed"; bucket: R2Bucket; signingKey: string };

/** A cache that serves: public or signed. */
export type ServingCache = Exclude<CacheMode, { mode: "off" }>;

export interface Config {
  /** The origin's base URL. */
  originUrl: URL;
  /** Wait for the origin's response headers (access checks, pass-through, bundles). */
  originTimeoutMs: number;
  /** Wait for the response headers of a cacheable v2 command (see DEFAULT_ORIGIN_CACHEABLE_TIMEOUT_MS). */
  originCacheableTimeoutMs: number;
  /** Longest silence inside an origin body before hgedge gives up on it. */
  originIdleTimeoutMs: number;
  cache: CacheMode;
  /** Whether the content route keeps objects in the PoP cache (caches.default). */
  popCache: boolean;
  /** Configured targets; `undefined` means one target named `hgedge` derived from each request's URL. */
  redirectTargets?: RedirectTarget[];
  redirectMode: RedirectMode;
  cacheVersion: string;
  minRedirectBytes: number;
  redirectFullHashes: boolean;
  publicObjectsUrl?: URL;
  accessTtlSeconds: number;
  urlTtlSeconds: number;
  /** What a v2 command request may be; past any of it the request is refused. */
  limits: RequestLimits;
  fillConcurrency: number;
  /** The admin API's bearer token; undefined: the API is off. */
  adminToken?: string;
  /** Single-flight of concurrent misses (src/cache/coalescer.ts); undefined: every miss asks the origin. */
  coalescer?: DurableObjectBinding;
  /** How long a follower waits for the leader's fill, and a leader's lease. */
  coalesceWaitMs: number;
  /** Cache counters (src/cache/stats.ts); undefined: not counted. */
  stats?: DurableObjectBinding;
  statsFlushMs: number;
  /** Targets preferred for clients of a country or continent (names all in redirectTargets). */
  targetRegions?: TargetRegions;
  /** Per target, the base URL its redirects point under (names all in redirectTargets). */
  targetObjectUrls?: Map<string, URL>;
  targetRetrySeconds: number;
  /** Repositories the cron trigger keeps a clone bundle of. */
  bundleRepos: string[];
  bundleMinNewChangesets: number;
  /** Sent as Authorization on hgedge's own requests to the origin for bundles. */
  bundleOriginAuthorization?: string;
  /** Bundle formats made and listed, best first. */
  bundleFormats: BundleFormat[];
  bundleGraceSeconds: number;
  /** One generator per repository (src/cache/bundler.ts); undefined: bundles are made inline (admin request, cron). */
  bundler?: DurableObjectBinding;
}

/**
 * A stock Mercurial 5.x server works out a whole `filesdata` answer (every file revision a clone
 * needs) before it sends its response headers: 47 s for a full clone of 40 000 changesets on a
 * 2-core machine, and the work grows with the history. Fifteen minutes covers a history about
 * fifteen times that size on such a machine. An origin that is down is still found at once
 * (its connection is refused, or the handshake, heads and changesetdata requests before the
 * first cacheable one time out after ORIGIN_TIMEOUT_MS), and once the headers are there the
 * body has ORIGIN_IDLE_TIMEOUT_MS between bytes as always.
 */
export const DEFAULT_ORIGIN_CACHEABLE_TIMEOUT_MS = 15 * 60_000;

/**
 * How long a miss waits for another request's fill of the same object, and how long a leader's
 * fill may take before another miss may start a second one. A fill lasts as long as the origin's
 * answer: for a full clone of 40 000 changesets, 47 s before the first byte and then a 300 MB
 * stream. A follower that gives up goes to the origin itself and waits at least as long again,
 * and a second leader doubles the origin's work; so it is as long as a cacheable command may
 * wait for its headers. What it costs: a leader that vanished without a word (its isolate gone)
 * keeps the followers of that one object waiting until then.
 */
export const DEFAULT_COALESCE_WAIT_MS = DEFAULT_ORIGIN_CACHEABLE_TIMEOUT_MS;

export function parseConfig(env: Env): Config {
  const access = parseChoice("ACCESS", env.ACCESS, ["origin", "public"] as const);
  const redirectTargets = parseRedirectTargets(env.REDIRECT_TARGETS);
  const targetRegions = parseTargetRegions(env.TARGET_REGIONS, redirectTargets);
  const targetObjectUrls = parseTargetObjectUrls(env.TARGET_OBJECT_URLS, redirectTargets, access === "origin");
  const urlTtlSeconds = parsePositiveInt("URL_TTL", env.URL_TTL, 300);
  const config: Config = {
    originUrl: parseOriginUrl(env.ORIGIN_URL),
    originTimeoutMs: parsePositiveInt("ORIGIN_TIMEOUT_MS", env.ORIGIN_TIMEOUT_MS, 30_000),
    originCacheableTimeoutMs: parsePositiveInt("ORIGIN_CACHEABLE_TIMEOUT_MS", env.ORIGIN_CACHEABLE_TIMEOUT_MS, DEFAULT_ORIGIN_CACHEABLE_TIMEOUT_MS),
    originIdleTimeoutMs: parsePositiveInt("ORIGIN_IDLE_TIMEOUT_MS", env.ORIGIN_IDLE_TIMEOUT_MS, 60_000),
    cache: parseCacheMode(env, access),
    popCache: parseChoice("POP_CACHE", env.POP_CACHE, ["on", "off"] as const) === "on",
    ...(redirectTargets ? { redirectTargets } : {}),
    redirectMode: parseRedirectMode(env.REDIRECT_MODE),
    cacheVersion: (env.CACHE_VERSION ?? "").trim() || "1",
    minRedirectBytes: parseCount("MIN_REDIRECT_BYTES", env.MIN_REDIRECT_BYTES, 32_768),
    redirectFullHashes: parseChoice("REDIRECT_FULLHASHES", env.REDIRECT_FULLHASHES, ["false", "true"] as const) === "true",
    ...(env.PUBLIC_OBJECTS_URL?.trim() ? { publicObjectsUrl: parseHttpUrl("PUBLIC_OBJECTS_URL", env.PUBLIC_OBJECTS_URL) } : {}),
    accessTtlSeconds: parseCount("ACCESS_TTL", env.ACCESS_TTL, 60),
    urlTtlSeconds,
    limits: parseRequestLimits(env),
    fillConcurrency: parsePositiveInt("FILL_CONCURRENCY", env.FILL_CONCURRENCY, 4),
    ...optionalSecret("ADMIN_TOKEN", env.ADMIN_TOKEN, "adminToken"),
    ...(env.COALESCER ? { coalescer: env.COALESCER } : {}),
    coalesceWaitMs: parsePositiveInt("COALESCE_WAIT_MS", env.COALESCE_WAIT_MS, DEFAULT_COALESCE_WAIT_MS),
    ...(env.STATS ? { stats: env.STATS } : {}),
    statsFlushMs: parsePositiveInt("STATS_FLUSH_MS", env.STATS_FLUSH_MS, 5_000),
    ...(targetRegions ? { targetRegions } : {}),
    ...(targetObjectUrls ? { targetObjectUrls } : {}),
    targetRetrySeconds: parsePositiveInt("TARGET_RETRY_SECONDS", env.TARGET_RETRY_SECONDS, 60),
    bundleRepos: parseBundleRepos(env.BUNDLE_REPOS),
    bundleMinNewChangesets: parsePositiveInt("BUNDLE_MIN_NEW_CHANGESETS", env.BUNDLE_MIN_NEW_CHANGESETS, 100),
    ...(env.BUNDLE_ORIGIN_AUTHORIZATION?.trim() ? { bundleOriginAuthorization: env.BUNDLE_ORIGIN_AUTHORIZATION.trim() } : {}),
    bundleFormats: parseBundleFormats(env.BUNDLE_FORMATS),
    bundleGraceSeconds: parseBundleGrace(env.BUNDLE_GRACE_SECONDS, urlTtlSeconds),
    ...(env.BUNDLER ? { bundler: env.BUNDLER } : {}),
  };
  return config;
}

/** The cache mode the bindings describe (see CacheMode). */
function parseCacheMode(env: Env, access: "origin" | "public"): CacheMode {
  const signingKey = optionalSecret("SIGNING_KEY", env.SIGNING_KEY, "signingKey").signingKey;
  const bucket = env.OBJECTS;
  if (!bucket) return { mode: "off", reason: "no OBJECTS bucket is bound" };
  if (access === "public") return { mode: "public", bucket };
  if (signingKey) return { mode: "signed", bucket, signingKey };
  // Serving unsigned URLs for private repositories would hand the data to anyone holding one.
  return {
    mode: "off",
    bucket,
    reason:
      "SIGNING_KEY is not set, and ACCESS=origin needs it to sign object URLs: set the secret " +
      "(`wrangler secret put SIGNING_KEY`) or declare the repositories public with ACCESS=public",
  };
}

/** A secret of at least 32 characters, or nothing when unset. */
function optionalSecret<K extends string>(binding: string, value: string | undefined, field: K): Partial<Record<K, string>> {
  if (value === undefined || value === "") return {};
  if (value.length < 32) throw new ConfigError(binding, "must be at least 32 characters: generate one with `openssl rand -hex 32`");
  return { [field]: value } as Partial<Record<K, string>>;
}

function parseRequestLimits(env: Env): RequestLimits {
  return {
    ...DEFAULT_REQUEST_LIMITS,
    maxRequestBytes: parsePositiveInt("REQUEST_MAX_BYTES", env.REQUEST_MAX_BYTES, DEFAULT_REQUEST_LIMITS.maxRequestBytes),
    maxFrames: parsePositiveInt("REQUEST_MAX_FRAMES", env.REQUEST_MAX_FRAMES, DEFAULT_REQUEST_LIMITS.maxFrames),
    maxItems: parsePositiveInt("REQUEST_MAX_ITEMS", env.REQUEST_MAX_ITEMS, DEFAULT_REQUEST_LIMITS.maxItems),
    maxDepth: parsePositiveInt("CBOR_MAX_DEPTH", env.CBOR_MAX_DEPTH, DEFAULT_REQUEST_LIMITS.maxDepth),
    maxCollectionSize: parsePositiveInt("CBOR_MAX_ITEMS", env.CBOR_MAX_ITEMS, DEFAULT_REQUEST_LIMITS.maxCollectionSize),
    maxByteStringLength: parsePositiveInt("CBOR_MAX_BYTES", env.CBOR_MAX_BYTES, DEFAULT_REQUEST_LIMITS.maxByteStringLength),
  };
}

function parseBundleGrace(value: string | undefined, urlTtlSeconds: number): number {
  const grace = parsePositiveInt("BUNDLE_GRACE_SECONDS", value, DEFAULT_BUNDLE_GRACE_SECONDS);
  if (grace <= urlTtlSeconds) {
    throw new ConfigError(
      "BUNDLE_GRACE_SECONDS",
      `must be longer than URL_TTL (${urlTtlSeconds} s) plus the longest clone download, or a client holding a manifest URL meets a deleted bundle; got ${grace}`,
    );
  }
  return grace;
}

/** The cache, when it serves; undefined when it is off. */
export function servingCache(config: Config): ServingCache | undefined {
  return config.cache.mode === "off" ? undefined : config.cache;
}

/** The bound bucket, serving or not (the admin API purges and lists it either way). */
export function boundBucket(config: Config): R2Bucket | undefined {
  return config.cache.bucket;
}
