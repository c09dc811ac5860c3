/**
 * Env bindings → a typed, validated Config, parsed once per isolate. Nothing else reads `env`.
 * Errors name the binding and say how to fix it, so a misconfigured deployment fails loudly on
 * its first request instead of misbehaving.
 */

export interface Env {
  ORIGIN_URL?: string;
  OBJECTS?: R2Bucket;
  /** Milliseconds to wait for the origin's response headers before answering 504. */
  ORIGIN_TIMEOUT_MS?: string;
}

export interface Config {
  /** The origin's base URL, without a trailing slash. */
  originUrl: URL;
  originTimeoutMs: number;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly binding: string,
    message: string,
  ) {
    super(`${binding}: ${message}`);
  }
}

const cache = new WeakMap<object, Config>();

/** Parses `env` once per isolate (env objects are stable for an isolate's life). */
export function loadConfig(env: Env): Config {
  let config = cache.get(env);
  if (!config) {
    config = parseConfig(env);
    cache.set(env, config);
  }
  return config;
}

export function parseConfig(env: Env): Config {
  return {
    originUrl: parseOriginUrl(env.ORIGIN_URL),
    originTimeoutMs: parsePositiveInt("ORIGIN_TIMEOUT_MS", env.ORIGIN_TIMEOUT_MS, 30_000),
  };
}

function parseOriginUrl(value: string | undefined): URL {
  if (!value || value.trim() === "") {
    throw new ConfigError(
      "ORIGIN_URL",
      "is not set. Set it in wrangler.toml [vars] or pass `--var ORIGIN_URL:http://host:port` " +
        "to the base URL of the Mercurial server hgedge fronts.",
    );
  }
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw new ConfigError("ORIGIN_URL", `"${value}" is not a URL; expected e.g. https://hg.example.org/`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError("ORIGIN_URL", `must be http or https, got ${url.protocol}`);
  }
  if (url.search || url.hash) {
    throw new ConfigError("ORIGIN_URL", "must not have a query or fragment: give the server's base URL");
  }
  url.pathname = url.pathname.replace(/\/+$/, "");
  return url;
}

function parsePositiveInt(binding: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value.trim() === "") return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new ConfigError(binding, `must be a positive whole number, got "${value}"`);
  }
  return n;
}
