/**
 * A cacheable v2 command (`ro/manifestdata`, `ro/filesdata`, `ro/filedata`): answered from R2
 * when the object is there — a redirect if the client accepts one of our targets and the object
 * is big enough to be worth a second request, inline otherwise — and filled while streaming
 * when it is not.
 */
import { inlineAnswer, redirectAnswer, CACHE_STATUS_HEADER, type CacheStatus } from "../cache/answers.ts";
import { fillWhileStreaming, type FillOutcome } from "../cache/fill.ts";
import { cacheKey, objectName, KEY_FORMAT_VERSION, type CacheableCommand } from "../cache/keys.ts";
import { contentRouteUrls, publicBucketUrls } from "../cache/redirect.ts";
import { ObjectWriter, readMetadata } from "../cache/store.ts";
import type { JoinResult } from "../cache/coalescer.ts";
import { FRAMING_MEDIA_TYPE } from "../protocol/capabilities.ts";
import type { ParsedRequestBody } from "../protocol/requests.ts";
import type { Config } from "../config.ts";
import { AccessMemo } from "../cache/access.ts";
import { signedUrls } from "../cache/signing.ts";
import { clientAddressHeaders, forwardToOrigin, originRepoUrl } from "./passthrough.ts";
import { forwardV2Request } from "./retry.ts";
import { chooseRedirectTarget } from "./targets.ts";
import type { V2Context } from "./v2.ts";
import { logEvent as log } from "../log.ts";

export async function answerCacheable(
  context: V2Context,
  bucket: R2Bucket,
  command: CacheableCommand,
  parsed: ParsedRequestBody,
  body: Uint8Array,
): Promise<Response> {
  const { request, config } = context;
  const key = await cacheKey({ origin: config.originUrl.href, cacheVersion: config.cacheVersion }, command);
  const name = objectName(command.repo, command.command, key);
  let stored: R2Object | null;
  try {
    stored = await bucket.head(name);
  } catch (error) {
    log("warn", "r2-head-failed", { name, error: String(error) });
    return withStatus(await forwardToOrigin(request, config, context.originFetch, body), "BYPASS");
  }
  if (stored && Number(stored.customMetadata?.keyFormat) === KEY_FORMAT_VERSION) {
    const hit = await answerHit(context, bucket, command, stored);
    if (hit) return hit;
  }
  return answerMiss({ context, bucket, command, name, parsed, body });
}

async function answerHit(context: V2Context, bucket: R2Bucket, command: CacheableCommand, stored: R2Object): Promise<Response | undefined> {
  const { request, config } = context;
  const addresses = clientAddressHeaders(request);
  if (config.access === "origin" && !(await accessMemo(config).mayRead(request, originRepoUrl(config, command.repo), context.originFetch, addresses))) {
    log("info", "cache-access-denied", { repo: command.repo });
    return undefined; // the origin answers, with its own 401/403
  }
  const metadata = readMetadata(stored);
  const requestUrl = new URL(request.url);
  // Small objects go inline whatever the client accepts: no target is chosen (nor probed).
  const target = metadata.size >= config.minRedirectBytes ? chooseRedirectTarget(context, command.redirect) : undefined;
  if (target) {
    log("info", "cache-redirect", { name: stored.key, size: metadata.size, target: target.name });
    servedObjectBytes.set(request, metadata.size);
    return redirectAnswer(command.requestId, await objectUrl(config, requestUrl, stored.key, config.targetObjectUrls?.get(target.name)), metadata, config.redirectFullHashes);
  }
  const object = await bucket.get(stored.key).catch((error: unknown) => {
    log("warn", "r2-get-failed", { name: stored.key, error: String(error) });
    return null;
  });
  if (!object) return undefined; // gone or unreadable since the head: fall back to the origin
  log("info", "cache-hit", { name: stored.key, size: metadata.size });
  servedObjectBytes.set(request, metadata.size);
  return inlineAnswer(command.requestId, object.body, command.contentEncodings);
}

/** A cacheable request whose object is not in R2, and what answering it needs. */
interface Miss {
  context: V2Context;
  bucket: R2Bucket;
  command: CacheableCommand;
  /** The object's R2 name. */
  name: string;
  parsed: ParsedRequestBody;
  /** The request body, forwarded to the origin as the client sent it. */
  body: Uint8Array;
}

/**
 * A miss. With a COALESCER bound, concurrent misses for one object share one fill: the leader
 * fills from the origin, followers wait and are answered from R2 (see src/cache/coalescer.ts).
 * A follower whose leader failed joins again once (its client may simply have gone away); one
 * that waited too long, or whose second leader failed too, asks the origin without storing.
 */
async function answerMiss(miss: Miss): Promise<Response> {
  const { context, bucket, command, name, parsed, body } = miss;
  for (let join = 1; join <= MAX_JOINS; join++) {
    const flight = await joinFlight(context, name);
    if (flight.role === "leader") {
      // A flight that ended between our R2 head and our join has left the object behind.
      const filled = context.config.coalescer ? await bucket.head(name).catch(() => null) : null;
      const hit = filled ? await answerHit(context, bucket, command, filled) : undefined;
      if (hit) {
        flight.settle(true);
        return hit;
      }
      return fillFromOrigin(miss, flight.settle);
    }
    if (flight.outcome === "committed") {
      const stored = await bucket.head(name).catch(() => null);
      const hit = stored ? await answerHit(context, bucket, command, stored) : undefined;
      if (hit) return hit;
      break;
    }
    log("info", "coalesce-wait-ended", { name, outcome: flight.outcome, join });
    if (flight.outcome === "timeout") break;
  }
  return notStored(await forwardV2Request(context, command.repo, parsed, body));
}

const MAX_JOINS = 2;

type Flight =
  | { role: "leader"; settle: (committed: boolean) => void }
  | { role: "follower"; outcome: "committed" | "failed" | "timeout" };

/** Joins the object's single flight; without a COALESCER (or if it fails) every miss leads. */
async function joinFlight({ config, waitUntil }: V2Context, name: string): Promise<Flight> {
  const alone: Flight = { role: "leader", settle: () => undefined };
  if (!config.coalescer) return alone;
  const stub = config.coalescer.get(config.coalescer.idFromName(name));
  let joined: JoinResult;
  try {
    joined = await stub.join(config.coalesceWaitMs, config.coalesceWaitMs);
  } catch (error) {
    log("warn", "coalescer-failed", { name, error: String(error) });
    return alone;
  }
  if (joined.role === "follower") return joined;
  let settled = false;
  const settle = (committed: boolean) => {
    if (settled) return;
    settled = true;
    const told = stub.settle(joined.lease, committed).catch((error: unknown) => log("warn", "coalescer-settle-failed", { name, error: String(error) }));
    waitUntil?.(told);
  };
  return { role: "leader", settle };
}

/** Asks the origin and stores its answer while streaming it; `settle` hears whether it committed. */
async function fillFromOrigin({ context, bucket, command, name, parsed, body }: Miss, settle: (committed: boolean) => void): Promise<Response> {
  let response: Response;
  try {
    // A retried filesdata answer is a valid answer to the original request: stored under its key.
    response = await forwardV2Request(context, command.repo, parsed, body);
  } catch (error) {
    settle(false);
    throw error;
  }
  if (!isFramedSuccess(response) || !response.body) {
    settle(false);
    return withStatus(response, "BYPASS");
  }
  const skip = fillSkipReason(name, context.config.fillConcurrency, context.config.originIdleTimeoutMs);
  if (skip) {
    settle(false);
    log("info", "cache-fill-skipped", { name, reason: skip });
    return notStored(response);
  }
  const writer = new ObjectWriter(bucket, name, command.command);
  const fill: ActiveFill = { started: Date.now(), lastProgress: Date.now(), bytes: 0, stop: () => void writer.abort().catch(() => undefined) };
  activeFills.set(name, fill);
  const onOutcome = (outcome: FillOutcome) => {
    if (activeFills.get(name) === fill) activeFills.delete(name);
    settle(outcome.committed);
    if (outcome.committed) log("info", "cache-fill", { name, size: outcome.object.size, sha256: outcome.object.sha256 });
    else log("warn", "cache-fill-aborted", { name, reason: outcome.reason });
  };
  const filled = fillWhileStreaming(response.body, {
    requestId: command.requestId,
    writer,
    onOutcome,
    onProgress: (bytes) => {
      fill.lastProgress = Date.now();
      fill.bytes += bytes;
    },
    ...(context.waitUntil ? { waitUntil: context.waitUntil } : {}),
  });
  return withStatus(new Response(filled, response), "MISS");
}

/** Size of the cached object a request was answered with (for logs and saved-bytes counters). */
export const servedObjectBytes = new WeakMap<Request, number>();

/**
 * Objects being filled in this isolate. A fill holds up to one R2 part (8 MiB) in memory and an
 * isolate has 128 MB for all its requests, so only FILL_CONCURRENCY fills run at once; other
 * misses — and a second miss for an object already being filled — are answered by the origin
 * without storing (the next request finds the object).
 *
 * A fill moves at its client's pace (the origin is read as the client reads). So that a client
 * cannot hold a slot for good, a fill that needs a slot takes it from one that is past
 * FILL_SLOW_AFTER_MS and averaged under FILL_MIN_BYTES_PER_SECOND: that fill's upload is
 * aborted (its memory freed, its coalescer followers told), and its client reads on from the
 * origin, unstored. And when a client goes away, the runtime may drop its request without ever
 * cancelling the stream, so no outcome arrives: an entry idle for longer than
 * ORIGIN_IDLE_TIMEOUT_MS is forgotten, or such leftovers would block those objects (and,
 * FILL_CONCURRENCY of them, every fill) in this isolate for good.
 */
const activeFills = new Map<string, ActiveFill>();

interface ActiveFill {
  started: number;
  /** When a chunk last went through. */
  lastProgress: number;
  /** Bytes read from the origin (at the client's pace). */
  bytes: number;
  /** Abandons the fill: aborts the upload; the client's stream goes on. */
  stop: () => void;
}

/** How long a fill keeps its slot whatever its pace. */
export const FILL_SLOW_AFTER_MS = 30_000;
/** The average pace under which a fill past FILL_SLOW_AFTER_MS gives its slot to another. */
export const FILL_MIN_BYTES_PER_SECOND = 64 * 1024;

/** Set (to `skipped`) on a MISS whose answer is not being stored. */
export const FILL_SKIPPED_HEADER = "x-hgedge-fill";

function fillSkipReason(name: string, limit: number, idleMs: number): string | undefined {
  const now = Date.now();
  for (const [filling, fill] of activeFills) {
    if (now - fill.lastProgress <= idleMs) continue;
    activeFills.delete(filling);
    log("warn", "cache-fill-forgotten", { name: filling, idleMs: now - fill.lastProgress });
  }
  if (activeFills.has(name)) return "already being filled in this isolate";
  if (activeFills.size >= limit && !preemptSlowestFill(now)) return `${limit} fills already running (FILL_CONCURRENCY)`;
  return undefined;
}

/** Frees the slot of the slowest fill past FILL_SLOW_AFTER_MS under FILL_MIN_BYTES_PER_SECOND, if any. */
function preemptSlowestFill(now: number): boolean {
  let slowest: [string, ActiveFill, number] | undefined;
  for (const [filling, fill] of activeFills) {
    const elapsed = now - fill.started;
    const rate = (fill.bytes * 1000) / Math.max(1, elapsed);
    if (elapsed < FILL_SLOW_AFTER_MS || rate >= FILL_MIN_BYTES_PER_SECOND) continue;
    if (!slowest || rate < slowest[2]) slowest = [filling, fill, rate];
  }
  if (!slowest) return false;
  const [filling, fill, rate] = slowest;
  activeFills.delete(filling);
  fill.stop();
  log("warn", "cache-fill-preempted", { name: filling, bytesPerSecond: Math.round(rate), reason: "its client reads too slowly; another fill needs the slot" });
  return true;
}

/**
 * Where a redirect points: under the chosen target's TARGET_OBJECT_URLS base if it has one; else,
 * for public repositories, the R2 custom domain if there is one, else the content route; for the
 * others always a signed, expiring URL (on the target's base, which is then an hgedge content route).
 */
export async function objectUrl(config: Config, requestUrl: URL, name: string, targetBase?: URL): Promise<string> {
  const route = targetBase ? publicBucketUrls(targetBase) : contentRouteUrls(requestUrl.origin);
  if (config.access === "public") return (!targetBase && config.publicObjectsUrl ? publicBucketUrls(config.publicObjectsUrl) : route)(name);
  const sign = await signedUrls(route, config.signingKey as string, config.urlTtlSeconds);
  return sign(name);
}

const memos = new WeakMap<Config, AccessMemo>();

function accessMemo(config: Config): AccessMemo {
  let memo = memos.get(config);
  if (!memo) memos.set(config, (memo = new AccessMemo(config.accessTtlSeconds, config.originTimeoutMs)));
  return memo;
}

/** Whether an origin's answer can be a command's answer at all (an error page or status cannot). */
function isFramedSuccess(response: Response): boolean {
  return response.status === 200 && response.headers.get("content-type") === FRAMING_MEDIA_TYPE && response.body !== null;
}

/**
 * A miss answered by the origin that hgedge is not storing: the client (e.g. the warmer) is told.
 * An origin's error answer is a BYPASS, not a MISS: MISS promises the origin's command answer.
 */
function notStored(response: Response): Response {
  if (!isFramedSuccess(response)) return withStatus(response, "BYPASS");
  const answer = withStatus(response, "MISS");
  answer.headers.set(FILL_SKIPPED_HEADER, "skipped");
  return answer;
}

function withStatus(response: Response, status: CacheStatus): Response {
  const headers = new Headers(response.headers);
  headers.set(CACHE_STATUS_HEADER, status);
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}
