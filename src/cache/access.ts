/**
 * Who may read cached data: a cached object is the origin's answer to *somebody*, so before a
 * hit is answered the origin is asked whether *this* client may read this repository — a cheap
 * `?cmd=capabilities` request carrying the client's own Authorization and Cookie headers, which
 * hgweb answers only with pull permission. A yes is remembered for ACCESS_TTL seconds under a
 * hash of repository and credentials (never the credentials themselves); a no, an error or an
 * origin that cannot be asked means the request goes to the origin, never to the cache.
 */
import { toHex } from "../protocol/hex.ts";
import { logEvent } from "../log.ts";

const MAX_REMEMBERED = 10_000;

export type AskOrigin = (url: string, init: RequestInit) => Promise<Response>;

export class AccessMemo {
  private readonly granted = new Map<string, number>();

  /** `originTimeoutMs`: how long the origin may take to answer the check (ORIGIN_TIMEOUT_MS). */
  constructor(
    private readonly ttlSeconds: number,
    private readonly originTimeoutMs: number,
  ) {}

  /**
   * `addressHeaders` are the client-address headers the data request is forwarded with: the
   * check carries the same, and a yes is remembered for that address only.
   */
  async mayRead(request: Request, originRepoUrl: URL, askOrigin: AskOrigin, addressHeaders: Headers = new Headers(), now = Date.now()): Promise<boolean> {
    const id = await credentialId(originRepoUrl, request.headers, addressHeaders);
    const until = this.granted.get(id);
    if (until !== undefined && until > now) return true;
    const allowed = await askOriginWhether(request, originRepoUrl, askOrigin, addressHeaders, this.originTimeoutMs);
    if (allowed) this.remember(id, now + this.ttlSeconds * 1000);
    else this.granted.delete(id);
    return allowed;
  }

  private remember(id: string, until: number): void {
    if (this.granted.size >= MAX_REMEMBERED) this.granted.clear();
    this.granted.set(id, until);
  }
}

async function credentialId(originRepoUrl: URL, headers: Headers, addressHeaders: Headers): Promise<string> {
  const address = [...addressHeaders].map(([name, value]) => `${name}: ${value}`).join("\n");
  // JSON keeps the parts apart whatever they contain (a header value cannot forge another part).
  const material = JSON.stringify([originRepoUrl.href, headers.get("authorization") ?? "", headers.get("cookie") ?? "", address]);
  return toHex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(material)));
}

async function askOriginWhether(request: Request, originRepoUrl: URL, askOrigin: AskOrigin, addressHeaders: Headers, timeoutMs: number): Promise<boolean> {
  const url = new URL(originRepoUrl.href);
  url.search = "?cmd=capabilities";
  const headers = new Headers(addressHeaders);
  headers.set("accept", "application/mercurial-0.1");
  for (const name of ["authorization", "cookie", "user-agent"]) {
    const value = request.headers.get(name);
    if (value) headers.set(name, value);
  }
  try {
    const response = await askOrigin(url.href, { method: "GET", headers, redirect: "manual", signal: AbortSignal.timeout(timeoutMs) });
    await response.body?.cancel();
    return response.status === 200 && (response.headers.get("content-type") ?? "").startsWith("application/mercurial-");
  } catch (error) {
    logEvent("warn", "access-check-failed", { origin: url.origin, error: String(error) });
    return false;
  }
}
