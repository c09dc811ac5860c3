// Prints one plain closing line for the test suites run by `npm test`, from vitest's JSON
// reports: "N passed, N failed" (", N skipped" when some were), as CI reads it.
import { readFileSync } from "node:fs";

let passed = 0;
let failed = 0;
let skipped = 0;
for (const suite of ["workers", "node"]) {
  const report = JSON.parse(readFileSync(new URL(`../test-results/${suite}.json`, import.meta.url), "utf8"));
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  skipped += report.numPendingTests + report.numTodoTests;
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exitCode = failed > 0 ? 1 : 0;
