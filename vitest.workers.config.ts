/**
 * Unit and integration suites, run inside workerd (@cloudflare/vitest-pool-workers) so that they
 * exercise the real runtime. The recorded exchanges in test/fixtures are read through a service
 * binding served by this Node process (workerd has no access to the host file system).
 */
import { readFile, readdir, stat } from "node:fs/promises";
import { resolve, sep } from "node:path";
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";
import { assertFixturesPresent, fixturesDir } from "./harness/paths.ts";

assertFixturesPresent();

async function serveFixture(request: Request): Promise<Response> {
  const path = decodeURIComponent(new URL(request.url).pathname).replace(/^\/+/, "");
  const file = resolve(fixturesDir, path);
  if (file !== fixturesDir && !file.startsWith(fixturesDir + sep)) return new Response("outside the fixtures", { status: 403 });
  try {
    if ((await stat(file)).isDirectory()) return Response.json(await readdir(file));
    return new Response(await readFile(file));
  } catch {
    return new Response(`no fixture ${path}`, { status: 404 });
  }
}

export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        // The Bundler Durable Object reads its configuration from these (tests build the app's own).
        bindings: { ORIGIN_URL: "http://origin.test", ACCESS: "public", URL_TTL: "1", BUNDLE_GRACE_SECONDS: "2" },
        serviceBindings: { FIXTURES: serveFixture as never },
      },
    }),
  ],
  test: {
    // The JSON report feeds the plain "N passed, N failed" line .ci/run prints at the end.
    reporters: ["default", ["json", { outputFile: "test-results/workers.json" }]],
    include: ["test/protocol/**/*.test.ts", "test/edge/**/*.test.ts", "test/cache/**/*.test.ts", "test/io/**/*.test.ts", "test/origin/**/*.test.ts", "test/*.test.ts"],
    // The app logs a JSON line per request: shown only for failing tests.
    silent: "passed-only",
    testTimeout: 60_000,
  },
});
