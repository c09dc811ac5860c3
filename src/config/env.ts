/**
 * The Worker's bindings as wrangler hands them over (wrangler.toml [vars], secrets, R2 and
 * Durable Object bindings). Only src/config.ts reads them; everything else gets a Config.
 *
 * The Durable Object namespaces are declared without their classes (see DurableObjectBinding).
 */
/**
 * A Durable Object binding, its class left open: config sits below the cache layer that defines
 * the classes, so each class's module names it where it makes a stub (e.g. coalescerStub).
 */
// biome-ignore lint/suspicious/noExplicitAny: the class is named by the stub function of its own module.
export type DurableObjectBinding = DurableObjectNamespace<any>;

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
  /** Most responses one isolate stores at once (each holds up to one 5 MiB R2 part). */
  FILL_CONCURRENCY?: string;
  /** Secret: bearer token of the admin API; unset, the API is off. */
  ADMIN_TOKEN?: string;
  /** Durable Object namespace: single-flight of concurrent misses (src/cache/coalescer.ts). */
  COALESCER?: DurableObjectBinding;
  /** Milliseconds a miss waits for another request's fill of the same object. */
  COALESCE_WAIT_MS?: string;
  /** Durable Object namespace: cache counters per repository (src/cache/stats.ts). */
  STATS?: DurableObjectBinding;
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
  BUNDLER?: DurableObjectBinding;
}
