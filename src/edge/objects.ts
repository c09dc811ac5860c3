/**
 * The content route: `GET|HEAD /.hgedge/objects/<object name>` serves one cached command
 * response from R2, for clients that were sent here by a content redirect (docs/architecture.md,
 * "⑤ The content route"). Objects are immutable and named by the hash of what they answer, so
 * every answer is a strong, forever-cacheable representation: its entity tag is the SHA-256 of
 * its bytes.
 *
 * This module is the HTTP side: which answer a request gets (RFC 9110: If-None-Match → 304,
 * one bytes Range → 206 or 416, If-Range, evaluated in the order of §13.2.2; see http/) and the
 * PoP cache in front of R2. Names are parsed by src/cache/names.ts; objects are read and checked
 * by src/cache/objects.ts.
 *
 * The bytes are never transformed: Mercurial clients ask for `Accept-Encoding: identity` and do
 * not decode a content coding, so no Content-Encoding is ever set (workerd only compresses a body
 * whose response says Content-Encoding: gzip/br, and `encodeBody: "manual"` turns even that off),
 * and `no-transform` asks Cloudflare's edge not to compress on the way out either (its
 * compression docs: "cache-control: no-transform ... prevents Cloudflare from altering
 * compression on responses", which also keeps Content-Length intact).
 */
import { CACHE_STATUS_HEADER } from "../cache/answers.ts";
import { OBJECTS_ROUTE_PREFIX, objectNameFromPath } from "../cache/names.ts";
import { checkedRepresentation, readStored, type Representation, type VerifiedObjects } from "../cache/objects.ts";
import { objectPath } from "../cache/urls.ts";
import { copyResponse, plainError } from "../io/responses.ts";
import { logEvent as log } from "../log.ts";
import { hasPreconditions, isNotModified } from "./http/conditional.ts";
import { contentRange, honouredRange, satisfiableRange, unsatisfiedContentRange, type ByteRange } from "./http/ranges.ts";

export interface ObjectRouteOptions {
  /** PoP cache in front of R2 (caches.default in production); undefined disables it. */
  cache?: Cache;
  /** waitUntil for background cache writes; when absent, awaited inline. */
  waitUntil?: (promise: Promise<unknown>) => void;
  /** The objects whose hash this isolate has checked: one per isolate, made with the app. */
  verified: VerifiedObjects;
}

/** Objects never change under their name: caches may keep them for a year without asking. */
export const OBJECT_CACHE_CONTROL = "public, max-age=31536000, immutable, no-transform";
export const ALLOWED_METHODS = "GET, HEAD";
/** Whether the PoP cache answered (HIT) or R2 did (MISS); absent when the PoP cache was not asked. */
export const POP_STATUS_HEADER = "x-hgedge-pop";

/** Serves GET/HEAD <prefix><object name> from the bucket; other methods 405 with Allow: GET, HEAD. */
export async function handleObjectRequest(request: Request, bucket: R2Bucket, options: ObjectRouteOptions): Promise<Response> {
  if (request.method !== "GET" && request.method !== "HEAD") return methodNotAllowed();
  const url = new URL(request.url);
  const name = objectNameFromPath(url.pathname);
  if (name === undefined) return notFound("not an object name: content-route URLs come only from hgedge's redirects and clone-bundle lists");
  try {
    if (!isPlainGet(request)) return await answerAfterHead(request, bucket, name, options.verified);
    if (options.cache) return await answerThroughPop(url, bucket, name, options.cache, options);
    return await answerPlainGet(bucket, name, options.verified);
  } catch (error) {
    log("error", "r2-failure", { name, error: String(error) });
    return unavailable();
  }
}

// ---------------------------------------------------------------------------------------------
// Answers from R2

/** The hot path, what every redirected client sends: one R2 read, streamed straight through. */
async function answerPlainGet(bucket: R2Bucket, name: string, verified: VerifiedObjects): Promise<Response> {
  const object = await bucket.get(name);
  if (!object) return noSuchObject();
  const representation = await checkedRepresentation(bucket, object, { servesBytes: true, verified });
  if (!representation) return noSuchObject();
  return full(object.body, representation);
}

/**
 * HEAD, and GETs with conditions or a range: the metadata decides first, so that a 304 or a 416
 * reads no bytes at all and a 206 reads only its range. Evaluated in the order of RFC 9110
 * §13.2.2: If-None-Match (step 3), then If-Range (step 5), then Range.
 */
async function answerAfterHead(request: Request, bucket: R2Bucket, name: string, verified: VerifiedObjects): Promise<Response> {
  const stored = await bucket.head(name);
  if (!stored) return noSuchObject();
  const representation = await checkedRepresentation(bucket, stored, { servesBytes: false, verified });
  if (!representation) return noSuchObject();
  if (isNotModified(request, representation.etag)) return notModified(representation);
  if (request.method === "HEAD") return new Response(null, { headers: fullHeaders(representation) });
  const range = honouredRange(request, representation);
  const satisfiable = range && satisfiableRange(range, representation.size);
  if (range && !satisfiable) return rangeNotSatisfiable(representation);
  if (!(await checkedRepresentation(bucket, stored, { servesBytes: true, verified }))) return noSuchObject();
  if (!satisfiable) {
    const body = await readStored(bucket, stored);
    return body ? full(body, representation) : noSuchObject();
  }
  const body = await readStored(bucket, stored, satisfiable);
  return body ? partial(body, satisfiable, representation) : noSuchObject();
}

// ---------------------------------------------------------------------------------------------
// PoP cache

/**
 * A GET with no Range and no precondition: the whole object, as is, from one R2 read or the PoP
 * cache. Of the preconditions, If-Modified-Since and If-Unmodified-Since are ignored as RFC 9110
 * asks when there is no modification date (none is sent); If-Match is not evaluated.
 */
function isPlainGet(request: Request): boolean {
  return request.method === "GET" && !request.headers.has("range") && !hasPreconditions(request);
}

/**
 * A plain GET through the PoP cache. The key is the canonical URL of the object alone — no
 * headers, no query, the name re-encoded — so that every spelling of one object shares one
 * entry. A miss is answered from R2 and, at the same time, stored (see storeInPop).
 */
async function answerThroughPop(url: URL, bucket: R2Bucket, name: string, cache: Cache, options: ObjectRouteOptions): Promise<Response> {
  const key = new Request(`${url.origin}${OBJECTS_ROUTE_PREFIX}${objectPath(name)}`);
  const cached = await cache.match(key).catch((error: unknown) => {
    log("warn", "pop-cache-match-failed", { name, error: String(error) });
    return undefined;
  });
  if (cached) return withPopStatus(cached, cached.body, "HIT");
  const response = await answerPlainGet(bucket, name, options.verified);
  if (response.status !== 200 || !response.body) return response;
  const [toClient, toCache] = response.body.tee();
  const stored = storeInPop(cache, key, copyResponse(response, { body: toCache, encodeBody: "manual" }));
  if (options.waitUntil) options.waitUntil(stored);
  else await stored;
  return withPopStatus(response, toClient, "MISS");
}

/**
 * `cache.put` pumps its branch of the tee into the cache as the runtime pumps the other branch
 * to the client. Two native pumps on one tee advance in lockstep (kj::newTee: "the two pumps
 * progress in lockstep, and there is no buffering"), so the tee holds no more than a chunk and
 * memory stays flat whatever the object's size; a client that goes away leaves the cache branch
 * to finish alone. Awaited inline (no waitUntil, as in tests) the client branch is not being read
 * yet, so it buffers the whole object: fine for tests, not for production.
 */
async function storeInPop(cache: Cache, key: Request, response: Response): Promise<void> {
  try {
    await cache.put(key, response);
  } catch (error) {
    log("warn", "pop-cache-put-failed", { url: key.url, error: String(error) });
    // A put whose body broke may still have stored part of it: never serve that.
    await cache.delete(key).catch(() => undefined);
  }
}

function withPopStatus(response: Response, body: ReadableStream | null, status: "HIT" | "MISS"): Response {
  return copyResponse(response, { body, headers: { [POP_STATUS_HEADER]: status }, encodeBody: "manual" });
}

// ---------------------------------------------------------------------------------------------
// Responses

function representationHeaders(representation: Representation): Headers {
  return new Headers({
    "content-type": representation.contentType,
    etag: representation.etag,
    "cache-control": OBJECT_CACHE_CONTROL,
    "accept-ranges": "bytes",
    [CACHE_STATUS_HEADER]: "HIT",
  });
}

function fullHeaders(representation: Representation): Headers {
  const headers = representationHeaders(representation);
  headers.set("content-length", String(representation.size));
  return headers;
}

/** 200: the bytes streamed from R2 as they arrive, never held whole. */
function full(body: ReadableStream, representation: Representation): Response {
  return new Response(body, { headers: fullHeaders(representation), encodeBody: "manual" });
}

/** 206 (RFC 9110 §15.3.7) with its Content-Range (§14.4). */
function partial(body: ReadableStream, range: ByteRange, representation: Representation): Response {
  const headers = representationHeaders(representation);
  headers.set("content-range", contentRange(range, representation.size));
  headers.set("content-length", String(range.length));
  return new Response(body, { status: 206, headers, encodeBody: "manual" });
}

/**
 * 304 (§15.4.5): "The server generating a 304 response MUST generate any of the following header
 * fields that would have been sent in a 200 (OK) response to the same request: Content-Location,
 * Date, ETag, and Vary; Cache-Control and Expires".
 */
function notModified(representation: Representation): Response {
  const headers = new Headers({ etag: representation.etag, "cache-control": OBJECT_CACHE_CONTROL, [CACHE_STATUS_HEADER]: "HIT" });
  return new Response(null, { status: 304, headers });
}

/**
 * 416 (§15.5.17): "A server that generates a 416 response to a byte-range request SHOULD generate
 * a Content-Range header field specifying the current length of the selected representation."
 */
function rangeNotSatisfiable(representation: Representation): Response {
  return plainError(416, `range not satisfiable: the object has ${representation.size} bytes; ask for a range that starts before its end`, {
    "content-range": unsatisfiedContentRange(representation.size),
    etag: representation.etag,
  });
}

function notFound(reason: string): Response {
  return plainError(404, reason);
}

/** Purged, replaced or never stored: the command asked again through hgedge stores it anew. */
function noSuchObject(): Response {
  return notFound("no such object (purged or not stored); run the Mercurial command again");
}

/**
 * §15.5.6: "The origin server MUST generate an Allow header field in a 405 response containing a
 * list of the target resource's currently supported methods."
 */
function methodNotAllowed(): Response {
  return plainError(405, "only GET and HEAD are allowed on the content route", { allow: ALLOWED_METHODS });
}

/** R2 failed: the object may well be there, so ask the client to come back (§10.2.3 Retry-After). */
function unavailable(): Response {
  return plainError(503, "the object store failed; retry in a moment", { "retry-after": "1" });
}
