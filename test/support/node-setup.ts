/**
 * Set-up for every Node-side test file (vitest.node.config.ts): a failing test shows the output
 * of the edges (wrangler dev) running at the time. Passing tests print nothing of it: the edge
 * logs a JSON line per request, thousands in a run.
 */
import { beforeEach } from "vitest";
import { runningEdges } from "../../harness/edge.ts";

/** Enough for the last requests and any stack trace, not a whole run's log. */
const SHOWN_CHARS = 16_000;

beforeEach(({ onTestFailed }) => {
  onTestFailed(() => {
    for (const edge of runningEdges()) {
      const output = edge.output();
      const shown = output.length > SHOWN_CHARS ? `…${output.slice(-SHOWN_CHARS)}` : output;
      console.error(`--- output of the edge at ${edge.url} (wrangler dev) ---\n${shown}--- end of the edge's output ---`);
    }
  });
});
