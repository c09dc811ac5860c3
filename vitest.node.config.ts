/**
 * Suites that need the host: real Mercurial processes (hg serve, hg clone), the differential test
 * against Mercurial's own Python codec, and the CLIs. They run in Node, not workerd, because code
 * inside workerd cannot spawn processes.
 */
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // The JSON report feeds the plain "N passed, N failed" line .ci/run prints at the end.
    reporters: ["default", ["json", { outputFile: "test-results/node.json" }]],
    include: ["test/node/**/*.test.ts"],
    // Console output (and the edge's, see test/support/node-setup.ts) only for failing tests.
    silent: "passed-only",
    // Node 20's node:zlib has no zstd: the Node-only decoder the CLIs use (the Worker's is native).
    setupFiles: ["test/support/node-setup.ts", "./scripts/zstd-fallback.ts"],
    environment: "node",
    testTimeout: 180_000,
    hookTimeout: 120_000,
    // Real hg processes are CPU-heavy; two cores on CI.
    fileParallelism: true,
    maxWorkers: 2,
  },
});
