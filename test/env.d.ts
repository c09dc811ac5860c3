// Bindings visible to tests that run in workerd.
declare namespace Cloudflare {
  interface Env {
    ORIGIN_URL: string;
    OBJECTS: R2Bucket;
    /** Serves ../shared/fixtures/<path> from the host (see vitest.workers.config.ts). */
    FIXTURES: Fetcher;
  }
}
