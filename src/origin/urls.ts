/**
 * The one place origin URLs are made: ORIGIN_URL's base path followed by a path that is already
 * canonical and percent-encoded (a request's canonical path, or a repository's encodedRepoPath).
 * Client input is never resolved against a base URL (`//host/x` would name another host).
 */
import type { Config } from "../config.ts";
import { encodedRepoPath } from "../protocol/target.ts";

/** The origin's base path without a trailing slash ("" for a server at the root). */
export function originBasePath(config: Config): string {
  return config.originUrl.pathname.replace(/\/+$/, "");
}

export function originUrl(config: Config, encodedPath: string, search: string): URL {
  const target = new URL(config.originUrl.href);
  target.pathname = originBasePath(config) + (encodedPath.startsWith("/") ? encodedPath : `/${encodedPath}`);
  target.search = search;
  return target;
}

/** Where a request goes on the origin: its (canonical) path and query under ORIGIN_URL. */
export function originUrlFor(config: Config, requestUrl: URL): URL {
  return originUrl(config, requestUrl.pathname, requestUrl.search);
}

/** A canonical repository path (`/` or `/a/b`, decoded) on the origin, with `search`. */
export function originRepoUrl(config: Config, repo: string, search = ""): URL {
  return originUrl(config, encodedRepoPath(repo), search);
}

/** A v1 command on a repository, e.g. `?cmd=heads`, with its arguments in the query. */
export function originCommandUrl(config: Config, repo: string, command: string, args: Record<string, string> = {}): URL {
  const url = originRepoUrl(config, repo);
  url.searchParams.set("cmd", command);
  for (const [name, value] of Object.entries(args)) url.searchParams.set(name, value);
  return url;
}
