/**
 * Cache keys and the R2 layout.
 *
 * A request is cacheable only when it is one command on `ro/<command>`, the command is one of
 * Mercurial's cacheable ones, and its arguments are ones hgedge understands. Its key is the
 * SHA-256 of a canonical CBOR map (Mercurial's own deterministic encoding) of everything that
 * decides the answer: our key format, the operator's CACHE_VERSION, the origin, the repository,
 * the API version, the command with its cache version, and the arguments normalised as the
 * origin normalises them. Not in it: the redirect map, the content encoding, the request id —
 * so requests that Mercurial treats as the same command share one object.
 */
import { HTTP_V2_API } from "../protocol/capabilities.ts";
import { toHex } from "../protocol/hex.ts";
import { bytes, cborMap, encode, type CborMap } from "../protocol/cbor.ts";
import { CACHEABLE_COMMANDS, normalizeArgs } from "../protocol/commands.ts";
import type { CommandRequest, ParsedRequestBody, RedirectRequest } from "../protocol/requests.ts";
import { redirectRequest } from "../protocol/requests.ts";

/** Bumped when the key material or the stored format changes. */
export const KEY_FORMAT_VERSION = 1;

export interface KeyScope {
  /** The origin's base URL, as configured. */
  origin: string;
  /** CACHE_VERSION: bump to start a fresh cache generation. */
  cacheVersion: string;
}

export interface CacheableCommand {
  repo: string;
  command: string;
  requestId: number;
  /** Arguments after Mercurial's normalisation. */
  args: CborMap;
  redirect?: RedirectRequest;
  /** The client's content encodings (default identity). */
  contentEncodings: string[];
}

export type Cacheability = { cacheable: true; request: CacheableCommand } | { cacheable: false; reason: string };

/** Decides whether a parsed v2 request may be answered from (or stored in) the cache. */
export function cacheability(parsed: ParsedRequestBody, repo: string, permission: "ro" | "rw", urlCommand: string): Cacheability {
  const spec = CACHEABLE_COMMANDS[urlCommand];
  if (!spec) return { cacheable: false, reason: `${urlCommand} is not cacheable` };
  if (permission !== "ro") return { cacheable: false, reason: "only ro/ requests are cached" };
  if (parsed.commands.length !== 1) return { cacheable: false, reason: `${parsed.commands.length} commands in one request` };
  const command = parsed.commands[0] as CommandRequest;
  if (command.name !== urlCommand) return { cacheable: false, reason: "the frame's command differs from the URL's" };
  if (command.haveData) return { cacheable: false, reason: "the request carries command data" };
  const normalized = normalizeArgs(spec, command.args);
  if (!normalized.ok) return { cacheable: false, reason: normalized.reason };
  const request: CacheableCommand = {
    repo,
    command: urlCommand,
    requestId: command.requestId,
    args: normalized.args,
    contentEncodings: parsed.contentEncodings ?? ["identity"],
  };
  const redirect = redirectRequest(command);
  if (redirect) request.redirect = redirect;
  return { cacheable: true, request };
}

/** The CBOR map a key is the hash of. */
export function keyMaterial(scope: KeyScope, request: Pick<CacheableCommand, "repo" | "command" | "args">): CborMap {
  const spec = CACHEABLE_COMMANDS[request.command];
  return cborMap({
    keyformat: KEY_FORMAT_VERSION,
    cacheversion: bytes(scope.cacheVersion),
    origin: bytes(scope.origin),
    repo: bytes(request.repo),
    api: bytes(HTTP_V2_API),
    command: bytes(request.command),
    localversion: spec?.cacheVersion ?? 0,
    args: request.args,
  });
}

/** Lower-case hex SHA-256 of the key material. */
export async function cacheKey(scope: KeyScope, request: Pick<CacheableCommand, "repo" | "command" | "args">): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", encode(keyMaterial(scope, request)));
  return toHex(digest);
}

/**
 * R2 object name `<repo>/<command>/<key>`, so that one repository (or one command of it) can be
 * listed and purged by prefix. The repository at `/` is `.root`: hgweb never serves a path
 * segment starting with a dot, so it cannot collide with a real repository.
 */
export function objectName(repo: string, command: string, key: string): string {
  return `${repositoryPrefix(repo)}${command}/${key}`;
}

/** `<repo>/`: the prefix under which all of a repository's objects are named. */
export function repositoryPrefix(repo: string): string {
  const path = repo.replace(/^\/+|\/+$/g, "");
  return `${path === "" ? ".root" : path}/`;
}
