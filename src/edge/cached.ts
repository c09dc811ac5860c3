/**
 * A cacheable v2 command (`ro/manifestdata`, `ro/filesdata`, `ro/filedata`): answered from R2
 * when the object is there — a redirect if the client accepts one of our targets and the object
 * is big enough to be worth a second request, inline otherwise — and filled while streaming
 * when it is not.
 */
import { inlineAnswer, redirectAnswer, CACHE_STATUS_HEADER, type CacheStatus } from "../cache/answers.ts";
import { fillWhileStreaming, type FillOutcome } from "../cache/fill.ts";
import { cacheKey, objectName, KEY_FORMAT_VERSION, type CacheableCommand } from "../cache/keys.ts";
import { chooseTarget, contentRouteUrls, publicBucketUrls } from "../cache/redirect.ts";
import { ObjectWriter, readMetadata } from "../cache/store.ts";
import { FRAMING_MEDIA_TYPE } from "../protocol/capabilities.ts";
import type { ParsedRequestBody } from "../protocol/requests.ts";
import type { Config } from "../config.ts";
import { AccessMemo } from "../cache/access.ts";
import { signedUrls } from "../cache/signing.ts";
import { forwardToOrigin, originUrlFor } from "./passthrough.ts";
import { forwardV2Request } from "./retry.ts";
import { redirectTargets } from "./targets.ts";
import type { V2Context } from "./v2.ts";

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
  return answerMiss(context, bucket, command, name, parsed, body);
}

async function answerHit(context: V2Context, bucket: R2Bucket, command: CacheableCommand, stored: R2Object): Promise<Response | undefined> {
  const { request, config } = context;
  if (config.access === "origin" && !(await accessMemo(config).mayRead(request, originRepoUrl(config, command.repo), context.originFetch))) {
    log("info", "cache-access-denied", { repo: command.repo });
    return undefined; // the origin answers, with its own 401/403
  }
  const metadata = readMetadata(stored);
  const requestUrl = new URL(request.url);
  const target = chooseTarget(command.redirect, redirectTargets(config, requestUrl));
  if (target && metadata.size >= config.minRedirectBytes) {
    log("info", "cache-redirect", { name: stored.key, size: metadata.size, target: target.name });
    return redirectAnswer(command.requestId, await objectUrl(config, requestUrl, stored.key), metadata, config.redirectFullHashes);
  }
  const object = await bucket.get(stored.key).catch((error: unknown) => {
    log("warn", "r2-get-failed", { name: stored.key, error: String(error) });
    return null;
  });
  if (!object) return undefined; // gone or unreadable since the head: fall back to the origin
  log("info", "cache-hit", { name: stored.key, size: metadata.size });
  return inlineAnswer(command.requestId, object.body, command.contentEncodings);
}

async function answerMiss(
  context: V2Context,
  bucket: R2Bucket,
  command: CacheableCommand,
  name: string,
  parsed: ParsedRequestBody,
  body: Uint8Array,
): Promise<Response> {
  // A retried filesdata answer is a valid answer to the original request: stored under its key.
  const response = await forwardV2Request(context, command.repo, parsed, body);
  if (response.status !== 200 || response.headers.get("content-type") !== FRAMING_MEDIA_TYPE || !response.body) {
    return withStatus(response, "MISS");
  }
  const skip = fillSkipReason(name, context.config.fillConcurrency);
  if (skip) {
    log("info", "cache-fill-skipped", { name, reason: skip });
    // Says so to the client: a pre-warmer must not count this object as stored.
    const answer = withStatus(response, "MISS");
    answer.headers.set(FILL_SKIPPED_HEADER, "skipped");
    return answer;
  }
  activeFills.add(name);
  const writer = new ObjectWriter(bucket, name, command.command);
  const onOutcome = (outcome: FillOutcome) => {
    activeFills.delete(name);
    if (outcome.committed) log("info", "cache-fill", { name, size: outcome.object.size, sha256: outcome.object.sha256 });
    else log("warn", "cache-fill-aborted", { name, reason: outcome.reason });
  };
  const filled = fillWhileStreaming(response.body, {
    requestId: command.requestId,
    writer,
    onOutcome,
    idleTimeoutMs: context.config.originIdleTimeoutMs,
    ...(context.waitUntil ? { waitUntil: context.waitUntil } : {}),
  });
  return withStatus(new Response(filled, response), "MISS");
}

/**
 * Objects being filled in this isolate. A fill holds up to one R2 part (8 MiB) in memory and an
 * isolate has 128 MB for all its requests, so only FILL_CONCURRENCY fills run at once; other
 * misses — and a second miss for an object already being filled — are answered by the origin
 * without storing (the next request finds the object).
 */
const activeFills = new Set<string>();

/** Set (to `skipped`) on a MISS whose answer is not being stored. */
export const FILL_SKIPPED_HEADER = "x-hgedge-fill";

function fillSkipReason(name: string, limit: number): string | undefined {
  if (activeFills.has(name)) return "already being filled in this isolate";
  if (activeFills.size >= limit) return `${limit} fills already running (FILL_CONCURRENCY)`;
  return undefined;
}

/**
 * Where a redirect points: for public repositories the R2 custom domain if there is one, else
 * the content route; for the others always a signed, expiring content-route URL.
 */
async function objectUrl(config: Config, requestUrl: URL, name: string): Promise<string> {
  const route = contentRouteUrls(requestUrl.origin);
  if (config.access === "public") return (config.publicObjectsUrl ? publicBucketUrls(config.publicObjectsUrl) : route)(name);
  const sign = await signedUrls(route, config.signingKey as string, config.urlTtlSeconds);
  return sign(name);
}

const memos = new WeakMap<Config, AccessMemo>();

function accessMemo(config: Config): AccessMemo {
  let memo = memos.get(config);
  if (!memo) memos.set(config, (memo = new AccessMemo(config.accessTtlSeconds)));
  return memo;
}

function originRepoUrl(config: Config, repo: string): URL {
  return originUrlFor(config, new URL(repo, "http://edge.invalid/"));
}

function withStatus(response: Response, status: CacheStatus): Response {
  const headers = new Headers(response.headers);
  headers.set(CACHE_STATUS_HEADER, status);
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

function log(level: "info" | "warn", event: string, fields: Record<string, unknown>): void {
  const line = JSON.stringify({ level, event, ...fields });
  if (level === "warn") console.warn(line);
  else console.log(line);
}
