/**
 * Signed, expiring URLs for cached objects of repositories that are not public: HMAC-SHA-256
 * with the SIGNING_KEY secret over the object name and the expiry time. The content route
 * verifies them with WebCrypto's HMAC verify, which compares in constant time.
 */
import { fromHex, toHex } from "../protocol/hex.ts";

export const EXPIRES_PARAM = "expires";
export const SIGNATURE_PARAM = "sig";

/** The HMAC key of a secret: imported per use (cheap), so no key is kept anywhere between requests. */
function hmacKey(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
}

function signedData(objectName: string, expires: number): Uint8Array {
  return new TextEncoder().encode(`${objectName}\n${expires}`);
}

export async function signature(secret: string, objectName: string, expires: number, key?: CryptoKey): Promise<string> {
  return toHex(await crypto.subtle.sign("HMAC", key ?? (await hmacKey(secret)), signedData(objectName, expires)));
}

/** Wraps a URL builder so that every URL carries `expires` and `sig`, valid for `ttlSeconds`. */
export async function signedUrls(unsigned: (name: string) => string, secret: string, ttlSeconds: number, now = Date.now()): Promise<(name: string) => Promise<string>> {
  const expires = Math.floor(now / 1000) + ttlSeconds;
  const key = await hmacKey(secret);
  return async (name) => {
    const url = new URL(unsigned(name));
    url.searchParams.set(EXPIRES_PARAM, String(expires));
    url.searchParams.set(SIGNATURE_PARAM, await signature(secret, name, expires, key));
    return url.href;
  };
}

export type SignatureCheck = { valid: true; expires: number } | { valid: false; reason: string };

/** Checks a request URL's signature for `objectName`: present, untampered, not expired. */
export async function checkSignature(url: URL, objectName: string, secret: string, now = Date.now()): Promise<SignatureCheck> {
  const expiresText = url.searchParams.get(EXPIRES_PARAM);
  const sig = url.searchParams.get(SIGNATURE_PARAM);
  if (!expiresText || !sig) return { valid: false, reason: "unsigned URL" };
  const expires = Number(expiresText);
  if (!/^\d{1,12}$/.test(expiresText) || !/^[0-9a-f]{64}$/.test(sig)) return { valid: false, reason: "malformed signature" };
  const genuine = await crypto.subtle.verify("HMAC", await hmacKey(secret), fromHex(sig), signedData(objectName, expires));
  if (!genuine) return { valid: false, reason: "bad signature" };
  if (expires * 1000 <= now) return { valid: false, reason: "expired URL" };
  return { valid: true, expires };
}
