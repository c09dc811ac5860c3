/**
 * Reading one binding's text as a value of some kind; every failure is a ConfigError that names
 * the binding and says what a right value looks like.
 */

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    readonly binding: string,
    message: string,
  ) {
    super(`${binding}: ${message}`);
  }
}

/** One of a fixed set of words; the first is the default. */
export function parseChoice<T extends string>(binding: string, value: string | undefined, choices: readonly T[]): T {
  const word = (value ?? "").trim().toLowerCase() || choices[0];
  const choice = choices.find((c) => c === word);
  if (!choice) throw new ConfigError(binding, `must be one of ${choices.join(", ")}, got "${value}"`);
  return choice;
}

export function parseCount(binding: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value.trim() === "") return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new ConfigError(binding, `must be a whole number (0 or more), got "${value}"`);
  return n;
}

export function parsePositiveInt(binding: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value.trim() === "") return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new ConfigError(binding, `must be a positive whole number, got "${value}"`);
  }
  return n;
}

export function parseHttpUrl(binding: string, value: string): URL {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw new ConfigError(binding, `"${value}" is not a URL; expected e.g. https://hg.example.org/`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new ConfigError(binding, `must be http or https, got ${url.protocol}`);
  return url;
}

export function parseOriginUrl(value: string | undefined): URL {
  if (!value || value.trim() === "") {
    throw new ConfigError(
      "ORIGIN_URL",
      "is not set: it is the base URL of the Mercurial server hgedge fronts. For a deployment set it " +
        'in wrangler.toml [vars] (ORIGIN_URL = "https://hg.example.org/") or in the dashboard; for ' +
        "`npm start` put it in .dev.vars (see .dev.vars.example) or pass `--var ORIGIN_URL:http://host:port`.",
    );
  }
  const url = parseHttpUrl("ORIGIN_URL", value);
  if (url.search || url.hash) {
    throw new ConfigError("ORIGIN_URL", "must not have a query or fragment: give the server's base URL");
  }
  return url;
}
