/**
 * The cache as a service for one cacheable v2 command (`ro/manifestdata`, `ro/filesdata`,
 * `ro/filedata`): answered from R2 when the object is there — a redirect if the client accepts
 * one of our targets and the object is big enough to be worth a second request, inline
 * otherwise — and filled while streaming when it is not. The caller (src/edge/v2.ts) turns the
 * CacheAnswer into HTTP; nothing here calls back into it.
 */
import type { Config, ServingCache } from "../config.ts";
import { type OriginCall } from "../origin/client.ts";
import { forwardV2Request } from "../origin/retry.ts";
import { FRAMING_MEDIA_TYPE } from "../protocol/capabilities.ts";
import type { ParsedRequestBody } from "../protocol/requests.ts";
import { logEvent as log } from "../log.ts";
import { inlineAnswer, redirectAnswer, type CacheStatus } from "./answers.ts";
import { coalescerStub, type JoinResult } from "./coalescer.ts";
import { fillWhileStreaming, type FillOutcome } from "./fill.ts";
import type { CacheIsolate } from "./isolate.ts";
import { cacheKey, objectName, KEY_FORMAT_VERSION, type CacheableCommand } from "./keys.ts";
import { ObjectWriter, readMetadata } from "./store.ts";
import { chooseRedirectTarget } from "./targets.ts";
import { objectUrl } from "./urls.ts";

/** What the cache needs to know of one client request. */
export interface CacheScope {
  /** The client's request, on its canonical path. */
  request: Request;
  config: Config;
  cache: ServingCache;
  isolate: CacheIsolate;
  origin: OriginCall;
  /** ctx.waitUntil, for work that outlives the response (commits, probes, coalescer notes). */
  waitUntil?: (promise: Promise<unknown>) => void;
}

/** How the cache answered, for the edge to send, log and count. */
export interface CacheAnswer {
  status: CacheStatus;
  response: Response;
  /** Size of the cached object the answer serves (HIT and REDIRECT). */
  objectBytes?: number;
  /** A MISS whose answer is not being stored (the client, e.g. the warmer, is told). */
  notStored?: boolean;
}

/** Answers a cacheable command: from R2 when possible, else from the origin while filling. */
export async function answerCacheable(scope: CacheScope, command: CacheableCommand, parsed: ParsedRequestBody, body: Uint8Array): Promise<CacheAnswer> {
  const { config, cache } = scope;
  const key = await cacheKey({ origin: config.originUrl.href, cacheVersion: config.cacheVersion }, command);
  const name = objectName(command.repo, command.command, key);
  let stored: R2Object | null;
  try {
    stored = await cache.bucket.head(name);
  } catch (error) {
    log("warn", "r2-head-failed", { name, error: String(error) });
    return bypass(await forwardV2Request(scope.origin, scope.request, command.repo, parsed, body));
  }
  if (stored && Number(stored.customMetadata?.keyFormat) === KEY_FORMAT_VERSION) {
    const hit = await answerHit(scope, command, stored);
    if (hit) return hit;
  }
  return answerMiss({ scope, command, name, parsed, body });
}

/** The stored object as a redirect or inline, or undefined: the origin must answer this client. */
async function answerHit(scope: CacheScope, command: CacheableCommand, stored: R2Object): Promise<CacheAnswer | undefined> {
  const { request, config, cache, isolate } = scope;
  if (cache.mode === "signed" && !(await isolate.access.mayRead(scope.origin, request, command.repo))) {
    log("info", "cache-access-denied", { repo: command.repo });
    return undefined; // the origin answers, with its own 401/403
  }
  const metadata = readMetadata(stored);
  // Small objects go inline whatever the client accepts: no target is chosen (nor probed).
  const target = metadata.size >= config.minRedirectBytes ? chooseRedirectTarget({ ...scope, targetHealth: isolate.targetHealth }, command.redirect) : undefined;
  if (target) {
    log("info", "cache-redirect", { name: stored.key, size: metadata.size, target: target.name });
    const url = await objectUrl(config, cache, new URL(request.url).origin, stored.key, config.targetObjectUrls?.get(target.name));
    return { status: "REDIRECT", response: redirectAnswer(command.requestId, url, metadata, config.redirectFullHashes), objectBytes: metadata.size };
  }
  const object = await cache.bucket.get(stored.key).catch((error: unknown) => {
    log("warn", "r2-get-failed", { name: stored.key, error: String(error) });
    return null;
  });
  if (!object) return undefined; // gone or unreadable since the head: fall back to the origin
  log("info", "cache-hit", { name: stored.key, size: metadata.size });
  return { status: "HIT", response: inlineAnswer(command.requestId, object.body, command.contentEncodings), objectBytes: metadata.size };
}

/** A cacheable request whose object is not in R2, and what answering it needs. */
interface Miss {
  scope: CacheScope;
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
async function answerMiss(miss: Miss): Promise<CacheAnswer> {
  const { scope, command, name } = miss;
  for (let join = 1; join <= MAX_JOINS; join++) {
    const flight = await joinFlight(scope, name);
    if (flight.role === "leader") {
      // A flight that ended between our R2 head and our join has left the object behind.
      const hit = scope.config.coalescer ? await hitIfStored(scope, command, name) : undefined;
      if (hit) {
        flight.settle(true);
        return hit;
      }
      return fillFromOrigin(miss, flight.settle);
    }
    if (flight.outcome === "committed") {
      const hit = await hitIfStored(scope, command, name);
      if (hit) return hit;
      break;
    }
    log("info", "coalesce-wait-ended", { name, outcome: flight.outcome, join });
    if (flight.outcome === "timeout") break;
  }
  return notStored(await forwardV2Request(scope.origin, scope.request, command.repo, miss.parsed, miss.body));
}

const MAX_JOINS = 2;

async function hitIfStored(scope: CacheScope, command: CacheableCommand, name: string): Promise<CacheAnswer | undefined> {
  const stored = await scope.cache.bucket.head(name).catch(() => null);
  return stored ? answerHit(scope, command, stored) : undefined;
}

type Flight =
  | { role: "leader"; settle: (committed: boolean) => void }
  | { role: "follower"; outcome: "committed" | "failed" | "timeout" };

/** Joins the object's single flight; without a COALESCER (or if it fails) every miss leads. */
async function joinFlight({ config, waitUntil }: CacheScope, name: string): Promise<Flight> {
  const alone: Flight = { role: "leader", settle: () => undefined };
  if (!config.coalescer) return alone;
  const stub = coalescerStub(config.coalescer, name);
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
async function fillFromOrigin({ scope, command, name, parsed, body }: Miss, settle: (committed: boolean) => void): Promise<CacheAnswer> {
  const { config, isolate } = scope;
  let response: Response;
  try {
    // A retried filesdata answer is a valid answer to the original request: stored under its key.
    response = await forwardV2Request(scope.origin, scope.request, command.repo, parsed, body);
  } catch (error) {
    settle(false);
    throw error;
  }
  if (!isFramedSuccess(response) || !response.body) {
    settle(false);
    return bypass(response);
  }
  let writer: ObjectWriter | undefined;
  const slot = isolate.fills.acquire(name, { concurrency: config.fillConcurrency, idleMs: config.originIdleTimeoutMs }, () => void writer?.abort().catch(() => undefined));
  if (!slot.granted) {
    settle(false);
    log("info", "cache-fill-skipped", { name, reason: slot.reason });
    return notStored(response);
  }
  writer = new ObjectWriter(scope.cache.bucket, name, command.command);
  const onOutcome = (outcome: FillOutcome) => {
    slot.release();
    settle(outcome.committed);
    if (outcome.committed) log("info", "cache-fill", { name, size: outcome.object.size, sha256: outcome.object.sha256 });
    else log("warn", "cache-fill-aborted", { name, reason: outcome.reason });
  };
  const filled = fillWhileStreaming(response.body, {
    requestId: command.requestId,
    writer,
    onOutcome,
    onProgress: (bytes) => slot.slot.progressed(bytes),
    ...(scope.waitUntil ? { waitUntil: scope.waitUntil } : {}),
  });
  return { status: "MISS", response: new Response(filled, response) };
}

/** Whether an origin's answer can be a command's answer at all (an error page or status cannot). */
function isFramedSuccess(response: Response): boolean {
  return response.status === 200 && response.headers.get("content-type") === FRAMING_MEDIA_TYPE && response.body !== null;
}

/**
 * A miss answered by the origin that hgedge is not storing. An origin's error answer is a BYPASS,
 * not a MISS: MISS promises the origin's command answer.
 */
function notStored(response: Response): CacheAnswer {
  return isFramedSuccess(response) ? { status: "MISS", response, notStored: true } : bypass(response);
}

function bypass(response: Response): CacheAnswer {
  return { status: "BYPASS", response };
}
