/**
 * Wire protocol v2 over HTTP: the capabilities handshake and the `capabilities` command gain
 * hgedge's redirect targets; a cacheable command is handed to the cache (src/cache/service.ts);
 * every other command is forwarded byte for byte, its answer streamed back.
 */
import { servingCache, type Config } from "../config.ts";
import { CACHE_STATUS_HEADER } from "../cache/answers.ts";
import { cacheability } from "../cache/keys.ts";
import { answerCacheable, type CacheAnswer } from "../cache/service.ts";
import { redirectTargets } from "../cache/targets.ts";
import { forwardToOrigin } from "../origin/client.ts";
import { forwardV2Request } from "../origin/retry.ts";
import { readBounded } from "../io/bodies.ts";
import { copyResponse, plainError } from "../io/responses.ts";
import { CBOR_MEDIA_TYPE, FRAMING_MEDIA_TYPE, rewriteCapabilitiesResponse, rewriteHandshake } from "../protocol/capabilities.ts";
import { PUSH_COMMANDS } from "../protocol/commands.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { parseRequestBody, type ParsedRequestBody } from "../protocol/requests.ts";
import { logEvent } from "../log.ts";
import { waitUntilOf, type EdgeContext } from "./context.ts";

/** Capabilities answers are a few KiB; anything much larger is not one we should rewrite. */
const MAX_CAPABILITIES_BYTES = 1 << 20;

/** Set (to `skipped`) on a MISS whose answer is not being stored. */
const FILL_SKIPPED_HEADER = "x-hgedge-fill";

/** A v2 command as its URL names it. */
export interface V2Command {
  repo: string;
  permission: "ro" | "rw";
  command: string;
}

/** GET <repo>?cmd=capabilities with upgrade headers: our targets added to the origin's CBOR answer. */
export async function forwardHandshake(c: EdgeContext): Promise<Response> {
  const { request, config, origin } = c.var;
  const response = await forwardToOrigin(origin, request);
  if (response.status !== 200 || response.headers.get("content-type") !== CBOR_MEDIA_TYPE) return response;
  return rewriteBody(response, (body) => rewriteHandshake(body, redirectTargets(config, new URL(request.url)), config.redirectMode));
}

/**
 * POST <repo>/api/<v2>/<ro|rw>/<command>: parsed; cacheable commands go to the cache, every
 * other one is forwarded unchanged and its answer streamed back.
 */
export async function handleV2Command(c: EdgeContext, { repo, permission, command }: V2Command): Promise<Response> {
  const { request, config, origin } = c.var;
  c.set("command", command);
  if (permission === "ro" && PUSH_COMMANDS.has(command)) return refusePushOnReadOnly(command);
  if (request.method !== "POST") return forwardToOrigin(origin, request);
  // Mercurial checks Accept and Content-Type before it reads frames: only a request that gets
  // that far at the origin is judged here; any other goes to the origin for its own answer.
  const framed = request.headers.get("accept") === FRAMING_MEDIA_TYPE && request.headers.get("content-type") === FRAMING_MEDIA_TYPE;
  const body = await readBounded(request.body, config.limits.maxRequestBytes);
  if (body.kind === "stream") {
    if (framed) {
      await body.stream.cancel();
      return plainError(413, `request body exceeds ${config.limits.maxRequestBytes} bytes (REQUEST_MAX_BYTES)`, { [CACHE_STATUS_HEADER]: "BYPASS" });
    }
    return bypass(await forwardToOrigin(origin, new Request(request, { body: body.stream })));
  }
  let parsed: ParsedRequestBody | undefined;
  try {
    parsed = parseRequestBody(body.bytes, config.limits);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    logEvent("warn", "v2-request-refused", { code: error.code, reason: error.message });
    // Mercurial answers protocol errors with 200 text/plain and the reason (protocol.md §1.6).
    if (framed) return refuseAsMercurial(200, `hgedge: malformed request: ${error.message}`);
  }
  // A framed request without a command makes a stock 5.x origin fail with a 500.
  if (framed && parsed && parsed.commands.length === 0) {
    logEvent("warn", "v2-request-refused", { reason: "no command request in the body" });
    return refuseAsMercurial(200, "hgedge: malformed request: the body holds no command request");
  }
  if (parsed) {
    const verdict = cacheability(parsed, repo, permission, command);
    const cache = servingCache(config);
    if (verdict.cacheable && cache) {
      const scope = { request, config, cache, isolate: c.var.isolate, origin, waitUntil: waitUntilOf(c) };
      return cacheAnswerResponse(c, await answerCacheable(scope, verdict.request, parsed, body.bytes));
    }
    if (verdict.cacheable) warnCacheRefusedOnce(c, config);
  }
  const response = await forwardV2Request(origin, request, repo, parsed, body.bytes);
  if (command === "capabilities" && parsed && response.status === 200 && response.headers.get("content-type") === FRAMING_MEDIA_TYPE) {
    const targets = redirectTargets(config, new URL(request.url));
    return bypass(await rewriteBody(response, (bytes) => rewriteCapabilitiesResponse(bytes, targets, config.redirectMode)));
  }
  return bypass(response);
}

/** The cache's answer as HTTP: its status in X-Hgedge-Cache, and noted for the request log. */
function cacheAnswerResponse(c: EdgeContext, answer: CacheAnswer): Response {
  c.set("cacheStatus", answer.status);
  c.set("objectBytes", answer.objectBytes);
  const headers: Record<string, string> = { [CACHE_STATUS_HEADER]: answer.status };
  if (answer.notStored) headers[FILL_SKIPPED_HEADER] = "skipped";
  return copyResponse(answer.response, { headers });
}

/**
 * Configurations that refuse the cache (the default `ACCESS=origin` without SIGNING_KEY): the
 * reason is logged once per isolate, not on every cacheable request.
 */
function warnCacheRefusedOnce(c: EdgeContext, config: Config): void {
  if (config.cache.mode !== "off" || !c.var.isolate.firstRefusalReport(config)) return;
  logEvent("warn", "cache-refused", { reason: config.cache.reason, note: "logged once per isolate" });
}

/**
 * A write command on the read-only URL: the 5.x origin would run it with pull permission only,
 * so hgedge answers as Mercurial does for a write command in `ro/multirequest`.
 */
function refusePushOnReadOnly(command: string): Response {
  logEvent("warn", "push-command-on-ro-refused", { command });
  return refuseAsMercurial(403, `insufficient permissions to execute command: ${command}`);
}

/**
 * A refusal in the shape Mercurial's own server gives it (a bare `text/plain` reason, which the
 * client prints), so a client cannot tell hgedge's refusal from the origin's. Never forwarded,
 * never cached.
 */
function refuseAsMercurial(status: number, message: string): Response {
  return new Response(message, { status, headers: { "content-type": "text/plain", [CACHE_STATUS_HEADER]: "BYPASS" } });
}

function bypass(response: Response): Response {
  return copyResponse(response, { headers: { [CACHE_STATUS_HEADER]: "BYPASS" } });
}

/**
 * Reads a small answer, applies `rewrite`, and answers with the result; when the answer is too
 * large, or `rewrite` declines (`undefined`) or finds it malformed, the origin's bytes go through
 * unchanged — the client then sees exactly what the origin said.
 */
export async function rewriteBody(response: Response, rewrite: (body: Uint8Array) => Uint8Array | undefined, limit = MAX_CAPABILITIES_BYTES): Promise<Response> {
  const body = await readBounded(response.body, limit);
  if (body.kind === "stream") return copyResponse(response, { body: body.stream });
  try {
    const rewritten = rewrite(body.bytes);
    if (rewritten) return copyResponse(response, { body: rewritten });
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    logEvent("warn", "capabilities-unchanged", { code: error.code, reason: error.message });
  }
  return copyResponse(response, { body: body.bytes });
}
