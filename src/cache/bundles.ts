/**
 * Clone bundles in R2: where they live and the record of the current ones.
 *
 *     .bundles/<repo>/<created>-<random>-<format>.hg   one bundle of the repository (immutable)
 *     .bundles/<repo>/current.json                     the record clients are listed from
 *
 * `<repo>` is repositoryPrefix's (`.root` for `/`), so purging a repository's cache
 * (`<repo>/…`) never touches its bundles. Bundles are written under fresh names (a hash is
 * known only at the end, and an R2 object cannot be renamed) and become current together when
 * the record naming them is written — after every upload completed. The bundles a new record
 * replaces are not deleted then: a client may hold a manifest (or a signed URL) that names them
 * and start its download a moment later. The record keeps them as `retired`, with the time they
 * were replaced, and they are deleted once BUNDLE_GRACE_SECONDS have passed (by the generator's
 * alarm, or the cron trigger). Until a new record is written the previous record and bundles
 * stay as they were, so a failed generation changes nothing clients see.
 */
import { repositoryPrefix } from "./keys.ts";
import { logEvent as log } from "../log.ts";
import { isBundleFormat, type BundleFormat } from "../protocol/clonebundles.ts";

export const BUNDLES_SEGMENT = ".bundles";
export const RECORD_FILE = "current.json";
/** Bundles are bytes of Mercurial's own bundle format; no more specific type is registered. */
export const BUNDLE_CONTENT_TYPE = "application/octet-stream";
/**
 * `20260702T101500Z-0123456789abcdef-zstd-v2.hg`: the creation time (readable at a glance), 64
 * random bits and the format (records of format 1 named bundles without it).
 */
export const BUNDLE_FILE_PATTERN = /^\d{8}T\d{6}Z-[0-9a-f]{16}(?:-[a-z0-9]+-v2)?\.hg$/;
/**
 * A bundle no record names and older than this is a leftover (a generation that stopped between
 * completing its uploads and writing its record) and is deleted. Far longer than a generation,
 * so a running generation's finished uploads are never taken for one.
 */
export const ORPHAN_GRACE_MS = 6 * 60 * 60 * 1000;
const RECORD_FORMAT = 2;

/** One stored bundle, in the manifest as `<url> BUNDLESPEC=<bundlespec>`. */
export interface StoredBundle {
  format: BundleFormat;
  /** R2 object name. */
  name: string;
  /** `hg help bundlespec`, exactly as `hg debugbundle --spec` prints it. */
  bundlespec: string;
  size: number;
  sha256: string;
}

export interface RetiredBundle {
  name: string;
  /** ISO time the record that replaced it was written. */
  retiredAt: string;
}

export interface BundleRecord {
  format: number;
  /** Repository path, e.g. "/" or "/team/project". */
  repo: string;
  /** The bundles, best first (BUNDLE_FORMATS order, those that could be made). */
  bundles: StoredBundle[];
  /** The heads the origin had when the generation started (40-hex, sorted). */
  heads: string[];
  /** Changesets of the changegroup bundles (0 when only a stream bundle was made). */
  changesets: number;
  /** ISO time the generation started. */
  createdAt: string;
  /** The origin it came from: a record written for another origin is not served. */
  origin: string;
  /** Why a configured format is missing (e.g. the origin refuses stream clones). */
  skipped?: Partial<Record<BundleFormat, string>>;
  /** Bundles replaced by this record, readable until their grace period ends. */
  retired: RetiredBundle[];
}

export function bundleDirectory(repo: string): string {
  return `${BUNDLES_SEGMENT}/${repositoryPrefix(repo)}`;
}

export function bundleRecordName(repo: string): string {
  return `${bundleDirectory(repo)}${RECORD_FILE}`;
}

/** A fresh, never reused name for a bundle of `repo` in `format` started at `now`. */
export function newBundleName(repo: string, format: BundleFormat, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  const random = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
  return `${bundleDirectory(repo)}${stamp}-${random}-${format}.hg`;
}

/**
 * Whether decoded path segments name a bundle: `.bundles`, the repository's segments (`.root`
 * alone for `/`; no other segment starts with a dot, as hgweb serves none), a bundle file name.
 */
export function isBundleObjectSegments(segments: readonly string[]): boolean {
  if (segments.length < 3 || segments[0] !== BUNDLES_SEGMENT) return false;
  const repo = segments.slice(1, -1);
  if (!BUNDLE_FILE_PATTERN.test(segments[segments.length - 1] as string)) return false;
  if (repo[0] === ".root") return repo.length === 1;
  return repo.every((segment) => segment !== "" && !segment.startsWith("."));
}

/** The current record of `repo` for this origin, or undefined (none, unreadable, or another origin's). */
export async function readBundleRecord(bucket: R2Bucket, repo: string, origin: string): Promise<BundleRecord | undefined> {
  const object = await bucket.get(bundleRecordName(repo));
  if (!object) return undefined;
  const record = parseRecord(await object.text());
  if (!record) {
    log("warn", "bundle-record-unreadable", { repo, name: bundleRecordName(repo) });
    return undefined;
  }
  return record.repo === repo && record.origin === origin ? record : undefined;
}

const isString = (s: unknown): s is string => typeof s === "string";

function parseRecord(text: string): BundleRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const r = value as Record<string, unknown>;
  if (![r.repo, r.createdAt, r.origin].every(isString) || !Array.isArray(r.heads) || !r.heads.every(isString) || typeof r.changesets !== "number") return undefined;
  const base = { repo: r.repo as string, heads: r.heads as string[], changesets: r.changesets, createdAt: r.createdAt as string, origin: r.origin as string };
  // Format 1 (one none-v2 bundle, deleted at once when replaced) is read as one entry.
  if (r.format === 1 && [r.name, r.bundlespec, r.sha256].every(isString) && typeof r.size === "number") {
    const bundle: StoredBundle = { format: "none-v2", name: r.name as string, bundlespec: r.bundlespec as string, size: r.size, sha256: r.sha256 as string };
    return { format: RECORD_FORMAT, ...base, bundles: [bundle], retired: [] };
  }
  if (r.format !== RECORD_FORMAT || !Array.isArray(r.bundles) || !r.bundles.every(isStoredBundle) || !Array.isArray(r.retired) || !r.retired.every(isRetired)) return undefined;
  const record: BundleRecord = { format: RECORD_FORMAT, ...base, bundles: r.bundles, retired: r.retired };
  if (typeof r.skipped === "object" && r.skipped !== null) record.skipped = r.skipped as BundleRecord["skipped"] & object;
  return record;
}

function isStoredBundle(b: unknown): b is StoredBundle {
  const s = b as Partial<StoredBundle> | null;
  return typeof s === "object" && s !== null && isString(s.format) && isBundleFormat(s.format) && [s.name, s.bundlespec, s.sha256].every(isString) && typeof s.size === "number";
}

function isRetired(b: unknown): b is RetiredBundle {
  const s = b as Partial<RetiredBundle> | null;
  return typeof s === "object" && s !== null && isString(s.name) && isString(s.retiredAt);
}

export function newRecord(fields: Omit<BundleRecord, "format" | "retired">): BundleRecord {
  return { format: RECORD_FORMAT, ...fields, heads: [...fields.heads].sort(), retired: [] };
}

export interface CommitOutcome {
  /** Bundles deleted now: retired ones whose grace period ended, and leftovers. */
  removed: string[];
  /** Bundles kept readable for their grace period. */
  retired: RetiredBundle[];
}

/**
 * Makes `record` current. The bundles of the record it replaces join its `retired` list (with
 * the previous record's own retired ones still in their grace period); those past it, and
 * leftovers no record names, are deleted — after the record is written, so clients are never
 * pointed at a bundle that is already gone.
 */
export async function commitBundleRecord(bucket: R2Bucket, record: BundleRecord, graceMs: number, now = Date.now()): Promise<CommitOutcome> {
  const previous = await readBundleRecord(bucket, record.repo, record.origin).catch(() => undefined);
  const current = new Set(record.bundles.map((b) => b.name));
  const at = new Date(now).toISOString();
  const candidates = [...(previous?.retired ?? []), ...(previous?.bundles ?? []).map((b) => ({ name: b.name, retiredAt: at }))].filter((b) => !current.has(b.name));
  const retired = candidates.filter((b) => now - Date.parse(b.retiredAt) < graceMs);
  const written: BundleRecord = { ...record, retired };
  await bucket.put(bundleRecordName(record.repo), JSON.stringify(written, null, 2), { httpMetadata: { contentType: "application/json" } });
  record.retired = retired;
  const doomed = new Set(candidates.filter((b) => !retired.includes(b)).map((b) => b.name));
  for (const name of await orphans(bucket, written, now)) doomed.add(name);
  const removed = [...doomed];
  if (removed.length > 0) await bucket.delete(removed);
  return { removed, retired };
}

/**
 * Deletes the retired bundles of `repo` whose grace period ended, and rewrites the record
 * without them. Answers what it deleted and when the next one is due (ms since the epoch).
 */
export async function expireRetiredBundles(bucket: R2Bucket, repo: string, origin: string, graceMs: number, now = Date.now()): Promise<{ removed: string[]; nextDue?: number }> {
  const record = await readBundleRecord(bucket, repo, origin);
  if (!record || record.retired.length === 0) return { removed: [] };
  const due = (b: RetiredBundle) => Date.parse(b.retiredAt) + graceMs;
  const expired = record.retired.filter((b) => due(b) <= now);
  const kept = record.retired.filter((b) => due(b) > now);
  if (expired.length > 0) {
    // The record first: it must never name a deleted bundle, retired or not.
    await bucket.put(bundleRecordName(repo), JSON.stringify({ ...record, retired: kept }, null, 2), { httpMetadata: { contentType: "application/json" } });
    await bucket.delete(expired.map((b) => b.name));
    log("info", "bundles-expired", { repo, removed: expired.map((b) => b.name) });
  }
  const next = kept.map(due).sort((a, b) => a - b)[0];
  return next === undefined ? { removed: expired.map((b) => b.name) } : { removed: expired.map((b) => b.name), nextDue: next };
}

/** Bundles of the record's repository that it does not name, current or retired, old enough not to be in flight. */
async function orphans(bucket: R2Bucket, record: BundleRecord, now: number): Promise<string[]> {
  const directory = bundleDirectory(record.repo);
  const named = new Set([...record.bundles.map((b) => b.name), ...record.retired.map((b) => b.name)]);
  const found: string[] = [];
  let cursor: string | undefined;
  do {
    // The delimiter keeps nested repositories' bundles (`.bundles/team/project/…`) out of `/team`'s list.
    const page = await bucket.list({ prefix: directory, delimiter: "/", ...(cursor ? { cursor } : {}) });
    for (const object of page.objects) {
      const file = object.key.slice(directory.length);
      if (named.has(object.key) || !BUNDLE_FILE_PATTERN.test(file)) continue;
      if (now - object.uploaded.getTime() > ORPHAN_GRACE_MS) found.push(object.key);
    }
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return found;
}
