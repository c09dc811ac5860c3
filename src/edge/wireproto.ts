/**
 * What a request is, in Mercurial's terms (protocol.md §1.2, §1.4), and where its repository
 * lives: any layout works — one repository at `/`, or hgwebdir with repositories under nested
 * paths — because the repository path is whatever precedes `/api/` or the `?cmd=` query.
 * The path and query are read once, by canonicalTarget; nothing here looks at the raw URL.
 */
import type { CanonicalTarget } from "../protocol/target.ts";

export type HgRequest =
  /** The v1 capabilities request, asking to upgrade to the v2 API. */
  | { kind: "handshake"; repo: string }
  /** `POST <repo>/api/<v2 api>/<ro|rw>/<command>`. */
  | { kind: "v2-command"; repo: string; permission: "ro" | "rw"; command: string }
  /** Anything else (hgweb pages, other v1 commands, pushes, the API's own index pages). */
  | { kind: "other" };

/**
 * What hgedge does with a request, decided on its canonical form only (src/protocol/target.ts):
 * the request passed here already carries the canonical path.
 */
export function classify(request: Request, target: CanonicalTarget): HgRequest {
  if (target.protocol === "v2" && target.access && target.command !== undefined && target.repo !== undefined) {
    return { kind: "v2-command", repo: target.repo, permission: target.access, command: target.command };
  }
  if (target.protocol === "v1" && target.command === "capabilities" && request.method === "GET" && asksForUpgrade(request.headers)) {
    return { kind: "handshake", repo: target.repo as string };
  }
  return { kind: "other" };
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
