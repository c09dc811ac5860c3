/**
 * One clone-bundle generator per repository (binding BUNDLER; the object is named by the
 * repository's path). Whatever asks for new bundles — a push that went through the edge, the
 * cron trigger, the admin API — asks this object, so a repository's bundles are made by at most
 * one generation at a time across every isolate, and a burst of pushes makes one generation,
 * not one each.
 *
 * - `schedule(repo, trigger)` records that something may have changed and sets the alarm to
 *   now. The alarm does the work: it deletes retired bundles whose grace period ended, then
 *   checks freshness (`heads`, and a count of new changesets against BUNDLE_MIN_NEW_CHANGESETS)
 *   and generates when stale. An alarm has 15 minutes of wall time, where a request's
 *   waitUntil has about 30 seconds. A push that lands during a generation sets the alarm again
 *   for when it ends.
 * - `generateNow(repo)` (admin) generates at once, unless a generation is running (409).
 * - `status()` says what runs (format, bytes so far), what is pending, and the last result,
 *   which survives restarts in the object's storage.
 *
 * The object is alive for as long as a generation runs (an alarm or RPC in progress). If it is
 * evicted mid-way, the partial uploads are never committed and the next trigger starts over.
 */
import type { DurableObjectBinding } from "../config/env.ts";
import { DurableObject } from "cloudflare:workers";
import { parseConfig, servingCache, type Config, type Env } from "../config.ts";
import { expireRetiredBundles, readBundleRecord } from "./bundles.ts";
import { generateBundles, refreshBundles, type GenerationOutcome, type GenerationProgress, type RefreshResult } from "./bundlegen.ts";
import type { OriginFetch } from "../origin/client.ts";
import { runtimeFetch } from "../io/fetch.ts";
import { logEvent as log } from "../log.ts";

export type Trigger = "push" | "cron" | "admin";

export interface LastGeneration {
  trigger: Trigger;
  startedAt: string;
  finishedAt: string;
  action: RefreshResult["action"];
  reason: string;
  status?: number;
  /** The bundles made, when it made some. */
  bundles?: { format: string; size: number; bundlespec: string }[];
  skipped?: Record<string, string>;
}

export interface BundlerStatus {
  repo?: string;
  running?: { trigger: Trigger; startedAt: string; progress?: GenerationProgress };
  pending?: { trigger: Trigger; since: string };
  last?: LastGeneration;
  /** When the alarm will next run (pending work, or a retired bundle's deletion). */
  nextAlarm?: string;
}

type Pending = { trigger: Trigger; since: string };

/** The soonest an alarm comes back for retired bundles, so that a failing deletion is not retried in a loop. */
const EXPIRY_RETRY_MS = 60_000;

export class Bundler extends DurableObject<Env> {
  /** How generations reach the origin; tests substitute a scripted origin (useOrigin). */
  private originFetch: OriginFetch = runtimeFetch;
  /** This object's configuration, parsed once from its bindings. */
  private parsed: Config | undefined;
  private running: { trigger: Trigger; startedAt: string; progress?: GenerationProgress; done: Promise<unknown> } | undefined;

  useOrigin(originFetch: OriginFetch): void {
    this.originFetch = originFetch;
  }

  private get config(): Config {
    return (this.parsed ??= parseConfig(this.env));
  }

  /** Something may have changed in `repo`: the alarm checks (and generates) as soon as it can. */
  async schedule(repo: string, trigger: Trigger): Promise<BundlerStatus> {
    await this.ctx.storage.put({ repo, pending: { trigger, since: new Date().toISOString() } satisfies Pending });
    // While a generation runs, its end sets the alarm again (see run).
    if (!this.running) await this.armAt(Date.now());
    return this.status();
  }

  /** Makes new bundles now (the admin API), unless a generation of this repository is running. */
  async generateNow(repo: string): Promise<GenerationOutcome> {
    await this.ctx.storage.put("repo", repo);
    if (this.running) {
      const { trigger, startedAt, progress } = this.running;
      const where = progress ? `, at ${progress.format} byte ${progress.bytes}` : "";
      return { ok: false, status: 409, error: `a generation of ${repo} is already running (started ${startedAt} by ${trigger}${where})` };
    }
    const config = this.config;
    return this.run(repo, "admin", async (onProgress) => {
      const outcome = await generateBundles(config, this.originFetch, repo, { onProgress });
      const result: RefreshResult = outcome.ok
        ? { repo, action: "generated", reason: "asked by the admin API", record: outcome.record }
        : { repo, action: "failed", reason: outcome.error, status: outcome.status };
      return { result, value: outcome };
    }).finally(() => this.armForExpiry(repo));
  }

  async status(): Promise<BundlerStatus> {
    const stored = await this.ctx.storage.get<string | Pending | LastGeneration>(["repo", "pending", "last"]);
    const alarm = await this.ctx.storage.getAlarm();
    const status: BundlerStatus = {};
    const repo = stored.get("repo") as string | undefined;
    if (repo) status.repo = repo;
    if (this.running) {
      const { trigger, startedAt, progress } = this.running;
      status.running = { trigger, startedAt, ...(progress ? { progress: { ...progress } } : {}) };
    }
    const pending = stored.get("pending") as Pending | undefined;
    if (pending) status.pending = pending;
    const last = stored.get("last") as LastGeneration | undefined;
    if (last) status.last = last;
    if (alarm !== null) status.nextAlarm = new Date(alarm).toISOString();
    return status;
  }

  override async alarm(): Promise<void> {
    const repo = await this.ctx.storage.get<string>("repo");
    if (!repo) return;
    const config = this.config;
    const cache = servingCache(config);
    if (cache) {
      await expireRetiredBundles(cache.bucket, repo, config.originUrl.href, config.bundleGraceSeconds * 1000).catch((error: unknown) => {
        log("warn", "bundles-expiry-failed", { repo, error: String(error) });
      });
    }
    const pending = await this.ctx.storage.get<Pending>("pending");
    if (pending && !this.running) {
      await this.ctx.storage.delete("pending");
      await this.run(repo, pending.trigger, async (onProgress) => {
        const result = await refreshBundles(config, this.originFetch, repo, { onProgress });
        return { result, value: result };
      });
    }
    await this.armForExpiry(repo);
  }

  /** The alarm is due when the first retired bundle's grace period ends (not in a loop if deleting failed). */
  private async armForExpiry(repo: string): Promise<void> {
    const config = this.config;
    const cache = servingCache(config);
    if (!cache) return;
    const record = await readBundleRecord(cache.bucket, repo, config.originUrl.href).catch(() => undefined);
    const dues = (record?.retired ?? []).map((b) => Date.parse(b.retiredAt) + config.bundleGraceSeconds * 1000);
    if (dues.length === 0) return;
    const due = Math.min(...dues);
    await this.armAt(due > Date.now() ? due : Date.now() + EXPIRY_RETRY_MS);
  }

  /**
   * Runs one generation (exclusive within this object, hence within the repository), keeps its
   * progress for status() and its result in storage; afterwards, work that arrived meanwhile
   * gets the alarm.
   */
  private async run<T>(repo: string, trigger: Trigger, work: (onProgress: (p: GenerationProgress) => void) => Promise<{ result: RefreshResult; value: T }>): Promise<T> {
    const startedAt = new Date().toISOString();
    let finish!: () => void;
    const running = { trigger, startedAt, done: new Promise<void>((resolve) => (finish = resolve)) } as NonNullable<Bundler["running"]>;
    this.running = running;
    try {
      const { result, value } = await work((progress) => (running.progress = progress));
      await this.ctx.storage.put("last", lastOf(trigger, startedAt, result));
      log(result.action === "failed" ? "warn" : "info", "bundler", { repo, trigger, action: result.action, reason: result.reason });
      return value;
    } catch (error) {
      const result: RefreshResult = { repo, action: "failed", reason: `generation failed: ${String(error)}` };
      await this.ctx.storage.put("last", lastOf(trigger, startedAt, result));
      throw error;
    } finally {
      this.running = undefined;
      finish();
      if (await this.ctx.storage.get("pending")) await this.armAt(Date.now());
    }
  }

  /** Sets the alarm to `at`, unless one is due sooner. */
  private async armAt(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }
}

function lastOf(trigger: Trigger, startedAt: string, result: RefreshResult): LastGeneration {
  const last: LastGeneration = { trigger, startedAt, finishedAt: new Date().toISOString(), action: result.action, reason: result.reason };
  if (result.status !== undefined) last.status = result.status;
  if (result.record) {
    last.bundles = result.record.bundles.map(({ format, size, bundlespec }) => ({ format, size, bundlespec }));
    if (result.record.skipped) last.skipped = result.record.skipped as Record<string, string>;
  }
  return last;
}

/** The generator of `repo`. */
export function bundlerStub(namespace: DurableObjectBinding, repo: string): DurableObjectStub<Bundler> {
  const typed: DurableObjectNamespace<Bundler> = namespace;
  return typed.get(typed.idFromName(repo));
}
