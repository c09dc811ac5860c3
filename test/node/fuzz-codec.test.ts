/**
 * The codec fuzz properties (test/support/fuzz-properties.ts) in Node: the same cases as inside
 * workerd (test/protocol/fuzz.test.ts, which also fuzzes the app), plus a check that no case
 * allocates more than MEMORY_BUDGET_BYTES of buffers — process.memoryUsage is only real here.
 *
 *   npx vitest run --config vitest.node.config.ts test/node/fuzz-codec.test.ts           # CI size
 *   HGEDGE_FUZZ_RUNS=1000000 npx vitest run --config vitest.node.config.ts test/node/fuzz-codec.test.ts
 *   HGEDGE_FUZZ_SEED=<seed> ...                                                            # replay
 *
 * The same properties also run inside workerd (test/protocol/fuzz.test.ts) together with the
 * app property; the recorded exchanges are read here from test/fixtures on disk.
 */
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildCorpus, codecProperties, fuzzSettings, outcomes, planRuns, runProperty, seedFor, type CorpusExchange } from "../support/fuzz-properties.ts";
import { assertFixturesPresent, fixturesDir } from "../../harness/paths.ts";

assertFixturesPresent();

async function loadExchanges(): Promise<CorpusExchange[]> {
  const out: CorpusExchange[] = [];
  for (const scenario of (await readdir(fixturesDir)).sort()) {
    if (scenario.includes(".")) continue;
    const files = await readdir(join(fixturesDir, scenario));
    for (const seq of files.filter((f) => /^\d{3}\.json$/.test(f)).map((f) => f.slice(0, 3)).sort()) {
      const meta = JSON.parse(await readFile(join(fixturesDir, scenario, `${seq}.json`), "utf8")) as CorpusExchange["meta"];
      const response = new Uint8Array(await readFile(join(fixturesDir, scenario, `${seq}-response.body`)));
      const request = files.includes(`${seq}-request.body`) ? new Uint8Array(await readFile(join(fixturesDir, scenario, `${seq}-request.body`))) : undefined;
      out.push(request ? { scenario, seq, meta, request, response } : { scenario, seq, meta, response });
    }
  }
  return out;
}

const settings = fuzzSettings();
const corpus = buildCorpus(await loadExchanges());
const properties = codecProperties(corpus);
const plan = planRuns(properties, settings.totalRuns);
const report: string[] = [];
let peakRss = 0;

describe(`codec fuzzing (seed ${settings.seed}, ${settings.totalRuns ?? "default"} runs)`, () => {
  it("has a corpus from the fixtures", () => {
    expect(corpus.requests.length).toBeGreaterThan(20);
    expect(corpus.responses.length).toBeGreaterThan(20);
    expect(corpus.cbor.length).toBeGreaterThan(50);
  });

  for (const p of properties) {
    const runs = plan.get(p.name) as number;
    // Long mode: no per-test limit (a hang is still caught per case by CASE_BUDGET_MS).
    it(`${p.name} [${runs} cases]`, { timeout: settings.totalRuns === undefined ? 120_000 : 0 }, async () => {
      const start = performance.now();
      await runProperty(p, runs, settings.seed);
      const seconds = (performance.now() - start) / 1000;
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      report.push(`${p.name}: ${runs} cases in ${seconds.toFixed(1)} s (seed ${seedFor(settings.seed, p.name)})`);
      // Memory stays bounded: inputs are ≤ 64 KiB, and nothing may accumulate across cases.
      expect(process.memoryUsage().heapUsed).toBeLessThan(1024 * 1024 * 1024);
    });
  }

  afterAll(() => {
    const total = [...plan.values()].reduce((a, b) => a + b, 0);
    console.log(
      `fuzz-codec: seed ${settings.seed}, ${total} cases, peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MiB\n  ${report.join("\n  ")}\n  outcomes: ${JSON.stringify(Object.fromEntries([...outcomes].sort()))}`,
    );
  });
});
