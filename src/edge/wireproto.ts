/**
 * What a request is, in Mercurial's terms (protocol.md §1.2, §1.4), and where its repository
 * lives: any layout works — one repository at `/`, or hgwebdir with repositories under nested
 * paths — because the repository path is whatever precedes `/api/` or the `?cmd=` query.
 */
import { HTTP_V2_API } from "../protocol/capabilities.ts";

export type HgRequest =
  /** The v1 capabilities request, asking to upgrade to the v2 API. */
  | { kind: "handshake"; repo: string }
  /** `POST <repo>/api/<v2 api>/<ro|rw>/<command>`. */
  | { kind: "v2-command"; repo: string; permission: "ro" | "rw"; command: string }
  /** Anything else (hgweb pages, other v1 commands, pushes, the API's own index pages). */
  | { kind: "other" };

const V2_PREFIX = `/api/${HTTP_V2_API}/`;

export function classify(request: Request): HgRequest {
  const url = new URL(request.url);
  const apiAt = url.pathname.indexOf(V2_PREFIX);
  if (apiAt >= 0) {
    const [permission, command] = url.pathname.slice(apiAt + V2_PREFIX.length).split("/");
    if ((permission === "ro" || permission === "rw") && command) {
      return { kind: "v2-command", repo: repoPath(url.pathname.slice(0, apiAt)), permission, command };
    }
    return { kind: "other" };
  }
  if (request.method === "GET" && url.searchParams.get("cmd") === "capabilities" && asksForUpgrade(request.headers)) {
    return { kind: "handshake", repo: repoPath(url.pathname) };
  }
  return { kind: "other" };
}

function repoPath(pathname: string): string {
  return pathname.replace(/\/+$/, "") || "/";
}

/**
 * Mercurial splits long header values over `X-HgUpgrade-1`, `-2`, ... and concatenates them
 * without separator (wireprotoserver.decodevaluefromheaders).
 */
export function headerValue(headers: Headers, prefix: string): string {
  let value = "";
  for (let i = 1; ; i++) {
    const part = headers.get(`${prefix}-${i}`);
    if (part === null) return value;
    value += part;
  }
}

/** The origin only upgrades when both header families are there and `cbor` is offered. */
function asksForUpgrade(headers: Headers): boolean {
  const upgrade = headerValue(headers, "x-hgupgrade").split(" ").filter(Boolean);
  const proto = headerValue(headers, "x-hgproto").split(" ").filter(Boolean);
  return upgrade.length > 0 && proto.includes("cbor");
}
