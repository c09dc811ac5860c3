/**
 * Cache counters per repository: hits, redirects, misses, bypasses and the origin bytes they
 * saved, kept in one Durable Object (binding STATS) with SQLite storage.
 *
 * Why a Durable Object and not Workers Analytics Engine: Analytics Engine is read through
 * Cloudflare's SQL API with an account API token, so the Worker could not answer
 * `GET /.hgedge/admin/stats` by itself, and it has no local implementation to test against.
 * A Durable Object is read and written by the Worker alone, locally too. Its limit is write
 * rate (one object, about a thousand requests a second), so isolates batch: each adds up its
 * counts in memory and sends them at most once per STATS_FLUSH_MS.
 */
import type { DurableObjectBinding } from "../config/env.ts";
import { DurableObject } from "cloudflare:workers";
import type { CacheStatus } from "./answers.ts";
import { logEvent } from "../log.ts";

export interface Counters {
  hits: number;
  redirects: number;
  misses: number;
  bypasses: number;
  /** Bytes of cached objects that were served (inline or by redirect) instead of the origin's answer. */
  savedBytes: number;
}

const COUNTER_FIELDS = ["hits", "redirects", "misses", "bypasses", "savedBytes"] as const;
const COUNTER_OF: Record<CacheStatus, keyof Counters> = { HIT: "hits", REDIRECT: "redirects", MISS: "misses", BYPASS: "bypasses" };

/**
 * Most repositories the STATS store keeps a row for. Counts for any further repository go to
 * the OTHER_REPOSITORIES row (and are logged), so the store cannot grow without bound.
 */
export const STATS_MAX_REPOSITORIES = 1000;
/** The row that gathers counts beyond STATS_MAX_REPOSITORIES (no repository path looks like it). */
export const OTHER_REPOSITORIES = "(other)";

export function emptyCounters(): Counters {
  return { hits: 0, redirects: 0, misses: 0, bypasses: 0, savedBytes: 0 };
}

export class StatsCounter extends DurableObject {
  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env as never);
    ctx.storage.sql.exec(
      `CREATE TABLE IF NOT EXISTS counters (repo TEXT PRIMARY KEY, ${COUNTER_FIELDS.map((f) => `${f} INTEGER NOT NULL DEFAULT 0`).join(", ")})`,
    );
  }

  /** Adds an isolate's batch; repositories beyond STATS_MAX_REPOSITORIES rows go to OTHER_REPOSITORIES. */
  async add(batch: Record<string, Counters>): Promise<void> {
    const columns = COUNTER_FIELDS.join(", ");
    const updates = COUNTER_FIELDS.map((f) => `${f} = ${f} + excluded.${f}`).join(", ");
    const sql = this.ctx.storage.sql;
    let rows = Number(sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM counters WHERE repo != ?", OTHER_REPOSITORIES).one().n);
    const overflow: string[] = [];
    for (const [repo, counts] of Object.entries(batch)) {
      let row = repo;
      if (repo !== OTHER_REPOSITORIES && sql.exec("SELECT 1 FROM counters WHERE repo = ?", repo).toArray().length === 0) {
        if (rows >= STATS_MAX_REPOSITORIES) {
          row = OTHER_REPOSITORIES;
          overflow.push(repo);
        } else {
          rows += 1;
        }
      }
      sql.exec(
        `INSERT INTO counters (repo, ${columns}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(repo) DO UPDATE SET ${updates}`,
        row,
        ...COUNTER_FIELDS.map((f) => counts[f]),
      );
    }
    if (overflow.length > 0) {
      logEvent("warn", "stats-rows-full", { limit: STATS_MAX_REPOSITORIES, countedAsOther: overflow.length, first: overflow[0] });
    }
  }

  async read(): Promise<Record<string, Counters>> {
    const result: Record<string, Counters> = {};
    for (const row of this.ctx.storage.sql.exec<Record<string, string | number>>("SELECT * FROM counters ORDER BY repo")) {
      const counts = emptyCounters();
      for (const f of COUNTER_FIELDS) counts[f] = Number(row[f]);
      result[String(row.repo)] = counts;
    }
    return result;
  }
}

/** The one counter object every isolate writes to. */
export function statsStub(namespace: DurableObjectBinding): DurableObjectStub<StatsCounter> {
  const typed: DurableObjectNamespace<StatsCounter> = namespace;
  return typed.get(typed.idFromName("stats"));
}

/**
 * An isolate's pending counts. The first count after a flush schedules the next flush
 * `flushMs` later (through waitUntil, so the runtime keeps the isolate for it); counts that
 * arrive meanwhile join the same batch. An isolate that dies before its flush loses at most
 * that much.
 */
export class StatsRecorder {
  private pending: Record<string, Counters> = {};
  private scheduled = false;

  constructor(
    private readonly stub: () => DurableObjectStub<StatsCounter>,
    private readonly flushMs: number,
  ) {}

  record(repo: string, status: CacheStatus, savedBytes: number, waitUntil?: (promise: Promise<unknown>) => void): void {
    // The batch is bounded like the store: one flush never carries more rows than it keeps.
    const row = Object.hasOwn(this.pending, repo) || Object.keys(this.pending).length < STATS_MAX_REPOSITORIES ? repo : OTHER_REPOSITORIES;
    const counts = (this.pending[row] ??= emptyCounters());
    counts[COUNTER_OF[status]] += 1;
    counts.savedBytes += savedBytes;
    if (this.scheduled) return;
    this.scheduled = true;
    const flushed = new Promise((resolve) => setTimeout(resolve, this.flushMs)).then(() => this.flush());
    if (waitUntil) waitUntil(flushed);
  }

  async flush(): Promise<void> {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = {};
    if (Object.keys(batch).length === 0) return;
    try {
      await this.stub().add(batch);
    } catch (error) {
      logEvent("warn", "stats-flush-failed", { repos: Object.keys(batch).length, error: String(error) });
    }
  }
}

export interface StoredUsage {
  objects: number;
  bytes: number;
}

/**
 * Objects and bytes stored per repository, from R2's own listing (the truth, whatever happened
 * to counters): an object `<repo>/<command>/<key>` belongs to `<repo>`. At most `maxPages`
 * pages of 1000 are read; `complete` says whether that was all.
 */
export async function storedUsage(
  bucket: R2Bucket,
  prefix: string,
  maxPages: number,
): Promise<{ repos: Record<string, StoredUsage>; complete: boolean; listed: number }> {
  const repos: Record<string, StoredUsage> = {};
  let cursor: string | undefined;
  let listed = 0;
  for (let page = 0; page < maxPages; page++) {
    const result = await bucket.list({ prefix, limit: 1000, ...(cursor ? { cursor } : {}) });
    for (const object of result.objects) {
      const repo = repositoryOfObject(object.key);
      const usage = (repos[repo] ??= { objects: 0, bytes: 0 });
      usage.objects += 1;
      usage.bytes += object.size;
    }
    listed += result.objects.length;
    if (!result.truncated) return { repos, complete: true, listed };
    cursor = result.cursor;
  }
  return { repos, complete: false, listed };
}

/** `/a/b` for `a/b/filesdata/<key>`, `/` for `.root/…`; anything else by its first segment. */
export function repositoryOfObject(name: string): string {
  const segments = name.split("/");
  if (segments[0]?.startsWith(".") && segments[0] !== ".root") return segments[0];
  const repo = segments.slice(0, -2).join("/");
  return repo === ".root" ? "/" : `/${repo}`;
}
