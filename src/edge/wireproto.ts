/**
 * Reading Mercurial's HTTP headers (protocol.md §1.2, §1.4): values split over numbered headers,
 * and whether a capabilities request asks to upgrade to the v2 API.
 */
/**
 * Mercurial splits long header values over `X-HgUpgrade-1`, `-2`, ... and concatenates them
 * without separator (wireprotoserver.decodevaluefromheaders).
 */
function headerValue(headers: Headers, prefix: string): string {
  let value = "";
  for (let i = 1; ; i++) {
    const part = headers.get(`${prefix}-${i}`);
    if (part === null) return value;
    value += part;
  }
}

/** The origin only upgrades when both header families are there and `cbor` is offered. */
export function asksForUpgrade(headers: Headers): boolean {
  const upgrade = headerValue(headers, "x-hgupgrade").split(" ").filter(Boolean);
  const proto = headerValue(headers, "x-hgproto").split(" ").filter(Boolean);
  return upgrade.length > 0 && proto.includes("cbor");
}
