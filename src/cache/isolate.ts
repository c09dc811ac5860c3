/**
 * Everything the cache remembers within one isolate, in one object made where the app is made
 * (src/edge/app.ts): a test builds a fresh one, and nothing of it lives in module globals.
 */
import type { DurableObjectBinding } from "../config/env.ts";
import { parseConfig, type Config, type Env } from "../config.ts";
import type { OriginFetch } from "../origin/client.ts";
import { runtimeFetch } from "../io/fetch.ts";
import { RetryMemory } from "../origin/retrymemory.ts";
import { AccessMemo } from "./access.ts";
import { FillSlots } from "./fills.ts";
import { VerifiedObjects } from "./objects.ts";
import { TargetHealth, type ProbeFetch } from "./health.ts";
import { StatsRecorder, statsStub } from "./stats.ts";

export interface IsolateOptions {
  /** How to reach the origin (tests substitute a scripted origin). */
  originFetch?: OriginFetch;
  /** How to probe redirect targets (tests substitute scripted targets). */
  probeFetch?: ProbeFetch;
  /** Milliseconds since the epoch, for target health and fill pacing (tests move time by hand). */
  clock?: () => number;
}

export class CacheIsolate {
  readonly originFetch: OriginFetch;
  readonly clock: () => number;
  /** Which configured redirect targets failed their probes lately. */
  readonly targetHealth: TargetHealth;
  /** The origin's recent yeses to "may this client read this repository". */
  readonly access = new AccessMemo();
  /** Fills in progress, at most FILL_CONCURRENCY. */
  readonly fills: FillSlots;
  /** filesdata requests known to hit the origin's removed-file failure. */
  readonly retryMemory = new RetryMemory();
  /** Stored objects whose bytes this isolate has hashed (the content route checks each once). */
  readonly verified = new VerifiedObjects();
  /** Repositories whose clone bundles this isolate is making (without a BUNDLER binding). */
  readonly bundlesInProgress = new Set<string>();
  /** Configurations whose "cache refused" reason was already logged. */
  private readonly reportedRefusals = new WeakSet<Config>();
  private readonly recorders = new WeakMap<DurableObjectBinding, StatsRecorder>();
  /** Bindings are stable for an isolate's life: each env object is parsed once. */
  private readonly configs = new WeakMap<Env, Config>();

  constructor(options: IsolateOptions = {}) {
    this.originFetch = options.originFetch ?? runtimeFetch;
    this.clock = options.clock ?? (() => Date.now());
    this.targetHealth = new TargetHealth(options.probeFetch ?? runtimeFetch, this.clock);
    this.fills = new FillSlots(this.clock);
  }

  /** The configuration of `env`, parsed on first use (a ConfigError names the binding to fix). */
  config(env: Env): Config {
    let config = this.configs.get(env);
    if (!config) this.configs.set(env, (config = parseConfig(env)));
    return config;
  }

  /** True the first time a configuration's refusal is reported: it is logged once, not per request. */
  firstRefusalReport(config: Config): boolean {
    if (this.reportedRefusals.has(config)) return false;
    this.reportedRefusals.add(config);
    return true;
  }

  /** The STATS batcher of this isolate for `config`, when counters are kept. */
  statsRecorder(config: Config): StatsRecorder | undefined {
    const namespace = config.stats;
    if (!namespace) return undefined;
    let recorder = this.recorders.get(namespace);
    if (!recorder) this.recorders.set(namespace, (recorder = new StatsRecorder(() => statsStub(namespace), config.statsFlushMs)));
    return recorder;
  }
}
