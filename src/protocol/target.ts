/**
 * The one canonical reading of a request's path and query. Every decision hgedge takes about a
 * Mercurial request — routing, the read-only write refusal, cache keys, the access check, the
 * origin URL — is taken on what this module returns, never on the raw URL, and the origin is
 * sent the canonical path, so that the origin cannot read the request differently.
 *
 * How Mercurial reads a request (5.x `hg serve`, hgweb/server.py, hgweb/request.py,
 * hgweb/hgwebdir_mod.py, wireprotoserver.py):
 * - the path is percent-decoded once (`urllib.parse.unquote`, invalid UTF-8 becoming U+FFFD),
 *   split on `/` after stripping outer slashes — so an encoded `/` (`%2F`) becomes a separator;
 * - hgwebdir picks the longest configured repository among the path's prefixes; what follows is
 *   the dispatch path;
 * - a dispatch path `api/<api>/<ro|rw>/<command>[/…]` is a v2 command (later segments ignored);
 * - otherwise a `cmd` query parameter naming a v1 command, on the repository's own path, is a v1
 *   command; the query is `parse_qsl`-ed (`&`-separated, `+` is a space, keys and values
 *   percent-decoded) and the *last* `cmd` wins.
 *
 * hgedge's form: decoded once, empty segments (repeated, leading, trailing slashes) dropped,
 * re-encoded for the origin. Whatever could be read two ways is refused: malformed percent
 * escapes, invalid UTF-8, an encoded `/` or `\`, control characters and NUL, a `%xx` left after
 * decoding (double encoding), dot segments, more than one `cmd`, more than one v2 API segment
 * run, segments after a v2 command, and Mercurial paths with a segment starting with `.`
 * (hgedge's own namespaces `.hgedge`, `.root`, `.bundles`).
 */
import { HTTP_V2_API } from "./capabilities.ts";

export type WireProtocol = "v2" | "v1" | "other";

/** v1 commands of Mercurial 5.6.1 (wireprotov1server.commands) and their permission, plus 6.x's. */
export const V1_COMMANDS: Readonly<Record<string, "pull" | "push">> = {
  batch: "pull",
  between: "pull",
  branches: "pull",
  branchmap: "pull",
  capabilities: "pull",
  changegroup: "pull",
  changegroupsubset: "pull",
  clonebundles: "pull",
  clonebundles_manifest: "pull",
  debugwireargs: "pull",
  getbundle: "pull",
  heads: "pull",
  hello: "pull",
  known: "pull",
  listkeys: "pull",
  lookup: "pull",
  protocaps: "pull",
  pushkey: "push",
  stream_out: "pull",
  unbundle: "push",
};

export interface CanonicalTarget {
  /** Decoded path segments, none empty. */
  segments: string[];
  /** The path to send on: `/` + segments, each percent-encoded so that one decoding gives it back. */
  path: string;
  /** The query as received (`""` or `?…`); its `cmd`, if any, is the one in `command`. */
  search: string;
  protocol: WireProtocol;
  /** The repository path (`/` or `/a/b`) for v1 and v2 requests. */
  repo?: string;
  command?: string;
  /** What the origin checks: `pull` or `push` (v2: by the URL's `ro`/`rw`; v1: by the command). */
  permission?: "pull" | "push";
  /** v2 only: the URL's permission segment. */
  access?: "ro" | "rw";
}

export type TargetVerdict = { ok: true; target: CanonicalTarget } | { ok: false; reason: string };

/** `pathname` and `search` as `new URL(...)` gives them. */
export function canonicalTarget(pathname: string, search: string): TargetVerdict {
  const segments = decodePath(pathname);
  if (typeof segments === "string") return refuse(segments);
  const query = queryCommand(search);
  if (query.kind === "refused") return refuse(query.reason);
  const path = `/${segments.map(encodeSegment).join("/")}`;
  const base = { segments, path, search: search === "?" ? "" : search };
  const v2 = v2Command(segments);
  if (v2.kind === "refused") return refuse(v2.reason);
  if (v2.kind === "v2") {
    const repo = repoOf(segments.slice(0, v2.at));
    if (typeof repo !== "string") return refuse(repo.reason);
    const permission = v2.access === "ro" ? "pull" : "push";
    return { ok: true, target: { ...base, protocol: "v2", repo, command: v2.command, permission, access: v2.access } };
  }
  if (query.kind === "command") {
    const permission = Object.hasOwn(V1_COMMANDS, query.command) ? V1_COMMANDS[query.command] : undefined;
    if (!permission) return { ok: true, target: { ...base, protocol: "other" } };
    const repo = repoOf(segments);
    if (typeof repo !== "string") return refuse(repo.reason);
    return { ok: true, target: { ...base, protocol: "v1", repo, command: query.command, permission } };
  }
  return { ok: true, target: { ...base, protocol: "other" } };
}

function refuse(reason: string): TargetVerdict {
  return { ok: false, reason };
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const HEX = /^[0-9A-Fa-f]{2}$/;
/** A control character (C0, DEL) or NUL anywhere. */
const CONTROL = /[\u0000-\u001f\u007f]/;
const LEFT_ENCODED = /%[0-9A-Fa-f]{2}/;

/** Percent-decodes once, as UTF-8; a string is the reason it cannot be done unambiguously. */
function percentDecode(raw: string, plusIsSpace: boolean): string | { reason: string } {
  const text = plusIsSpace ? raw.replace(/\+/g, " ") : raw;
  if (!text.includes("%")) return CONTROL.test(text) ? { reason: "control character" } : text;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x25) {
      const hex = text.slice(i + 1, i + 3);
      if (!HEX.test(hex)) return { reason: "malformed percent-encoding" };
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (code < 0x80) {
      bytes.push(code);
    } else {
      return { reason: "non-ASCII character in the URL" };
    }
  }
  let decoded: string;
  try {
    decoded = utf8.decode(new Uint8Array(bytes));
  } catch {
    return { reason: "percent-encoding that is not UTF-8" };
  }
  if (CONTROL.test(decoded)) return { reason: "control character or NUL" };
  if (LEFT_ENCODED.test(decoded)) return { reason: "double percent-encoding" };
  return decoded;
}

/** Decoded, non-empty segments, or why the path has no single reading. */
function decodePath(pathname: string): string[] | string {
  const segments: string[] = [];
  for (const raw of pathname.split("/")) {
    const segment = percentDecode(raw, false);
    if (typeof segment !== "string") return `path: ${segment.reason}`;
    if (segment.includes("/") || segment.includes("\\")) return "path: encoded / or \\ in a segment";
    if (segment === "") continue;
    if (segment === "." || segment === "..") return "path: dot segment";
    segments.push(segment);
  }
  return segments;
}

/** What a decoded segment must be encoded as so that one decoding (any server's) gives it back. */
function encodeSegment(segment: string): string {
  // RFC 3986 pchar: sub-delims, ":" and "@" stay as they are; "%", "?", "#" and the rest are encoded.
  return encodeURIComponent(segment).replace(/%(24|26|2B|2C|3A|3B|3D|40)/g, (escape) => decodeURIComponent(escape));
}

type QueryCommand = { kind: "none" } | { kind: "command"; command: string } | { kind: "refused"; reason: string };

/**
 * The `cmd` parameter as Python's parse_qsl reads it; more than one is refused. So are names and
 * values that decode to anything but ASCII: hgweb parses the query as bytes and fails (500) on
 * them, and a reading that depends on the decoder is ambiguous. A malformed escape in another
 * parameter's value is left to hgweb (which keeps it as it is).
 */
function queryCommand(search: string): QueryCommand {
  const query = search.startsWith("?") ? search.slice(1) : search;
  let command: string | undefined;
  for (const pair of query.split("&")) {
    if (pair === "") continue;
    const equals = pair.indexOf("=");
    const name = percentDecode(equals < 0 ? pair : pair.slice(0, equals), true);
    const value = percentDecode(equals < 0 ? "" : pair.slice(equals + 1), true);
    if (typeof name !== "string") return { kind: "refused", reason: `query: ${name.reason}` };
    if (typeof value === "string" ? !ASCII.test(value) : value.reason.includes("UTF-8")) return { kind: "refused", reason: "query: a value that is not ASCII" };
    if (!ASCII.test(name)) return { kind: "refused", reason: "query: a name that is not ASCII" };
    if (name !== "cmd") continue;
    if (typeof value !== "string") return { kind: "refused", reason: `query: cmd: ${value.reason}` };
    if (command !== undefined) return { kind: "refused", reason: "query: more than one cmd" };
    command = value;
  }
  return command === undefined ? { kind: "none" } : { kind: "command", command };
}

const ASCII = /^[\u0000-\u007f]*$/;

type V2Reading = { kind: "none" } | { kind: "v2"; at: number; access: "ro" | "rw"; command: string } | { kind: "refused"; reason: string };

/**
 * `…/api/<v2 api>/<ro|rw>/<command>`: Mercurial runs the command whatever follows, and a
 * repository of hgwebdir may itself contain such segments, so only one reading is accepted.
 */
function v2Command(segments: string[]): V2Reading {
  let found: V2Reading = { kind: "none" };
  for (let i = 0; i + 3 < segments.length; i++) {
    if (segments[i] !== "api" || segments[i + 1] !== HTTP_V2_API) continue;
    const access = segments[i + 2];
    if (access !== "ro" && access !== "rw") continue;
    if (found.kind === "v2") return { kind: "refused", reason: "path: more than one v2 command in it" };
    found = { kind: "v2", at: i, access, command: segments[i + 3] as string };
  }
  if (found.kind === "v2" && found.at + 4 !== segments.length) return { kind: "refused", reason: "path: segments after the v2 command" };
  return found;
}

/** `/` + segments; a segment starting with `.` is refused (hgweb serves none; hgedge's own names do). */
function repoOf(segments: string[]): string | { reason: string } {
  if (segments.some((s) => s.startsWith("."))) return { reason: "repository path: segment starting with \".\"" };
  return `/${segments.join("/")}`;
}

/**
 * Whether `repo` is a repository path in canonical form as requests name it (`/` or `/a/b`:
 * decoded, no empty, dot or dot-led segment, no control character or backslash), e.g. for the
 * admin API, which must name exactly one repository's objects.
 */
export function isCanonicalRepo(repo: string): boolean {
  if (!repo.startsWith("/") || CONTROL.test(repo) || repo.includes("\\")) return false;
  if (repo === "/") return true;
  const segments = repo.slice(1).split("/");
  return segments.every((s) => s !== "" && !s.startsWith("."));
}

/** The path (`/`-separated, percent-encoded) of a canonical repository, for building URLs. */
export function encodedRepoPath(repo: string): string {
  const segments = repo.split("/").filter(Boolean);
  return `/${segments.map(encodeSegment).join("/")}`;
}
