/**
 * Who may read cached data: a cached object is the origin's answer to *somebody*, so before a
 * hit is answered the origin is asked whether *this* client may read this repository — a cheap
 * `?cmd=capabilities` request carrying the client's own Authorization and Cookie headers, which
 * hgweb answers only with pull permission. A yes is remembered for ACCESS_TTL seconds under a
 * hash of repository and credentials (never the credentials themselves); a no, an error or an
 * origin that cannot be asked means the request goes to the origin, never to the cache.
 */
import { toHex } from "../protocol/hex.ts";
import { fetchOrigin, originTimeout, type OriginCall } from "../origin/client.ts";
import { clientAddressHeaders } from "../origin/headers.ts";
import { originRepoUrl } from "../origin/urls.ts";
import { logEvent } from "../log.ts";

const MAX_REMEMBERED = 10_000;

/** This isolate's memory of the origin's yeses (per repository, credentials and client address). */
export class AccessMemo {
  private readonly granted = new Map<string, number>();

  /**
   * Whether the client of `request` may read `repo`. The check carries the client-address headers
   * the data request is forwarded with, and a yes is remembered for that address only.
   */
  async mayRead(call: OriginCall, request: Request, repo: string, now = Date.now()): Promise<boolean> {
    const repoUrl = originRepoUrl(call.config, repo);
    const addressHeaders = clientAddressHeaders(request);
    const id = await credentialId(repoUrl, request.headers, addressHeaders);
    const until = this.granted.get(id);
    if (until !== undefined && until > now) return true;
    const allowed = await askOriginWhether(call, request, repoUrl, addressHeaders);
    if (allowed) this.remember(id, now + call.config.accessTtlSeconds * 1000);
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

async function askOriginWhether(call: OriginCall, request: Request, originRepoUrl: URL, addressHeaders: Headers): Promise<boolean> {
  const url = new URL(originRepoUrl.href);
  url.search = "?cmd=capabilities";
  const headers = new Headers(addressHeaders);
  headers.set("accept", "application/mercurial-0.1");
  for (const name of ["authorization", "cookie", "user-agent"]) {
    const value = request.headers.get(name);
    if (value) headers.set(name, value);
  }
  try {
    const response = await fetchOrigin(call.fetch, url, { method: "GET", headers, redirect: "manual" }, originTimeout(call.config));
    await response.body?.cancel();
    return response.status === 200 && (response.headers.get("content-type") ?? "").startsWith("application/mercurial-");
  } catch (error) {
    logEvent("warn", "access-check-failed", { origin: url.origin, error: String(error) });
    return false;
  }
}
