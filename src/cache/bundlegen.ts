/**
 * Making a repository's clone bundles from the origin, in the formats BUNDLE_FORMATS lists:
 *
 * - `stream-v2`: the origin's own stream clone (a v1 `getbundle` with `stream=1`), stored as
 *   it comes: a bundle2 stream with one `stream2` part, whose files and bytes are checked
 *   against what the part announced. An origin that refuses stream clones (it advertises none,
 *   or answers with an error part) is noted in the record (`skipped`) and the other formats
 *   are made anyway.
 * - `zstd-v2`, `gzip-v2`, `none-v2`: one `getbundle` of every head over nothing (changegroup
 *   02, phases), its transport compression taken off, checked by the bundle2 scanner, and
 *   written to each format at once — as it is, or behind a `Compression=` stream parameter
 *   through the native compressor.
 *
 * Every bundle streams into R2 in parts (bounded memory whatever its size) and is committed
 * only when whole; the record naming them is written after the last one. Anything else leaves
 * the previous record and bundles current.
 */
import { servingCache, type Config } from "../config.ts";
import { commitBundleRecord, newBundleName, newRecord, readBundleRecord, BUNDLE_CONTENT_TYPE, type BundleRecord, type RetiredBundle, type StoredBundle } from "./bundles.ts";
import { BundleError, originAbilities, originChangegroup, originHeads, originStreamClone, originText, type BundleOrigin } from "./bundleorigin.ts";
import type { OriginFetch } from "../origin/client.ts";
import { createCompressor, type ChunkCompressor } from "./compress.ts";
import { ObjectWriter } from "./store.ts";
import { Bundle2Scanner, BUNDLE2_COMPRESSION, PLAIN_BUNDLE2_HEADER_BYTES, bundleSpecOf, compressedBundle2Header, type Bundle2Summary } from "../protocol/bundle2.ts";
import { isChangegroupFormat, type BundleFormat, type ChangegroupFormat } from "../protocol/clonebundles.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { logEvent as log } from "../log.ts";

export type GenerationOutcome =
  | { ok: true; record: BundleRecord; removed: string[]; retired: RetiredBundle[] }
  | { ok: false; status: number; error: string; kept?: string[] };

/** Where a running generation is, for `admin/stats`. */
export interface GenerationProgress {
  format: BundleFormat;
  /** Bytes read from the origin (uncompressed) for this format. */
  bytes: number;
}

export interface GenerationOptions {
  /** R2 part size (tests use small ones to exercise multipart uploads). */
  partSize?: number;
  /** Called as bytes arrive, at most once per R2 part's worth. */
  onProgress?: (progress: GenerationProgress) => void;
}

const PROGRESS_STEP_BYTES = 8 * 1024 * 1024;

/**
 * Makes every configured bundle of `repo` and, only if all went well, makes them current. Runs
 * as long as the origin takes to send them: call it where that is allowed (a Durable Object
 * alarm, the admin request, a cron invocation), never from waitUntil.
 */
export async function generateBundles(config: Config, fetchOrigin: OriginFetch, repo: string, options: GenerationOptions = {}): Promise<GenerationOutcome> {
  const cache = servingCache(config);
  if (!cache) return { ok: false, status: 503, error: `clone bundles are off: ${offReason(config)}` };
  const bucket = cache.bucket;
  const previous = await readBundleRecord(bucket, repo, config.originUrl.href).catch(() => undefined);
  const kept = previous ? { kept: previous.bundles.map((b) => b.name) } : {};
  const createdAt = new Date();
  const writers: ObjectWriter[] = [];
  const open = (format: BundleFormat) => {
    const writer = new ObjectWriter(bucket, newBundleName(repo, format, createdAt), "clonebundle", options.partSize, BUNDLE_CONTENT_TYPE);
    writers.push(writer);
    return writer;
  };
  try {
    const origin: BundleOrigin = { config, fetch: fetchOrigin };
    const abilities = await originAbilities(origin, repo);
    const heads = await originHeads(origin, repo);
    if (heads.length === 0) throw new BundleError(409, `${repo} has no changesets: there is nothing to bundle`);
    const made = new Map<BundleFormat, StoredBundle>();
    const skipped: Partial<Record<BundleFormat, string>> = {};
    let changesets = 0;
    if (config.bundleFormats.includes("stream-v2")) {
      if (abilities.streamRefusal) skipped["stream-v2"] = abilities.streamRefusal;
      else {
        const stream = await streamBundle(origin, repo, heads, abilities.headerLimit, open("stream-v2"), options);
        if (stream.ok) made.set("stream-v2", stream.bundle);
        else skipped["stream-v2"] = stream.reason;
      }
    }
    const changegroupFormats = config.bundleFormats.filter(isChangegroupFormat);
    if (changegroupFormats.length > 0) {
      const bundle = await originChangegroup(origin, repo, heads, [], true, abilities.headerLimit);
      const result = await changegroupBundles(bundle, changegroupFormats.map((format) => ({ format, writer: open(format) })), options);
      for (const stored of result.bundles) made.set(stored.format, stored);
      changesets = result.summary.changesets;
    }
    if (made.size === 0) throw new BundleError(502, `no bundle could be made: ${Object.values(skipped).join("; ")}`);
    const record = newRecord({
      repo,
      bundles: config.bundleFormats.flatMap((format) => made.get(format) ?? []),
      heads,
      changesets,
      createdAt: createdAt.toISOString(),
      origin: config.originUrl.href,
      ...(Object.keys(skipped).length > 0 ? { skipped } : {}),
    });
    const { removed, retired } = await commitBundleRecord(bucket, record, config.bundleGraceSeconds * 1000);
    log("info", "bundle-generated", { repo, bundles: record.bundles.map((b) => ({ format: b.format, size: b.size })), changesets, skipped, removed });
    return { ok: true, record, removed, retired };
  } catch (error) {
    await Promise.all(writers.map((writer) => writer.abort().catch(() => undefined)));
    const status = error instanceof BundleError ? error.status : 502;
    const message = error instanceof BundleError || error instanceof ProtocolError ? error.message : `bundle generation failed: ${String(error)}`;
    log("warn", "bundle-generation-failed", { repo, error: message, ...kept });
    return { ok: false, status, error: message, ...kept };
  }
}

type StreamResult = { ok: true; bundle: StoredBundle } | { ok: false; reason: string };

/**
 * The origin's stream clone into `writer`. A refusal in the answer itself (an error part: the
 * origin's settings changed since its capabilities, or it has secret changesets now) is a
 * reason to skip the format; a broken transfer is an error.
 */
async function streamBundle(origin: BundleOrigin, repo: string, heads: string[], headerLimit: number, writer: ObjectWriter, options: GenerationOptions): Promise<StreamResult> {
  const scanner = new Bundle2Scanner();
  try {
    await pump(await originStreamClone(origin, repo, heads, headerLimit), (chunk) => {
      scanner.push(chunk);
      return writer.write(chunk);
    }, (bytes) => options.onProgress?.({ format: "stream-v2", bytes }));
  } catch (error) {
    await writer.abort();
    if (error instanceof ProtocolError && /sent an error/.test(error.message)) return { ok: false, reason: `the origin refused its stream clone: ${error.message}` };
    throw error;
  }
  const summary = scanner.finish();
  if (!summary.stream) {
    await writer.abort();
    return { ok: false, reason: "the origin answered the stream clone request without a stream2 part" };
  }
  const committed = await writer.commit();
  return { ok: true, bundle: { format: "stream-v2", name: committed.name, bundlespec: bundleSpecOf(summary), size: committed.size, sha256: committed.sha256 } };
}

/** How one changegroup format is written: the bytes as they come, or compressed behind its header. */
interface Sink {
  format: ChangegroupFormat;
  writer: ObjectWriter;
  compressor?: ChunkCompressor;
}

/** One changegroup stream, checked, written to every format's writer; each committed once whole. */
async function changegroupBundles(bundle: ReadableStream<Uint8Array>, outputs: { format: ChangegroupFormat; writer: ObjectWriter }[], options: GenerationOptions): Promise<{ bundles: StoredBundle[]; summary: Bundle2Summary }> {
  const sinks: Sink[] = outputs.map(({ format, writer }) => {
    if (format === "none-v2") return { format, writer };
    return { format, writer, compressor: createCompressor(format === "zstd-v2" ? "zstd" : "gzip") };
  });
  const scanner = new Bundle2Scanner();
  let offset = 0;
  try {
    for (const sink of sinks) {
      if (sink.compressor) await sink.writer.write(compressedBundle2Header(sink.format === "zstd-v2" ? BUNDLE2_COMPRESSION.zstd : BUNDLE2_COMPRESSION.gzip));
    }
    await pump(bundle, async (chunk) => {
      scanner.push(chunk);
      // A compressed bundle has its own header; the plain one's (magic, no stream parameters) is dropped.
      const body = offset >= PLAIN_BUNDLE2_HEADER_BYTES ? chunk : chunk.subarray(PLAIN_BUNDLE2_HEADER_BYTES - offset);
      for (let i = 0; offset + i < PLAIN_BUNDLE2_HEADER_BYTES && i < chunk.length; i++) {
        // Bytes 4-7 are the size of the stream parameters: none, or the header dropped is not all there is.
        if (offset + i >= 4 && chunk[i] !== 0) throw new BundleError(502, "the origin's bundle has stream parameters: hgedge stores only plain ones");
      }
      offset += chunk.length;
      for (const sink of sinks) {
        if (!sink.compressor) await sink.writer.write(chunk);
        else if (body.length > 0) for (const out of await sink.compressor.push(body)) await sink.writer.write(out);
      }
    }, (bytes) => options.onProgress?.({ format: sinks[0]!.format, bytes }));
    const summary = scanner.finish();
    if (summary.announcedChangesets !== undefined && summary.announcedChangesets !== summary.changesets) {
      throw new BundleError(502, `the changegroup announced ${summary.announcedChangesets} changesets but holds ${summary.changesets}`);
    }
    const plainSpec = bundleSpecOf(summary);
    const bundles: StoredBundle[] = [];
    for (const sink of sinks) {
      if (sink.compressor) for (const out of await sink.compressor.finish()) await sink.writer.write(out);
      const committed = await sink.writer.commit();
      const bundlespec = sink.format === "none-v2" ? plainSpec : sink.format;
      bundles.push({ format: sink.format, name: committed.name, bundlespec, size: committed.size, sha256: committed.sha256 });
    }
    return { bundles, summary };
  } catch (error) {
    for (const sink of sinks) sink.compressor?.abort();
    throw error;
  }
}

/** Reads `stream` to its end, handing each chunk to `write` (awaited: backpressure), and reports progress. */
async function pump(stream: ReadableStream<Uint8Array>, write: (chunk: Uint8Array) => Promise<void> | void, progress: (bytes: number) => void): Promise<void> {
  const reader = stream.getReader();
  let bytes = 0;
  let reported = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      await write(value);
      bytes += value.length;
      if (bytes - reported >= PROGRESS_STEP_BYTES) progress((reported = bytes));
    }
    progress(bytes);
  } catch (error) {
    await reader.cancel(String(error)).catch(() => undefined);
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Freshness

export type FreshnessVerdict = { regenerate: boolean; reason: string };

/**
 * Whether the bundles of `repo` are stale enough to make new ones. Cheap on the origin: `heads`
 * (one line) settles the common case of nothing new. When heads moved, `known` says whether the
 * bundle's heads still exist (a rewritten history must not be served), and a `getbundle` of just
 * the new part (common = the bundle's heads) is read only until its changegroup part header
 * announces the count (`nbchanges`, which Mercurial sends) or `threshold` changelog entries were
 * seen — then cut. The alternatives cost more or say less: hgweb pages carry no count and need
 * not exist, and `between` only walks first parents.
 */
export async function freshness(config: Config, fetchOrigin: OriginFetch, record: BundleRecord, threshold: number): Promise<FreshnessVerdict> {
  const origin = { config, fetch: fetchOrigin };
  const configured = config.bundleFormats.filter((format) => !record.bundles.some((b) => b.format === format) && !record.skipped?.[format]);
  if (configured.length > 0) return { regenerate: true, reason: `BUNDLE_FORMATS lists ${configured.join(", ")}, which the current bundles lack` };
  const heads = await originHeads(origin, record.repo);
  if (heads.join(" ") === record.heads.join(" ")) return { regenerate: false, reason: "the origin's heads are the bundle's" };
  const known = (await originText(origin, record.repo, "known", { nodes: record.heads.join(" ") })).trim();
  if (known.length !== record.heads.length || known.includes("0")) return { regenerate: true, reason: "a head of the bundle is gone from the origin (history rewritten)" };
  const { headerLimit } = await originAbilities(origin, record.repo);
  const count = await countNewChangesets(await originChangegroup(origin, record.repo, heads, record.heads, false, headerLimit), threshold);
  return count >= threshold
    ? { regenerate: true, reason: `${count}${count === threshold ? " or more" : ""} new changesets (BUNDLE_MIN_NEW_CHANGESETS=${threshold})` }
    : { regenerate: false, reason: `${count} new changesets, fewer than BUNDLE_MIN_NEW_CHANGESETS=${threshold}` };
}

async function countNewChangesets(bundle: ReadableStream<Uint8Array>, threshold: number): Promise<number> {
  const scanner = new Bundle2Scanner();
  const reader = bundle.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return scanner.finish().changesets;
      scanner.push(value);
      const { announcedChangesets, changesets } = scanner.summary;
      if (announcedChangesets !== undefined) return announcedChangesets;
      if (changesets >= threshold) return threshold;
    }
  } finally {
    await reader.cancel("counted").catch(() => undefined);
  }
}

/** What a freshness check followed (maybe) by a generation came to. */
export interface RefreshResult {
  repo: string;
  action: "kept" | "generated" | "failed" | "skipped";
  reason: string;
  status?: number;
  record?: BundleRecord;
}

/** Makes new bundles of `repo` if there are none or they are stale; otherwise leaves them. */
export async function refreshBundles(config: Config, fetchOrigin: OriginFetch, repo: string, options: GenerationOptions = {}): Promise<RefreshResult> {
  const cache = servingCache(config);
  if (!cache) return { repo, action: "skipped", reason: offReason(config) };
  let verdict: FreshnessVerdict;
  try {
    const record = await readBundleRecord(cache.bucket, repo, config.originUrl.href);
    verdict = record ? await freshness(config, fetchOrigin, record, config.bundleMinNewChangesets) : { regenerate: true, reason: "no bundle yet" };
  } catch (error) {
    return { repo, action: "failed", reason: `could not tell whether the bundle is stale: ${error instanceof Error ? error.message : String(error)}` };
  }
  if (!verdict.regenerate) return { repo, action: "kept", reason: verdict.reason };
  const outcome = await generateBundles(config, fetchOrigin, repo, options);
  return outcome.ok
    ? { repo, action: "generated", reason: verdict.reason, record: outcome.record }
    : { repo, action: "failed", reason: `${verdict.reason}; generation failed: ${outcome.error}`, status: outcome.status };
}

/** Why clone bundles are off (the cache is off: no bucket, or no way to hand out URLs). */
export function offReason(config: Config): string {
  return config.cache.mode === "off" ? config.cache.reason : "";
}
