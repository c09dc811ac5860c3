/**
 * Clone bundles in R2: where they live and the record of the current one.
 *
 *     .bundles/<repo>/<created>-<random>.hg   a full bundle of the repository (immutable)
 *     .bundles/<repo>/current.json            the record of the bundle clients are sent to
 *
 * `<repo>` is repositoryPrefix's (`.root` for `/`), so purging a repository's cache
 * (`<repo>/…`) never touches its bundles. A bundle is written under a fresh name (its hash is
 * known only at the end, and an R2 object cannot be renamed), becomes current when the record is
 * written — after the upload completed — and the bundle it replaced is deleted then. Until that
 * moment the previous record and bundle stay as they were, so a failed generation changes
 * nothing clients see.
 */
import { repositoryPrefix } from "./keys.ts";
import { logEvent as log } from "../log.ts";

export const BUNDLES_SEGMENT = ".bundles";
export const RECORD_FILE = "current.json";
/** Bundles are bytes of Mercurial's own bundle format; no more specific type is registered. */
export const BUNDLE_CONTENT_TYPE = "application/octet-stream";
/** `20260702T101500Z-0123456789abcdef.hg`: the creation time (readable at a glance) and 64 random bits. */
export const BUNDLE_FILE_PATTERN = /^\d{8}T\d{6}Z-[0-9a-f]{16}\.hg$/;
/**
 * A bundle no record names and older than this is a leftover (a generation that stopped between
 * completing its upload and writing its record, or lost a race to another) and is deleted. Far
 * longer than the milliseconds between the two steps, so a concurrent generation's fresh upload
 * is never taken for one.
 */
export const ORPHAN_GRACE_MS = 60 * 60 * 1000;
const RECORD_FORMAT = 1;

export interface BundleRecord {
  format: number;
  /** Repository path, e.g. "/" or "/team/project". */
  repo: string;
  /** R2 object name of the bundle. */
  name: string;
  /** `hg help bundlespec`, as listed in the manifest. */
  bundlespec: string;
  /** The heads the bundle was made of (40-hex, sorted). */
  heads: string[];
  changesets: number;
  size: number;
  sha256: string;
  /** ISO time the generation started. */
  createdAt: string;
  /** The origin it came from: a record written for another origin is not served. */
  origin: string;
}

export function bundleDirectory(repo: string): string {
  return `${BUNDLES_SEGMENT}/${repositoryPrefix(repo)}`;
}

export function bundleRecordName(repo: string): string {
  return `${bundleDirectory(repo)}${RECORD_FILE}`;
}

/** A fresh, never reused name for a bundle of `repo` started at `now`. */
export function newBundleName(repo: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  const random = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
  return `${bundleDirectory(repo)}${stamp}-${random}.hg`;
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

function parseRecord(text: string): BundleRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const r = value as Partial<BundleRecord>;
  const strings = [r.repo, r.name, r.bundlespec, r.sha256, r.createdAt, r.origin];
  if (r.format !== RECORD_FORMAT || !strings.every((s) => typeof s === "string")) return undefined;
  if (!Array.isArray(r.heads) || !r.heads.every((h) => typeof h === "string") || typeof r.size !== "number" || typeof r.changesets !== "number") return undefined;
  return r as BundleRecord;
}

export function newRecord(fields: Omit<BundleRecord, "format">): BundleRecord {
  return { format: RECORD_FORMAT, ...fields, heads: [...fields.heads].sort() };
}

export interface CommitOutcome {
  /** Bundles deleted: the one replaced, and leftovers. */
  removed: string[];
}

/**
 * Makes `record` current, then deletes the bundle it replaced and leftovers. Deleting comes
 * after the record is written: clients are never pointed at a bundle that is already gone.
 */
export async function commitBundleRecord(bucket: R2Bucket, record: BundleRecord, now = Date.now()): Promise<CommitOutcome> {
  const previous = await readBundleRecord(bucket, record.repo, record.origin).catch(() => undefined);
  await bucket.put(bundleRecordName(record.repo), JSON.stringify(record, null, 2), {
    httpMetadata: { contentType: "application/json" },
  });
  const doomed = new Set<string>();
  if (previous && previous.name !== record.name) doomed.add(previous.name);
  for (const name of await orphans(bucket, record, now)) doomed.add(name);
  const removed = [...doomed];
  if (removed.length > 0) await bucket.delete(removed);
  return { removed };
}

/** Bundles of the record's repository that no record names, old enough not to be in flight. */
async function orphans(bucket: R2Bucket, record: BundleRecord, now: number): Promise<string[]> {
  const directory = bundleDirectory(record.repo);
  const found: string[] = [];
  let cursor: string | undefined;
  do {
    // The delimiter keeps nested repositories' bundles (`.bundles/team/project/…`) out of `/team`'s list.
    const page = await bucket.list({ prefix: directory, delimiter: "/", ...(cursor ? { cursor } : {}) });
    for (const object of page.objects) {
      const file = object.key.slice(directory.length);
      if (object.key === record.name || !BUNDLE_FILE_PATTERN.test(file)) continue;
      if (now - object.uploaded.getTime() > ORPHAN_GRACE_MS) found.push(object.key);
    }
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return found;
}
