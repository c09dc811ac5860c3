// Bindings visible to tests that run in workerd.
declare namespace Cloudflare {
  interface Env {
    ORIGIN_URL: string;
    OBJECTS: R2Bucket;
    STATS: DurableObjectNamespace<import("../src/cache/stats.ts").StatsCounter>;
    COALESCER: DurableObjectNamespace<import("../src/cache/coalescer.ts").Coalescer>;
    BUNDLER: DurableObjectNamespace<import("../src/cache/bundler.ts").Bundler>;
    /** Serves test/fixtures/<path> from the host (see vitest.workers.config.ts). */
    FIXTURES: Fetcher;
  }
}
