/**
 * The layer rules of hgedge, checked by `npm run lint:layers` (part of `npm test`, so CI fails
 * on a violation). docs/architecture.md ("Layer rules") says the same in prose.
 *
 * Layers, top to bottom: src/index.ts → src/edge → src/cache → src/origin → src/config;
 * src/io, src/protocol and src/log.ts are leaves beneath them. A layer never imports one
 * above it, each rule below names what it may import, and nothing in src/ forms an import cycle.
 */

/** src/config.ts today, or a src/config/ folder when it grows one. */
const CONFIG = "^src/config(\\.ts$|/)";
const LOG = "^src/log\\.ts$";

/**
 * The test files that test a script: the only test files that may import scripts/, and only
 * the script they test. Anything else both sides need belongs in harness/.
 */
const SCRIPT_TESTS = [
  { test: "^test/node/docs-links\\.test\\.ts$", scripts: ["^scripts/check-links\\.ts$"] },
  { test: "^test/node/frames-(cli|encode)\\.test\\.ts$", scripts: ["^scripts/frames\\.ts$"] },
  { test: "^test/node/start\\.test\\.ts$", scripts: ["^scripts/start\\.ts$", "^scripts/deploy\\.ts$"] },
  { test: "^test/node/warm(-parts)?\\.test\\.ts$", scripts: ["^scripts/warm\\.ts$", "^scripts/warm/"] },
];

/** A layer may import, inside src/, only these (rules below forbid every other src/ module). */
function onlyInsideSrc(name, comment, from, allowed) {
  return { name, comment, severity: "error", from: { path: from }, to: { path: "^src/", pathNot: allowed } };
}

module.exports = {
  forbidden: [
    // Cycles first: a cycle makes "which layer is lower" meaningless, and it is what the
    // layering fixes. Type-only imports count (tsPreCompilationDeps below): a type cycle still
    // ties two modules together for every reader and every refactor.
    {
      name: "no-cycle",
      comment: "An import cycle in src/ ties its modules together: no layer can be read, tested or moved without the others. Move the shared part down a layer.",
      severity: "error",
      from: { path: "^src/" },
      to: { circular: true },
    },
    {
      name: "nobody-imports-the-entry",
      comment: "src/index.ts wires the Worker together (app, cron, Durable Object classes); importing it pulls in the whole Worker. Import the module that defines what you need.",
      severity: "error",
      from: { path: "^src/", pathNot: "^src/index\\.ts$" },
      to: { path: "^src/index\\.ts$" },
    },
    onlyInsideSrc(
      "cache-below-edge",
      "src/cache is the cache as a service, used by the HTTP layer: it must not know about routes or requests (src/edge) or the entry.",
      "^src/cache/",
      ["^src/(cache|origin|io|protocol)/", CONFIG, LOG],
    ),
    onlyInsideSrc(
      "origin-below-cache",
      "src/origin talks to the origin (URLs, headers, timeouts, retries); the cache and the edge use it, it uses neither.",
      "^src/origin/",
      ["^src/(origin|io|protocol)/", CONFIG, LOG],
    ),
    onlyInsideSrc(
      "config-reads-settings-only",
      "src/config turns bindings into a validated Config; every layer reads it, so it may depend on nothing but pure protocol code.",
      CONFIG,
      ["^src/protocol/", CONFIG],
    ),
    {
      name: "io-is-plumbing",
      comment: "src/io is byte-stream plumbing and response helpers for every layer above it: it imports only itself and the pure protocol layer below it (Workers globals need no import).",
      severity: "error",
      from: { path: "^src/io/" },
      to: { pathNot: ["^src/io/", "^src/protocol/"] },
    },
    {
      name: "protocol-is-pure",
      comment: "src/protocol is pure (bytes in, values out): no Workers APIs, no I/O, no settings, so it runs and is fuzzed the same in Node and workerd. Only node:zlib and node:buffer, which both have.",
      severity: "error",
      from: { path: "^src/protocol/" },
      to: { pathNot: ["^src/protocol/", "^(node:)?(zlib|buffer)$"] },
    },
    {
      name: "log-imports-nothing",
      comment: "src/log.ts is used by every layer; any import there would sit below all of them.",
      severity: "error",
      from: { path: LOG },
      to: {},
    },
    {
      name: "scripts-not-on-tests",
      comment: "Scripts (benchmarks, demo, recorder, CLIs) run without the test suites: what both share lives in harness/.",
      severity: "error",
      from: { path: "^scripts/" },
      to: { path: "^test/" },
    },
    {
      name: "tests-not-on-scripts",
      comment: "A test imports a script only to test that very script (list in SCRIPT_TESTS); shared helpers belong in harness/.",
      severity: "error",
      from: { path: "^test/", pathNot: SCRIPT_TESTS.map((entry) => entry.test) },
      to: { path: "^scripts/" },
    },
    ...SCRIPT_TESTS.map((entry) => ({
      name: "tests-not-on-scripts",
      comment: "This test may import only the script it tests; shared helpers belong in harness/.",
      severity: "error",
      from: { path: entry.test },
      to: { path: "^scripts/", pathNot: entry.scripts },
    })),
    {
      name: "harness-on-src-only",
      comment: "harness/ (real Mercurial, local edges, concurrent clones) serves tests and scripts both, so it may lean on neither: only src/ and itself (and packages).",
      severity: "error",
      from: { path: "^harness/" },
      to: { dependencyTypes: ["local"], pathNot: ["^harness/", "^src/"] },
    },
    // Guards the check itself: an import this tool cannot resolve (a typo, or a resolver that no
    // longer understands `.ts` extensions) would silently escape every rule above.
    {
      name: "resolvable",
      comment: "An import that does not resolve escapes the layer rules. Runtime-provided modules (cloudflare:*) are the only ones allowed to.",
      severity: "error",
      from: {},
      to: { couldNotResolve: true, pathNot: "^cloudflare:" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    // Type-only imports are dependencies too (see no-cycle).
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    // Imports are written with their `.ts` extension (allowImportingTsExtensions); also accept
    // extension-less ones the way TypeScript's bundler resolution does.
    enhancedResolveOptions: {
      extensions: [".ts", ".mjs", ".js", ".json"],
      // Packages such as hono publish their entry points (hono/factory) only in "exports".
      exportsFields: ["exports"],
      conditionNames: ["import", "workerd", "worker", "node", "default"],
      mainFields: ["module", "main", "types"],
    },
  },
};
