/**
 * A warm-up: learn what a clone would fetch (handshake, heads, changesetdata — answered by the
 * origin, as for any clone), plan the clone's exact manifestdata/filesdata batches, and send
 * each one that an earlier run has not finished, reading every answer to the end.
 */
import { ChangesetReader, NULL_NODE, changesetdataArgs, clonePlan, headsFromResponse, recommendedBatchSizes, type PlannedRequest } from "../../src/protocol/clone.ts";
import { bytesEqual, type CborValue } from "../../src/protocol/cbor.ts";
import { CannotWarm, EdgeClient, type Handshake } from "./edge.ts";
import { Progress, formatBytes, progressBar, progressLine, type Outcome } from "./progress.ts";
import { WarmState, requestIdentity } from "./state.ts";

export interface WarmOptions {
  repoUrl: string;
  headers: [string, string][];
  encodings: string[];
  concurrency: number;
  statePath: string;
  fresh: boolean;
  /** Stop after sending this many cacheable requests (the rest is left for a re-run). */
  maxRequests?: number;
  /** After warming, ask for every object again and check each one is answered from the cache. */
  verify: boolean;
  /** Progress output (standard error). */
  progress: { write(text: string): void; isTTY: boolean; columns?: number };
  /** Milliseconds between progress lines when not on a terminal. */
  intervalMs: number;
  signal?: AbortSignal;
}

export interface Failure {
  command: string;
  batch: number;
  error: string;
}

export interface WarmSummary {
  repoUrl: string;
  stateFile: string;
  changesets: number;
  batchSizes: { manifestdata: number; filesdata: number };
  planned: number;
  /** Done by an earlier run and, checked now, still in the edge's cache. */
  skipped: number;
  /**
   * Objects an earlier run recorded, asked for again with one request each and read only up to
   * the response headers when cached; `gone` were no longer cached (a purge, a new
   * CACHE_VERSION) and were warmed again (counted in `sent` and `misses`).
   */
  rechecked: { checked: number; gone: number };
  /** Cacheable requests sent to warm an object in this run (checks answered from the cache and the verification pass not included). */
  sent: number;
  hits: number;
  misses: number;
  /** Misses the edge said it did not store (X-Hgedge-Fill: skipped): not recorded as done. */
  notStored: number;
  failed: Failure[];
  /** Planned objects neither done earlier nor finished now. */
  remaining: number;
  /** X-Hgedge-Cache values seen, with counts. */
  cacheHeaders: Record<string, number>;
  /** Object bytes of this run's answers (read, or announced by a redirect). */
  objectBytes: number;
  /** Bytes received for this run's cacheable answers. */
  wireBytes: number;
  /** Bytes received for the handshake, heads and changesetdata. */
  discoveryBytes: number;
  requests: Record<string, number>;
  seconds: number;
  stopped?: "max-requests" | "interrupted";
  verified?: { checked: number; notCached: number };
}

export async function warm(options: WarmOptions): Promise<WarmSummary> {
  const started = Date.now();
  const client = new EdgeClient({
    repoUrl: options.repoUrl,
    headers: options.headers,
    encodings: options.encodings,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const state = WarmState.load(options.statePath, options.repoUrl, options.fresh);
  const handshake = await client.handshake();
  const batchSizes = recommendedBatchSizes(handshake.descriptor);
  const changesets = await readChangesets(client, handshake);
  const plan = clonePlan(changesets, batchSizes);
  options.progress.write(describePlan(changesets.length, plan, batchSizes, state.file));

  const summary: WarmSummary = {
    repoUrl: options.repoUrl,
    stateFile: state.file,
    changesets: changesets.length,
    batchSizes,
    planned: plan.length,
    skipped: 0,
    rechecked: { checked: 0, gone: 0 },
    sent: 0,
    hits: 0,
    misses: 0,
    notStored: 0,
    failed: [],
    remaining: 0,
    cacheHeaders: {},
    objectBytes: 0,
    wireBytes: 0,
    discoveryBytes: 0,
    requests: {},
    seconds: 0,
  };
  const progress = new Progress(plan.map((p) => p.command));
  const items = plan.map((request) => ({ request, id: requestIdentity(request.command, request.args) }));
  // What an earlier run finished is checked, not trusted: the cache may have been purged since.
  const recorded = items.filter(({ id }) => state.get(id));
  const todo = [...recorded, ...items.filter(({ id }) => !state.get(id))];

  const renderer = startRenderer(options, progress);
  let completed = false;
  try {
    await runPool(todo, options, summary, async ({ request, id }) => {
      progress.start(id, request.command);
      const earlier = state.get(id);
      let outcome: Outcome = "failed";
      let bytes = 0;
      if (earlier) summary.rechecked.checked++;
      else summary.sent++;
      try {
        const answer = await client.warm(
          handshake.apiUrl,
          request.command,
          request.args,
          handshake.targets,
          (n, fraction) => progress.update(id, n, fraction),
          earlier !== undefined,
        );
        if (earlier && answer.cache !== "MISS") {
          summary.skipped++;
          outcome = "still-cached";
          bytes = earlier.bytes;
          return;
        }
        if (earlier) {
          summary.rechecked.gone++;
          summary.sent++;
        }
        bytes = answer.objectBytes;
        summary.objectBytes += answer.objectBytes;
        summary.wireBytes += answer.wireBytes;
        summary.cacheHeaders[answer.cache] = (summary.cacheHeaders[answer.cache] ?? 0) + 1;
        outcome = answer.cache !== "MISS" ? "hit" : answer.fillSkipped ? "not-stored" : "miss";
        if (outcome === "hit") summary.hits++;
        else if (outcome === "miss") summary.misses++;
        else summary.notStored++;
        if (outcome !== "not-stored") {
          state.record(id, { command: request.command, batch: request.batch, bytes, cache: answer.cache, at: new Date().toISOString() });
        } else {
          state.forget(id);
        }
      } catch (error) {
        if (options.signal?.aborted) outcome = "cancelled";
        if (error instanceof CannotWarm || options.signal?.aborted) throw error;
        summary.failed.push({ command: request.command, batch: request.batch, error: error instanceof Error ? error.message : String(error) });
      } finally {
        progress.finish(id, outcome, bytes);
      }
    });
    completed = true;
  } finally {
    // After a fatal error the last progress line would only mislead: the message says it all.
    renderer.stop(completed || Boolean(options.signal?.aborted));
  }
  summary.remaining = todo.length - summary.skipped - summary.hits - summary.misses;
  if (options.verify && !summary.stopped) summary.verified = await verify(client, handshake, items, state);
  summary.discoveryBytes = client.discoveryBytes;
  summary.requests = Object.fromEntries(client.sent);
  summary.seconds = (Date.now() - started) / 1000;
  return summary;
}

/** heads, then changesetdata for all of them: the clone's changesets in the order it adds them. */
async function readChangesets(client: EdgeClient, handshake: Handshake) {
  let heads: Uint8Array[] = [];
  await client.command(handshake.apiUrl, "heads", new Map(), (values: CborValue[]) => {
    heads = headsFromResponse(values);
  });
  if (heads.every((head) => bytesEqual(head, NULL_NODE))) return []; // an empty repository
  const reader = new ChangesetReader();
  await client.command(handshake.apiUrl, "changesetdata", changesetdataArgs(heads), (values) => reader.push(values));
  return reader.finish();
}

function describePlan(changesets: number, plan: PlannedRequest[], sizes: { manifestdata: number; filesdata: number }, stateFile: string): string {
  const count = (command: string) => plan.filter((p) => p.command === command).length;
  return (
    `warm: ${changesets} changesets → ${count("manifestdata")} manifestdata batch(es) of ≤ ${sizes.manifestdata} manifests and ` +
    `${count("filesdata")} filesdata batch(es) of ≤ ${sizes.filesdata} changesets, as a clone asks for them\n` +
    `warm: objects are these batches (their number is exact); their bytes are known once read, so the byte total is an estimate (~)\n` +
    `warm: state file ${stateFile}\n`
  );
}

type Item = { request: PlannedRequest; id: string };

/** Runs `work` over `items`, `concurrency` at a time, until done, capped or interrupted. */
async function runPool(items: Item[], options: WarmOptions, summary: WarmSummary, work: (item: Item) => Promise<void>): Promise<void> {
  let next = 0;
  let fatal: unknown;
  const worker = async () => {
    while (fatal === undefined) {
      if (options.signal?.aborted) {
        summary.stopped = "interrupted";
        return;
      }
      if (options.maxRequests !== undefined && summary.sent >= options.maxRequests) {
        if (next < items.length) summary.stopped = "max-requests";
        return;
      }
      const item = items[next++];
      if (!item) return;
      try {
        await work(item);
      } catch (error) {
        if (options.signal?.aborted) {
          summary.stopped = "interrupted";
          return;
        }
        fatal ??= error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, worker));
  if (fatal !== undefined) throw fatal;
}

/** Asks for every object again: each should now come from the cache; a miss is read (and so stored) again. */
async function verify(client: EdgeClient, handshake: Handshake, items: Item[], state: WarmState): Promise<{ checked: number; notCached: number }> {
  let notCached = 0;
  for (const { request, id } of items) {
    const answer = await client.warm(handshake.apiUrl, request.command, request.args, handshake.targets, () => undefined);
    if (answer.cache === "MISS") {
      notCached++;
      if (answer.fillSkipped) state.forget(id);
    }
  }
  return { checked: items.length, notCached };
}

function startRenderer(options: WarmOptions, progress: Progress): { stop(finalLine: boolean): void } {
  const out = options.progress;
  const draw = () => {
    const snapshot = progress.snapshot();
    if (out.isTTY) out.write(`\r${progressBar(snapshot, out.columns ?? 100)}\x1b[K`);
    else out.write(`${progressLine(snapshot)}\n`);
  };
  const timer = setInterval(draw, out.isTTY ? 200 : options.intervalMs);
  return {
    stop(finalLine) {
      clearInterval(timer);
      if (!finalLine) {
        if (out.isTTY) out.write("\r\x1b[K");
        return;
      }
      if (out.isTTY) out.write(`\r${progressBar(progress.snapshot(), out.columns ?? 100)}\x1b[K\n`);
      else out.write(`${progressLine(progress.snapshot())}\n`);
    },
  };
}

export function formatSummary(s: WarmSummary): string {
  const lines = [
    `warmed ${s.repoUrl} in ${s.seconds.toFixed(1)} s: ${s.planned} objects planned from ${s.changesets} changesets`,
    `  this run: ${s.sent} cacheable requests — ${s.hits} hits, ${s.misses} misses stored, ${s.notStored} misses not stored (edge busy), ${s.failed.length} failed`,
    `  X-Hgedge-Cache: ${Object.entries(s.cacheHeaders).map(([k, v]) => `${k} ${v}`).join(", ") || "none"}`,
    `  skipped: ${s.skipped} done by an earlier run and still cached (state ${s.stateFile}; ${s.rechecked.checked} checked, ${s.rechecked.gone} no longer cached and warmed again)`,
    `  bytes: ${formatBytes(s.objectBytes)} of objects (${s.objectBytes} B), ${formatBytes(s.wireBytes)} received for them, ` +
      `${formatBytes(s.discoveryBytes)} for capabilities, heads and changesetdata`,
    `  requests: ${Object.entries(s.requests).map(([k, v]) => `${k} ${v}`).join(", ")}`,
  ];
  for (const f of s.failed) lines.push(`  failed: ${f.command} batch ${f.batch}: ${f.error}`);
  if (s.verified) lines.push(`  verified: ${s.verified.checked} objects asked again, ${s.verified.notCached} were not in the cache`);
  if (s.stopped === "max-requests") lines.push(`  stopped after --max-requests: ${s.remaining} objects left; run again to continue`);
  if (s.stopped === "interrupted") lines.push(`  interrupted: ${s.remaining} objects left; run again to continue`);
  else if (s.remaining > 0 && !s.stopped) lines.push(`  ${s.remaining} objects not warm; run again to retry them`);
  return `${lines.join("\n")}\n`;
}
