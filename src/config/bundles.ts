/** The clone-bundle bindings: which repositories, which formats. */
import { BUNDLE_FORMAT_NAMES, DEFAULT_BUNDLE_FORMATS, isBundleFormat, type BundleFormat } from "../protocol/clonebundles.ts";
import { ConfigError } from "./values.ts";

/** BUNDLE_REPOS: a JSON array of repository paths such as ["/", "/team/project"]. */
export function parseBundleRepos(value: string | undefined): string[] {
  if (value === undefined || value.trim() === "") return [];
  const example = 'expected a JSON array of repository paths, e.g. ["/"] or ["/team/project"]';
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new ConfigError("BUNDLE_REPOS", `is not valid JSON; ${example}`);
  }
  if (!Array.isArray(parsed)) throw new ConfigError("BUNDLE_REPOS", example);
  return parsed.map((repo) => {
    if (typeof repo !== "string" || !repo.startsWith("/") || /\/\.|[?#\s]/.test(repo)) {
      throw new ConfigError("BUNDLE_REPOS", `${JSON.stringify(repo)} is not a repository path: ${example}`);
    }
    return repo.replace(/\/+$/, "") || "/";
  });
}

/**
 * How long a replaced bundle stays readable: a signed URL's lifetime (URL_TTL, 300 s by
 * default) plus the download of a large bundle on a slow link.
 */
export const DEFAULT_BUNDLE_GRACE_SECONDS = 6 * 3600;

/** BUNDLE_FORMATS: a JSON array of format names, best first, each at most once. */
export function parseBundleFormats(value: string | undefined): BundleFormat[] {
  if (value === undefined || value.trim() === "") return [...DEFAULT_BUNDLE_FORMATS];
  const example = `expected a JSON array of bundle formats, best first, from ${BUNDLE_FORMAT_NAMES.join(", ")}; e.g. ${JSON.stringify(DEFAULT_BUNDLE_FORMATS)}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new ConfigError("BUNDLE_FORMATS", `is not valid JSON; ${example}`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0) throw new ConfigError("BUNDLE_FORMATS", example);
  const formats: BundleFormat[] = [];
  for (const name of parsed) {
    if (typeof name !== "string" || !isBundleFormat(name)) throw new ConfigError("BUNDLE_FORMATS", `${JSON.stringify(name)} is not a bundle format: ${example}`);
    if (formats.includes(name)) throw new ConfigError("BUNDLE_FORMATS", `${JSON.stringify(name)} is listed twice: ${example}`);
    formats.push(name);
  }
  return formats;
}
