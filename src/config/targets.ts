/**
 * The redirect-target bindings: REDIRECT_TARGETS (what v2 clients are offered), TARGET_REGIONS
 * (which to prefer where) and TARGET_OBJECT_URLS (where each one's redirects point).
 */
import type { RedirectMode, RedirectTarget } from "../protocol/capabilities.ts";
import { ConfigError, parseHttpUrl } from "./values.ts";

/** Where the content route serves objects on an hgedge host. */
export const OBJECTS_PATH = "/.hgedge/objects/";

/**
 * Which targets a client near `place` should be sent to first. Country codes and continent codes
 * overlap (AF, AS, NA, SA are both), hence two separate maps.
 */
export interface TargetRegions {
  /** ISO 3166-1 country code as in `request.cf.country` (e.g. "DE") → target names, best first. */
  countries: ReadonlyMap<string, readonly string[]>;
  /** Continent code as in `request.cf.continent` (AF, AN, AS, EU, NA, OC, SA) → target names. */
  continents: ReadonlyMap<string, readonly string[]>;
}

export function parseRedirectMode(value: string | undefined): RedirectMode {
  const mode = (value ?? "").trim() || "replace";
  if (mode !== "replace" && mode !== "append") {
    throw new ConfigError("REDIRECT_MODE", `must be "replace" or "append", got "${value}"`);
  }
  return mode;
}

/** TLS versions Mercurial 5.x clients recognise (sslutil.supportedprotocols, "tls" stripped). */
const CLIENT_TLS_VERSIONS = ["1.0", "1.1", "1.2"];

/**
 * REDIRECT_TARGETS: a JSON array of {name, protocol, uris, snirequired?, tlsversions?}. Each
 * target must pass the 5.x client's filter (protocol.md §6.2), or clients silently ignore it.
 */
export function parseRedirectTargets(value: string | undefined): RedirectTarget[] | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const fail = (message: string): never => {
    throw new ConfigError("REDIRECT_TARGETS", message);
  };
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (error) {
    return fail(`is not valid JSON (${(error as Error).message}); expected e.g. [{"name":"r2","protocol":"https","uris":["https://objects.example.org/"]}]`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0) return fail("must be a non-empty JSON array of targets");
  const names = new Set<string>();
  return parsed.map((raw: unknown, i) => {
    const where = `target ${i + 1}`;
    if (typeof raw !== "object" || raw === null) return fail(`${where} is not an object`);
    const t = raw as Record<string, unknown>;
    const known = new Set(["name", "protocol", "uris", "snirequired", "tlsversions"]);
    for (const key of Object.keys(t)) if (!known.has(key)) fail(`${where} has an unknown key "${key}"`);
    if (typeof t.name !== "string" || !/^[A-Za-z0-9._-]+$/.test(t.name)) fail(`${where} needs a "name" of letters, digits, ".", "_" or "-"`);
    const name = t.name as string;
    if (names.has(name)) fail(`target name "${name}" is used twice`);
    names.add(name);
    if (t.protocol !== "http" && t.protocol !== "https") fail(`${name}: "protocol" must be "http" or "https" (the only ones Mercurial clients follow)`);
    if (!Array.isArray(t.uris) || t.uris.length === 0 || !t.uris.every((u) => typeof u === "string" && u !== "")) {
      fail(`${name}: "uris" must be a non-empty array of URL strings`);
    }
    const target: RedirectTarget = { name, protocol: t.protocol as string, uris: t.uris as string[] };
    if (t.snirequired !== undefined) {
      if (typeof t.snirequired !== "boolean") fail(`${name}: "snirequired" must be true or false`);
      target.snirequired = t.snirequired as boolean;
    }
    if (t.tlsversions !== undefined) {
      const versions = t.tlsversions;
      if (!Array.isArray(versions) || !versions.every((v) => typeof v === "string")) fail(`${name}: "tlsversions" must be an array of strings`);
      if (!(versions as string[]).some((v) => CLIENT_TLS_VERSIONS.includes(v))) {
        fail(`${name}: "tlsversions" must include one of ${CLIENT_TLS_VERSIONS.join(", ")}: Mercurial 5.x clients know no other and would ignore this target`);
      }
      target.tlsversions = versions as string[];
    }
    return target;
  });
}

/** Continent codes as Cloudflare gives them in `request.cf.continent`. */
const CONTINENTS = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/** A JSON object binding that refers to REDIRECT_TARGETS by name. */
function parseTargetsObject(binding: string, value: string, targets: RedirectTarget[] | undefined, example: string): Record<string, unknown> {
  const fail = (message: string): never => {
    throw new ConfigError(binding, message);
  };
  if (!targets) fail("needs REDIRECT_TARGETS: it refers to configured targets by name (the default target cannot be named)");
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (error) {
    fail(`is not valid JSON (${(error as Error).message}); expected e.g. ${example}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) fail(`must be a JSON object, e.g. ${example}`);
  return parsed as Record<string, unknown>;
}

function checkTargetName(binding: string, name: unknown, targets: RedirectTarget[], where: string): string {
  if (typeof name !== "string" || !targets.some((t) => t.name === name)) {
    const known = targets.map((t) => t.name).join(", ");
    throw new ConfigError(binding, `${where}: "${String(name)}" is not a target in REDIRECT_TARGETS (known: ${known})`);
  }
  return name;
}

/**
 * TARGET_REGIONS: {"countries": {"DE": ["r2-eu"]}, "continents": {"EU": ["r2-eu", "r2-us"]}}.
 * Countries and continents are separate maps because their codes overlap (AF, AS, NA, SA).
 */
export function parseTargetRegions(value: string | undefined, targets: RedirectTarget[] | undefined): TargetRegions | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const binding = "TARGET_REGIONS";
  const parsed = parseTargetsObject(binding, value, targets, '{"continents":{"EU":["r2-eu"]},"countries":{"US":["r2-us"]}}');
  const fail = (message: string): never => {
    throw new ConfigError(binding, message);
  };
  for (const key of Object.keys(parsed)) if (key !== "countries" && key !== "continents") fail(`has an unknown key "${key}": expected "countries" and/or "continents"`);
  const table = (kind: "countries" | "continents", validCode: (code: string) => boolean, codes: string): Map<string, string[]> => {
    const raw = parsed[kind] ?? {};
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return fail(`"${kind}" must be an object of code → [target names]`);
    const map = new Map<string, string[]>();
    for (const [rawCode, names] of Object.entries(raw)) {
      const code = rawCode.toUpperCase();
      if (!validCode(code)) fail(`"${rawCode}" in "${kind}" is not ${codes}`);
      if (!Array.isArray(names) || names.length === 0) fail(`${kind} "${rawCode}" must be a non-empty array of target names`);
      map.set(code, (names as unknown[]).map((name) => checkTargetName(binding, name, targets as RedirectTarget[], `${kind} "${rawCode}"`)));
    }
    return map;
  };
  return {
    countries: table("countries", (c) => /^[A-Z][A-Z0-9]$/.test(c), "a two-letter country code as in request.cf.country (e.g. DE)"),
    continents: table("continents", (c) => CONTINENTS.includes(c), `a continent code (${CONTINENTS.join(", ")})`),
  };
}

/**
 * TARGET_OBJECT_URLS: {"r2-eu": "https://eu.objects.example.org/"}: redirects to that target point
 * at <base><object name>. Without an entry they point at PUBLIC_OBJECTS_URL or the content route
 * of the edge the client is talking to. With ACCESS=origin the URLs are signed and only hgedge's
 * content route checks signatures, so each base must be one (…/.hgedge/objects/).
 */
export function parseTargetObjectUrls(value: string | undefined, targets: RedirectTarget[] | undefined, accessChecked: boolean): Map<string, URL> | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const binding = "TARGET_OBJECT_URLS";
  const parsed = parseTargetsObject(binding, value, targets, '{"r2-eu":"https://eu.objects.example.org/"}');
  const urls = new Map<string, URL>();
  for (const [name, raw] of Object.entries(parsed)) {
    checkTargetName(binding, name, targets as RedirectTarget[], "key");
    if (typeof raw !== "string") throw new ConfigError(binding, `${name}: must be a URL string`);
    const url = parseHttpUrl(binding, raw);
    if (accessChecked && !url.pathname.endsWith(OBJECTS_PATH)) {
      throw new ConfigError(
        binding,
        `${name}: with ACCESS=origin redirects are signed URLs that only hgedge's content route checks, so the base must be https://<an hgedge host>${OBJECTS_PATH} (got ${url.href})`,
      );
    }
    urls.set(name, url);
  }
  return urls;
}
