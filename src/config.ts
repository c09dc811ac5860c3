/**
 * Env bindings → a typed, validated Config, parsed once per isolate. Nothing else reads `env`.
 * Errors name the binding and say how to fix it, so a misconfigured deployment fails loudly on
 * its first request instead of misbehaving.
 */

import type { Coalescer } from "./cache/coalescer.ts";
import type { StatsCounter } from "./cache/stats.ts";
import type { Bundler } from "./cache/bundler.ts";
import { BUNDLE_FORMAT_NAMES, DEFAULT_BUNDLE_FORMATS, isBundleFormat, type BundleFormat } from "./protocol/clonebundles.ts";
import type { RedirectMode, RedirectTarget } from "./protocol/capabilities.ts";
import { DEFAULT_REQUEST_LIMITS, type RequestLimits } from "./protocol/requests.ts";
import { OBJECTS_PATH, type TargetRegions } from "./cache/redirect.ts";

export interface Env {
  ORIGIN_URL?: string;
  OBJECTS?: R2Bucket;
  /** Milliseconds to wait for the origin's response headers before answering 504. */
  ORIGIN_TIMEOUT_MS?: string;
  /** The same for cacheable v2 commands, which a stock server may work on for minutes first. */
  ORIGIN_CACHEABLE_TIMEOUT_MS?: string;
  /** `off` to serve the content route from R2 alone, without the PoP cache (local development). */
  POP_CACHE?: string;
  /** JSON array of redirect targets advertised to v2 clients. */
  REDIRECT_TARGETS?: string;
  /** `replace` (default) or `append` to the targets the origin advertises itself. */
  REDIRECT_MODE?: string;
  /** `public` serves cached data to anyone; `origin` (default) needs the origin's yes. */
  ACCESS?: string;
  /** Bump to start a fresh cache generation. */
  CACHE_VERSION?: string;
  /** Below this many bytes a cached object is answered inline rather than redirected. */
  MIN_REDIRECT_BYTES?: string;
  /** `true` to put sha256/sha1 in redirects (5.x clients only warn about them). */
  REDIRECT_FULLHASHES?: string;
  /** An R2 custom domain serving the bucket; redirects for public objects point there. */
  PUBLIC_OBJECTS_URL?: string;
  /** Seconds an origin's "yes, this client may read" is remembered. */
  ACCESS_TTL?: string;
  /** Seconds a signed object URL stays valid. */
  URL_TTL?: string;
  /** Secret: HMAC key for signed object URLs (required unless ACCESS=public). */
  SIGNING_KEY?: string;
  /** Limits on v2 command requests (see README). */
  REQUEST_MAX_BYTES?: string;
  REQUEST_MAX_FRAMES?: string;
  REQUEST_MAX_ITEMS?: string;
  CBOR_MAX_DEPTH?: string;
  CBOR_MAX_ITEMS?: string;
  CBOR_MAX_BYTES?: string;
  /** Milliseconds an origin body may stay silent while hgedge stores it, before both are abandoned. */
  ORIGIN_IDLE_TIMEOUT_MS?: string;
  /** Most responses one isolate stores at once (each holds up to 8 MiB). */
  FILL_CONCURRENCY?: string;
  /** Secret: bearer token of the admin API; unset, the API is off. */
  ADMIN_TOKEN?: string;
  /** Durable Object namespace: single-flight of concurrent misses (src/cache/coalescer.ts). */
  COALESCER?: DurableObjectNamespace<Coalescer>;
  /** Milliseconds a miss waits for another request's fill of the same object. */
  COALESCE_WAIT_MS?: string;
  /** Durable Object namespace: cache counters per repository (src/cache/stats.ts). */
  STATS?: DurableObjectNamespace<StatsCounter>;
  /** Milliseconds an isolate gathers counts before sending them to STATS. */
  STATS_FLUSH_MS?: string;
  /** JSON {"countries": {"DE": [names]}, "continents": {"EU": [names]}}: targets to prefer by client region. */
  TARGET_REGIONS?: string;
  /** JSON {name: base URL}: where redirects to each REDIRECT_TARGETS target point (object names below it). */
  TARGET_OBJECT_URLS?: string;
  /** Seconds a target whose probe failed is skipped, and between probes of a target. */
  TARGET_RETRY_SECONDS?: string;
  /** JSON array of repository paths whose clone bundle the cron trigger keeps fresh. */
  BUNDLE_REPOS?: string;
  /** New changesets on the origin since the bundle that make the cron trigger regenerate it. */
  BUNDLE_MIN_NEW_CHANGESETS?: string;
  /** Secret: Authorization header value hgedge sends to the origin when it makes a bundle. */
  BUNDLE_ORIGIN_AUTHORIZATION?: string;
  /** JSON array of bundle formats to make and list, best first (e.g. ["stream-v2", "zstd-v2"]). */
  BUNDLE_FORMATS?: string;
  /** Seconds a replaced bundle stays readable before it is deleted. */
  BUNDLE_GRACE_SECONDS?: string;
  /** Durable Object namespace: one clone-bundle generator per repository (src/cache/bundler.ts). */
  BUNDLER?: DurableObjectNamespace<Bundler>;
}

export type Access = "public" | "origin";

export interface Config {
  /** The origin's base URL. */
  originUrl: URL;
  /** Wait for the origin's response headers (access checks, pass-through, bundles). */
  originTimeoutMs: number;
  /** Wait for the response headers of a cacheable v2 command (see DEFAULT_ORIGIN_CACHEABLE_TIMEOUT_MS). */
  originCacheableTimeoutMs: number;
  /** Whether the content route keeps objects in the PoP cache (caches.default). */
  popCache: boolean;
  /** Configured targets; `undefined` means one target named `hgedge` derived from each request's URL. */
  redirectTargets?: RedirectTarget[];
  redirectMode: RedirectMode;
  /** The bucket of cached responses; without it hgedge only proxies. */
  objects?: R2Bucket;
  access: Access;
  cacheVersion: string;
  minRedirectBytes: number;
  redirectFullHashes: boolean;
  publicObjectsUrl?: URL;
  accessTtlSeconds: number;
  urlTtlSeconds: number;
  signingKey?: string;
  /** Why cached data must not be served (a configuration problem), if it must not. */
  cacheRefusal?: string;
  /** What a v2 command request may be; past any of it the request is refused. */
  limits: RequestLimits;
  originIdleTimeoutMs: number;
  fillConcurrency: number;
  /** The admin API's bearer token; undefined: the API is off. */
  adminToken?: string;
  /** Single-flight of concurrent misses; undefined: every miss asks the origin. */
  coalescer?: DurableObjectNamespace<Coalescer>;
  /** How long a follower waits for the leader's fill, and a leader's lease. */
  coalesceWaitMs: number;
  /** Cache counters; undefined: not counted. */
  stats?: DurableObjectNamespace<StatsCounter>;
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
  /** One generator per repository; undefined: bundles are made inline (admin request, cron). */
  bundler?: DurableObjectNamespace<Bundler>;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly binding: string,
    message: string,
  ) {
    super(`${binding}: ${message}`);
  }
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

const cache = new WeakMap<object, Config>();

/** Parses `env` once per isolate (env objects are stable for an isolate's life). */
export function loadConfig(env: Env): Config {
  let config = cache.get(env);
  if (!config) {
    config = parseConfig(env);
    cache.set(env, config);
  }
  return config;
}

export function parseConfig(env: Env): Config {
  const config: Config = {
    originUrl: parseOriginUrl(env.ORIGIN_URL),
    originTimeoutMs: parsePositiveInt("ORIGIN_TIMEOUT_MS", env.ORIGIN_TIMEOUT_MS, 30_000),
    originCacheableTimeoutMs: parsePositiveInt("ORIGIN_CACHEABLE_TIMEOUT_MS", env.ORIGIN_CACHEABLE_TIMEOUT_MS, DEFAULT_ORIGIN_CACHEABLE_TIMEOUT_MS),
    popCache: parseChoice("POP_CACHE", env.POP_CACHE, ["on", "off"] as const) === "on",
    redirectMode: parseRedirectMode(env.REDIRECT_MODE),
    access: parseChoice("ACCESS", env.ACCESS, ["origin", "public"] as const),
    cacheVersion: (env.CACHE_VERSION ?? "").trim() || "1",
    minRedirectBytes: parseCount("MIN_REDIRECT_BYTES", env.MIN_REDIRECT_BYTES, 32_768),
    redirectFullHashes: parseChoice("REDIRECT_FULLHASHES", env.REDIRECT_FULLHASHES, ["false", "true"] as const) === "true",
    accessTtlSeconds: parseCount("ACCESS_TTL", env.ACCESS_TTL, 60),
    limits: {
      ...DEFAULT_REQUEST_LIMITS,
      maxRequestBytes: parsePositiveInt("REQUEST_MAX_BYTES", env.REQUEST_MAX_BYTES, DEFAULT_REQUEST_LIMITS.maxRequestBytes),
      maxFrames: parsePositiveInt("REQUEST_MAX_FRAMES", env.REQUEST_MAX_FRAMES, DEFAULT_REQUEST_LIMITS.maxFrames),
      maxItems: parsePositiveInt("REQUEST_MAX_ITEMS", env.REQUEST_MAX_ITEMS, DEFAULT_REQUEST_LIMITS.maxItems),
      maxDepth: parsePositiveInt("CBOR_MAX_DEPTH", env.CBOR_MAX_DEPTH, DEFAULT_REQUEST_LIMITS.maxDepth),
      maxCollectionSize: parsePositiveInt("CBOR_MAX_ITEMS", env.CBOR_MAX_ITEMS, DEFAULT_REQUEST_LIMITS.maxCollectionSize),
      maxByteStringLength: parsePositiveInt("CBOR_MAX_BYTES", env.CBOR_MAX_BYTES, DEFAULT_REQUEST_LIMITS.maxByteStringLength),
    },
    originIdleTimeoutMs: parsePositiveInt("ORIGIN_IDLE_TIMEOUT_MS", env.ORIGIN_IDLE_TIMEOUT_MS, 60_000),
    fillConcurrency: parsePositiveInt("FILL_CONCURRENCY", env.FILL_CONCURRENCY, 4),
    urlTtlSeconds: parsePositiveInt("URL_TTL", env.URL_TTL, 300),
    coalesceWaitMs: parsePositiveInt("COALESCE_WAIT_MS", env.COALESCE_WAIT_MS, DEFAULT_COALESCE_WAIT_MS),
    statsFlushMs: parsePositiveInt("STATS_FLUSH_MS", env.STATS_FLUSH_MS, 5_000),
    targetRetrySeconds: parsePositiveInt("TARGET_RETRY_SECONDS", env.TARGET_RETRY_SECONDS, 60),
    bundleRepos: parseBundleRepos(env.BUNDLE_REPOS),
    bundleMinNewChangesets: parsePositiveInt("BUNDLE_MIN_NEW_CHANGESETS", env.BUNDLE_MIN_NEW_CHANGESETS, 100),
    bundleFormats: parseBundleFormats(env.BUNDLE_FORMATS),
    bundleGraceSeconds: parsePositiveInt("BUNDLE_GRACE_SECONDS", env.BUNDLE_GRACE_SECONDS, DEFAULT_BUNDLE_GRACE_SECONDS),
  };
  if (env.BUNDLER) config.bundler = env.BUNDLER;
  if (config.bundleGraceSeconds <= config.urlTtlSeconds) {
    throw new ConfigError(
      "BUNDLE_GRACE_SECONDS",
      `must be longer than URL_TTL (${config.urlTtlSeconds} s) plus the longest clone download, or a client holding a manifest URL meets a deleted bundle; got ${config.bundleGraceSeconds}`,
    );
  }
  if (env.COALESCER) config.coalescer = env.COALESCER;
  if (env.STATS) config.stats = env.STATS;
  if (env.BUNDLE_ORIGIN_AUTHORIZATION?.trim()) config.bundleOriginAuthorization = env.BUNDLE_ORIGIN_AUTHORIZATION.trim();
  const targets = parseRedirectTargets(env.REDIRECT_TARGETS);
  if (targets) config.redirectTargets = targets;
  const regions = parseTargetRegions(env.TARGET_REGIONS, targets);
  if (regions) config.targetRegions = regions;
  const objectUrls = parseTargetObjectUrls(env.TARGET_OBJECT_URLS, targets, config.access);
  if (objectUrls) config.targetObjectUrls = objectUrls;
  if (env.OBJECTS) config.objects = env.OBJECTS;
  if (env.PUBLIC_OBJECTS_URL?.trim()) config.publicObjectsUrl = parseHttpUrl("PUBLIC_OBJECTS_URL", env.PUBLIC_OBJECTS_URL);
  if (env.SIGNING_KEY) {
    if (env.SIGNING_KEY.length < 32) throw new ConfigError("SIGNING_KEY", "must be at least 32 characters: generate one with `openssl rand -hex 32`");
    config.signingKey = env.SIGNING_KEY;
  }
  if (env.ADMIN_TOKEN !== undefined && env.ADMIN_TOKEN !== "") {
    if (env.ADMIN_TOKEN.length < 32) throw new ConfigError("ADMIN_TOKEN", "must be at least 32 characters: generate one with `openssl rand -hex 32`");
    config.adminToken = env.ADMIN_TOKEN;
  }
  if (!config.objects) config.cacheRefusal = "no OBJECTS bucket is bound";
  else if (config.access === "origin" && !config.signingKey) {
    // Serving unsigned URLs for private repositories would hand the data to anyone holding one.
    config.cacheRefusal =
      "SIGNING_KEY is not set, and ACCESS=origin needs it to sign object URLs: set the secret " +
      "(`wrangler secret put SIGNING_KEY`) or declare the repositories public with ACCESS=public";
  }
  return config;
}

/** One of a fixed set of words; the first is the default. */
function parseChoice<T extends string>(binding: string, value: string | undefined, choices: readonly T[]): T {
  const word = (value ?? "").trim().toLowerCase() || choices[0];
  const choice = choices.find((c) => c === word);
  if (!choice) throw new ConfigError(binding, `must be one of ${choices.join(", ")}, got "${value}"`);
  return choice;
}

function parseCount(binding: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value.trim() === "") return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new ConfigError(binding, `must be a whole number (0 or more), got "${value}"`);
  return n;
}

function parseHttpUrl(binding: string, value: string): URL {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw new ConfigError(binding, `"${value}" is not a URL; expected e.g. https://hg.example.org/`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new ConfigError(binding, `must be http or https, got ${url.protocol}`);
  return url;
}

function parseRedirectMode(value: string | undefined): RedirectMode {
  const mode = (value ?? "").trim() || "replace";
  if (mode !== "replace" && mode !== "append") {
    throw new ConfigError("REDIRECT_MODE", `must be "replace" or "append", got "${value}"`);
  }
  return mode;
}

/** TLS versions Mercurial 5.x clients recognise (sslutil.supportedprotocols, "tls" stripped). */
const CLIENT_TLS_VERSIONS = ["1.0", "1.1", "1.2"];

/**
 * REDIRECT_TARGETS: a JSON array of {name, protocol, uris, snirequired?, tlsversions?}. Each
 * target must pass the 5.x client's filter (protocol.md §6.2), or clients silently ignore it.
 */
function parseRedirectTargets(value: string | undefined): RedirectTarget[] | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const fail = (message: string): never => {
    throw new ConfigError("REDIRECT_TARGETS", message);
  };
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (error) {
    return fail(`is not valid JSON (${(error as Error).message}); expected e.g. [{"name":"r2","protocol":"https","uris":["https://objects.example.org/"]}]`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0) return fail("must be a non-empty JSON array of targets");
  const names = new Set<string>();
  return parsed.map((raw: unknown, i) => {
    const where = `target ${i + 1}`;
    if (typeof raw !== "object" || raw === null) return fail(`${where} is not an object`);
    const t = raw as Record<string, unknown>;
    const known = new Set(["name", "protocol", "uris", "snirequired", "tlsversions"]);
    for (const key of Object.keys(t)) if (!known.has(key)) fail(`${where} has an unknown key "${key}"`);
    if (typeof t.name !== "string" || !/^[A-Za-z0-9._-]+$/.test(t.name)) fail(`${where} needs a "name" of letters, digits, ".", "_" or "-"`);
    const name = t.name as string;
    if (names.has(name)) fail(`target name "${name}" is used twice`);
    names.add(name);
    if (t.protocol !== "http" && t.protocol !== "https") fail(`${name}: "protocol" must be "http" or "https" (the only ones Mercurial clients follow)`);
    if (!Array.isArray(t.uris) || t.uris.length === 0 || !t.uris.every((u) => typeof u === "string" && u !== "")) {
      fail(`${name}: "uris" must be a non-empty array of URL strings`);
    }
    const target: RedirectTarget = { name, protocol: t.protocol as string, uris: t.uris as string[] };
    if (t.snirequired !== undefined) {
      if (typeof t.snirequired !== "boolean") fail(`${name}: "snirequired" must be true or false`);
      target.snirequired = t.snirequired as boolean;
    }
    if (t.tlsversions !== undefined) {
      const versions = t.tlsversions;
      if (!Array.isArray(versions) || !versions.every((v) => typeof v === "string")) fail(`${name}: "tlsversions" must be an array of strings`);
      if (!(versions as string[]).some((v) => CLIENT_TLS_VERSIONS.includes(v))) {
        fail(`${name}: "tlsversions" must include one of ${CLIENT_TLS_VERSIONS.join(", ")}: Mercurial 5.x clients know no other and would ignore this target`);
      }
      target.tlsversions = versions as string[];
    }
    return target;
  });
}

function parseOriginUrl(value: string | undefined): URL {
  if (!value || value.trim() === "") {
    throw new ConfigError(
      "ORIGIN_URL",
      "is not set: it is the base URL of the Mercurial server hgedge fronts. For a deployment set it " +
        'in wrangler.toml [vars] (ORIGIN_URL = "https://hg.example.org/") or in the dashboard; for ' +
        "`npm start` put it in .dev.vars (see .dev.vars.example) or pass `--var ORIGIN_URL:http://host:port`.",
    );
  }
  const url = parseHttpUrl("ORIGIN_URL", value);
  if (url.search || url.hash) {
    throw new ConfigError("ORIGIN_URL", "must not have a query or fragment: give the server's base URL");
  }
  return url;
}

function parsePositiveInt(binding: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value.trim() === "") return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new ConfigError(binding, `must be a positive whole number, got "${value}"`);
  }
  return n;
}

/** Continent codes as Cloudflare gives them in `request.cf.continent`. */
const CONTINENTS = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/** A JSON object binding that refers to REDIRECT_TARGETS by name. */
function parseTargetsObject(binding: string, value: string, targets: RedirectTarget[] | undefined, example: string): Record<string, unknown> {
  const fail = (message: string): never => {
    throw new ConfigError(binding, message);
  };
  if (!targets) fail("needs REDIRECT_TARGETS: it refers to configured targets by name (the default target cannot be named)");
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (error) {
    fail(`is not valid JSON (${(error as Error).message}); expected e.g. ${example}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) fail(`must be a JSON object, e.g. ${example}`);
  return parsed as Record<string, unknown>;
}

function checkTargetName(binding: string, name: unknown, targets: RedirectTarget[], where: string): string {
  if (typeof name !== "string" || !targets.some((t) => t.name === name)) {
    const known = targets.map((t) => t.name).join(", ");
    throw new ConfigError(binding, `${where}: "${String(name)}" is not a target in REDIRECT_TARGETS (known: ${known})`);
  }
  return name;
}

/**
 * TARGET_REGIONS: {"countries": {"DE": ["r2-eu"]}, "continents": {"EU": ["r2-eu", "r2-us"]}}.
 * Countries and continents are separate maps because their codes overlap (AF, AS, NA, SA).
 */
function parseTargetRegions(value: string | undefined, targets: RedirectTarget[] | undefined): TargetRegions | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const binding = "TARGET_REGIONS";
  const parsed = parseTargetsObject(binding, value, targets, '{"continents":{"EU":["r2-eu"]},"countries":{"US":["r2-us"]}}');
  const fail = (message: string): never => {
    throw new ConfigError(binding, message);
  };
  for (const key of Object.keys(parsed)) if (key !== "countries" && key !== "continents") fail(`has an unknown key "${key}": expected "countries" and/or "continents"`);
  const table = (kind: "countries" | "continents", validCode: (code: string) => boolean, codes: string): Map<string, string[]> => {
    const raw = parsed[kind] ?? {};
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return fail(`"${kind}" must be an object of code → [target names]`);
    const map = new Map<string, string[]>();
    for (const [rawCode, names] of Object.entries(raw)) {
      const code = rawCode.toUpperCase();
      if (!validCode(code)) fail(`"${rawCode}" in "${kind}" is not ${codes}`);
      if (!Array.isArray(names) || names.length === 0) fail(`${kind} "${rawCode}" must be a non-empty array of target names`);
      map.set(code, (names as unknown[]).map((name) => checkTargetName(binding, name, targets as RedirectTarget[], `${kind} "${rawCode}"`)));
    }
    return map;
  };
  return {
    countries: table("countries", (c) => /^[A-Z][A-Z0-9]$/.test(c), "a two-letter country code as in request.cf.country (e.g. DE)"),
    continents: table("continents", (c) => CONTINENTS.includes(c), `a continent code (${CONTINENTS.join(", ")})`),
  };
}

/**
 * TARGET_OBJECT_URLS: {"r2-eu": "https://eu.objects.example.org/"}: redirects to that target point
 * at <base><object name>. Without an entry they point at PUBLIC_OBJECTS_URL or the content route
 * of the edge the client is talking to. With ACCESS=origin the URLs are signed and only hgedge's
 * content route checks signatures, so each base must be one (…/.hgedge/objects/).
 */
function parseTargetObjectUrls(value: string | undefined, targets: RedirectTarget[] | undefined, access: Access): Map<string, URL> | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const binding = "TARGET_OBJECT_URLS";
  const parsed = parseTargetsObject(binding, value, targets, '{"r2-eu":"https://eu.objects.example.org/"}');
  const urls = new Map<string, URL>();
  for (const [name, raw] of Object.entries(parsed)) {
    checkTargetName(binding, name, targets as RedirectTarget[], "key");
    if (typeof raw !== "string") throw new ConfigError(binding, `${name}: must be a URL string`);
    const url = parseHttpUrl(binding, raw);
    if (access === "origin" && !url.pathname.endsWith(OBJECTS_PATH)) {
      throw new ConfigError(
        binding,
        `${name}: with ACCESS=origin redirects are signed URLs that only hgedge's content route checks, so the base must be https://<an hgedge host>${OBJECTS_PATH} (got ${url.href})`,
      );
    }
    urls.set(name, url);
  }
  return urls;
}

/** BUNDLE_REPOS: a JSON array of repository paths such as ["/", "/team/project"]. */
function parseBundleRepos(value: string | undefined): string[] {
  if (value === undefined || value.trim() === "") return [];
  const example = 'expected a JSON array of repository paths, e.g. ["/"] or ["/team/project"]';
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new ConfigError("BUNDLE_REPOS", `is not valid JSON; ${example}`);
  }
  if (!Array.isArray(parsed)) throw new ConfigError("BUNDLE_REPOS", example);
  return parsed.map((repo) => {
    if (typeof repo !== "string" || !repo.startsWith("/") || /\/\.|[?#\s]/.test(repo)) {
      throw new ConfigError("BUNDLE_REPOS", `${JSON.stringify(repo)} is not a repository path: ${example}`);
    }
    return repo.replace(/\/+$/, "") || "/";
  });
}

/**
 * How long a replaced bundle stays readable: a signed URL's lifetime (URL_TTL, 300 s by
 * default) plus the download of a large bundle on a slow link.
 */
export const DEFAULT_BUNDLE_GRACE_SECONDS = 6 * 3600;

/** BUNDLE_FORMATS: a JSON array of format names, best first, each at most once. */
function parseBundleFormats(value: string | undefined): BundleFormat[] {
  if (value === undefined || value.trim() === "") return [...DEFAULT_BUNDLE_FORMATS];
  const example = `expected a JSON array of bundle formats, best first, from ${BUNDLE_FORMAT_NAMES.join(", ")}; e.g. ${JSON.stringify(DEFAULT_BUNDLE_FORMATS)}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new ConfigError("BUNDLE_FORMATS", `is not valid JSON; ${example}`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0) throw new ConfigError("BUNDLE_FORMATS", example);
  const formats: BundleFormat[] = [];
  for (const name of parsed) {
    if (typeof name !== "string" || !isBundleFormat(name)) throw new ConfigError("BUNDLE_FORMATS", `${JSON.stringify(name)} is not a bundle format: ${example}`);
    if (formats.includes(name)) throw new ConfigError("BUNDLE_FORMATS", `${JSON.stringify(name)} is listed twice: ${example}`);
    formats.push(name);
  }
  return formats;
}
