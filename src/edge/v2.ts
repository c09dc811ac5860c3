/**
 * The two places where hgedge changes what the origin says — the capabilities handshake and the
 * v2 `capabilities` command, which gain hgedge's redirect targets — and the v2 command path,
 * which is parsed (so that the cache can plug in) and otherwise forwarded byte for byte.
 */
import type { Config } from "../config.ts";
import {
  CBOR_MEDIA_TYPE,
  FRAMING_MEDIA_TYPE,
  rewriteCapabilitiesResponse,
  rewriteHandshake,
} from "../protocol/capabilities.ts";
import { ProtocolError } from "../protocol/errors.ts";
import { PUSH_COMMANDS } from "../protocol/commands.ts";
import { parseRequestBody, type ParsedRequestBody } from "../protocol/requests.ts";
import { cacheability } from "../cache/keys.ts";
import { readBounded, withBody } from "./bodies.ts";
import { answerCacheable } from "./cached.ts";
import { forwardV2Request } from "./retry.ts";
import { redirectTargets } from "./targets.ts";
import { forwardToOrigin, type OriginFetch } from "./passthrough.ts";
import { CACHE_STATUS_HEADER } from "../cache/answers.ts";
import type { TargetHealth } from "../cache/health.ts";
import { logEvent } from "../log.ts";

/** Capabilities answers are a few KiB; anything much larger is not one we should rewrite. */
const MAX_CAPABILITIES_BYTES = 1 << 20;


export interface V2Context {
  request: Request;
  config: Config;
  originFetch: OriginFetch;
  /** ctx.waitUntil, for work that outlives the response (cache commits). */
  waitUntil?: (promise: Promise<unknown>) => void;
  /** This isolate's memory of which redirect targets failed their probes (see cache/health.ts). */
  targetHealth?: TargetHealth;
}

/** GET <repo>?cmd=capabilities with upgrade headers: add our targets to the CBOR answer. */
export async function handleHandshake({ request, config, originFetch }: V2Context): Promise<Response> {
  const response = await forwardToOrigin(request, config, originFetch);
  if (response.status !== 200 || response.headers.get("content-type") !== CBOR_MEDIA_TYPE) return response;
  return rewriteBody(response, (body) => rewriteHandshake(body, redirectTargets(config, new URL(request.url)), config.redirectMode));
}

/**
 * POST <repo>/api/<v2>/<ro|rw>/<command>: parsed; cacheable commands go to the cache, every
 * other one is forwarded unchanged and its answer streamed back.
 */
export async function handleV2Command(context: V2Context, target: { repo: string; permission: "ro" | "rw"; command: string }): Promise<Response> {
  const { request, config, originFetch } = context;
  const { command } = target;
  if (target.permission === "ro" && PUSH_COMMANDS.has(command)) return refusePushOnReadOnly(command);
  if (request.method !== "POST") return forwardToOrigin(request, config, originFetch);
  // Mercurial checks Accept and Content-Type before it reads frames: only a request that gets
  // that far at the origin is judged here; any other goes to the origin for its own answer.
  const framed = request.headers.get("accept") === FRAMING_MEDIA_TYPE && request.headers.get("content-type") === FRAMING_MEDIA_TYPE;
  const body = await readBounded(request.body, config.limits.maxRequestBytes);
  if (body.kind === "stream") {
    if (framed) {
      await body.stream.cancel();
      return refuse(413, `request body exceeds ${config.limits.maxRequestBytes} bytes (REQUEST_MAX_BYTES)`);
    }
    return bypass(await forwardToOrigin(new Request(request, { body: body.stream }), config, originFetch));
  }
  let parsed: ParsedRequestBody | undefined;
  try {
    parsed = parseRequestBody(body.bytes, config.limits);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    logEvent("warn", "v2-request-refused", { code: error.code, reason: error.message });
    // Mercurial answers protocol errors with 200 text/plain and the reason (protocol.md §1.6).
    if (framed) return refuse(200, `hgedge: malformed request: ${error.message}`);
  }
  // A framed request without a command makes a stock 5.x origin fail with a 500.
  if (framed && parsed && parsed.commands.length === 0) {
    logEvent("warn", "v2-request-refused", { reason: "no command request in the body" });
    return refuse(200, "hgedge: malformed request: the body holds no command request");
  }
  if (parsed && config.objects) {
    const verdict = cacheability(parsed, target.repo, target.permission, command);
    if (verdict.cacheable && !config.cacheRefusal) return answerCacheable(context, config.objects, verdict.request, parsed, body.bytes);
    if (verdict.cacheable) warnCacheRefusedOnce(config);
  }
  const response = await forwardV2Request(context, target.repo, parsed, body.bytes);
  if (command === "capabilities" && parsed && response.status === 200 && response.headers.get("content-type") === FRAMING_MEDIA_TYPE) {
    const targets = redirectTargets(config, new URL(request.url));
    return bypass(await rewriteBody(response, (bytes) => rewriteCapabilitiesResponse(bytes, targets, config.redirectMode)));
  }
  return bypass(response);
}

/**
 * Configurations that refuse the cache (the default `ACCESS=origin` without SIGNING_KEY) and were
 * already reported in this isolate: the reason is logged once, not on every cacheable request.
 */
const reportedRefusals = new WeakSet<Config>();

function warnCacheRefusedOnce(config: Config): void {
  if (reportedRefusals.has(config)) return;
  reportedRefusals.add(config);
  logEvent("warn", "cache-refused", { reason: config.cacheRefusal, note: "logged once per isolate" });
}

/**
 * A write command on the read-only URL: the 5.x origin would run it with pull permission only,
 * so hgedge answers as Mercurial does for a write command in `ro/multirequest`.
 */
function refusePushOnReadOnly(command: string): Response {
  logEvent("warn", "push-command-on-ro-refused", { command });
  return refuse(403, `insufficient permissions to execute command: ${command}`);
}

/** A plain-text refusal, never forwarded, never cached. */
function refuse(status: number, message: string): Response {
  return new Response(message, { status, headers: { "content-type": "text/plain", [CACHE_STATUS_HEADER]: "BYPASS" } });
}

function bypass(response: Response): Response {
  const headers = new Headers(response.headers);
  headers.set(CACHE_STATUS_HEADER, "BYPASS");
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

/**
 * Reads a small answer, applies `rewrite`, and answers with the result; when the answer is too
 * large, or `rewrite` declines (`undefined`) or finds it malformed, the origin's bytes go through
 * unchanged — the client then sees exactly what the origin said.
 */
async function rewriteBody(response: Response, rewrite: (body: Uint8Array) => Uint8Array | undefined): Promise<Response> {
  const body = await readBounded(response.body, MAX_CAPABILITIES_BYTES);
  if (body.kind === "stream") return withBody(response, body.stream);
  try {
    const rewritten = rewrite(body.bytes);
    if (rewritten) return withBody(response, rewritten);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    logEvent("warn", "capabilities-unchanged", { code: error.code, reason: error.message });
  }
  return withBody(response, body.bytes);
}
