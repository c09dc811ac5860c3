/**
 * Clone bundles for wire protocol v1 clients (Mercurial 6.x; `hg help -e clonebundles`): hgedge
 * makes a full bundle of a repository from the origin's own `getbundle`, keeps it in R2, and
 * lists it in the manifest the v1 `clonebundles` / `clonebundles_manifest` commands answer, so
 * that a clone fetches the bulk from R2 and asks the origin only for what is newer.
 *
 * - generation: `capabilities`, `heads`, then `getbundle` of exactly those heads (bundle2,
 *   changegroup 02, phases), its transport compression taken off and the bundle2 stream checked
 *   and streamed into R2 in parts (bounded memory). Committed only when the stream reached its
 *   end-of-stream marker; anything else leaves the previous bundle current.
 * - manifest: the client's own request goes to the origin, which checks its credentials; only
 *   to a 200 is our entry prepended (signed URL unless ACCESS=public).
 * - capabilities: `clonebundles` is added to a v1 capabilities answer when a bundle exists.
 * - freshness: the cron trigger regenerates a configured repository's bundle once the origin
 *   has BUNDLE_MIN_NEW_CHANGESETS more changesets than it (or rewrote a head it has).
 */
import { loadConfig, type Config, type Env } from "../config.ts";
import {
  bundleRecordName,
  commitBundleRecord,
  newBundleName,
  newRecord,
  readBundleRecord,
  BUNDLE_CONTENT_TYPE,
  type BundleRecord,
} from "../cache/bundles.ts";
import { ByteReader } from "../cache/reader.ts";
import { ObjectWriter } from "../cache/store.ts";
import { Bundle2Scanner, bundleSpecOf, type Bundle2Summary } from "../protocol/bundle2.ts";
import { CLONEBUNDLES_CAPABILITY, MANIFEST_COMMANDS, prependEntries, requiresSni, type ManifestEntry } from "../protocol/clonebundles.ts";
import { ProtocolError } from "../protocol/errors.ts";
import {
  argumentHeaders,
  bundle2Caps,
  parseCapabilities,
  parseNodeList,
  protoHeader,
  withCapabilities,
  DEFAULT_HTTP_HEADER_LIMIT,
  HG_ERROR_MEDIA_TYPE,
  HG_MEDIA_TYPE_01,
  NULL_NODE,
  V1StreamDecoder,
} from "../protocol/v1.ts";
import { jsonBody, type AdminResult } from "./admin.ts";
import { readBounded, withBody } from "./bodies.ts";
import { objectUrl } from "./cached.ts";
import { forwardToOrigin, originUrlFor, type OriginFetch } from "./passthrough.ts";
import { handleHandshake, type V2Context } from "./v2.ts";
import type { HgRequest } from "./wireproto.ts";
import { logEvent as log } from "../log.ts";

/** Capabilities answers and manifests are small; a larger one passes through untouched. */
const MAX_SMALL_ANSWER_BYTES = 1 << 20;
/**
 * Compressed input is decoded this much at a time: zlib expands at most ~1032:1, so one step
 * yields at most ~16 MiB whatever the bundle's size (zstd's window is capped at 8 MiB).
 */
const DECODE_STEP_BYTES = 16 * 1024;
/**
 * The bundle2 capabilities hgedge asks with (bundle2.getrepocaps, client role): changegroup 02,
 * the version `none-v2` names, and phase heads so that clones get the origin's phases.
 */
const BUNDLE_CAPS = { HG20: [], changegroup: ["02"], phases: ["heads"] } as const;
const USER_AGENT = "hgedge (clone bundles)";

// ---------------------------------------------------------------------------------------------
// Routing

export type BundleRoute =
  | { kind: "v1-capabilities"; repo: string; handshake: boolean }
  | { kind: "v1-clonebundles"; repo: string; command: string };

/**
 * The v1 requests clone bundles change among those otherwise passed through: plain capabilities
 * and the manifest commands. (The v2 handshake is routed here by the app as a capabilities
 * request with `handshake: true`.)
 */
export function bundleRouteOf(request: Request, hg: HgRequest): BundleRoute | undefined {
  if (hg.kind !== "other") return undefined;
  const url = new URL(request.url);
  const command = url.searchParams.get("cmd");
  const repo = url.pathname.replace(/\/+$/, "") || "/";
  if (command === "capabilities" && request.method === "GET") return { kind: "v1-capabilities", repo, handshake: false };
  if (command && (MANIFEST_COMMANDS as readonly string[]).includes(command)) return { kind: "v1-clonebundles", repo, command };
  return undefined;
}

export function handleBundleRoute(context: V2Context, route: BundleRoute): Promise<Response> {
  return route.kind === "v1-capabilities" ? answerCapabilities(context, route) : answerManifest(context, route.repo);
}

/** Whether clone bundles are served at all: a bucket, and a configuration that lets us hand out URLs. */
function bundlesServed(config: Config): config is Config & { objects: R2Bucket } {
  return config.objects !== undefined && config.cacheRefusal === undefined;
}

/** The current bundle of `repo` and whether its object is really there; undefined on any doubt. */
async function servableBundle(config: Config, repo: string, checkObject: boolean): Promise<BundleRecord | undefined> {
  if (!bundlesServed(config)) return undefined;
  try {
    const record = await readBundleRecord(config.objects, repo, config.originUrl.href);
    if (!record || !checkObject) return record;
    return (await config.objects.head(record.name)) ? record : undefined;
  } catch (error) {
    log("warn", "bundle-record-read-failed", { repo, error: String(error) });
    return undefined;
  }
}

/** A v1 capabilities answer gains `clonebundles` when the repository has a bundle. */
async function answerCapabilities(context: V2Context, route: { repo: string; handshake: boolean }): Promise<Response> {
  const { request, config, originFetch } = context;
  const [response, record] = await Promise.all([
    route.handshake ? handleHandshake(context) : forwardToOrigin(request, config, originFetch),
    servableBundle(config, route.repo, false),
  ]);
  // A v2 handshake answer (CBOR) is left alone: v2 clients do not use clone bundles.
  if (!record || response.status !== 200 || mediaType(response) !== HG_MEDIA_TYPE_01) return response;
  const body = await readBounded(response.body, MAX_SMALL_ANSWER_BYTES);
  if (body.kind === "stream") return withBody(response, body.stream);
  const text = new TextDecoder().decode(body.bytes);
  return withBody(response, new TextEncoder().encode(withCapabilities(text, [CLONEBUNDLES_CAPABILITY])));
}

/**
 * `clonebundles` / `clonebundles_manifest`: the origin answers the client (and so decides whether
 * this client may pull); our entry goes ahead of whatever it lists. Any other answer — 401, 403,
 * an error, a command the origin does not know — reaches the client untouched.
 */
async function answerManifest(context: V2Context, repo: string): Promise<Response> {
  const { request, config, originFetch } = context;
  const [response, record] = await Promise.all([forwardToOrigin(request, config, originFetch), servableBundle(config, repo, true)]);
  if (!record || response.status !== 200 || mediaType(response) !== HG_MEDIA_TYPE_01) return response;
  const body = await readBounded(response.body, MAX_SMALL_ANSWER_BYTES);
  if (body.kind === "stream") return withBody(response, body.stream);
  const url = await objectUrl(config, new URL(request.url), record.name);
  const entry: ManifestEntry = { url, attributes: { BUNDLESPEC: record.bundlespec, ...(requiresSni(url) ? { REQUIRESNI: "true" } : {}) } };
  log("info", "clonebundles-manifest", { repo, bundle: record.name, changesets: record.changesets });
  return withBody(response, prependEntries(body.bytes, [entry]));
}

function mediaType(response: Response): string {
  return (response.headers.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

// ---------------------------------------------------------------------------------------------
// Talking to the origin ourselves

/** A failure worth telling the operator: the HTTP status to answer and what went wrong. */
export class BundleError extends Error {
  override readonly name = "BundleError";
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface Origin {
  config: Config;
  fetch: OriginFetch;
}

/**
 * Runs v1 `command` on the origin's repository as a Mercurial client would (httppeer), with
 * hgedge's own credentials if configured. Answers 200 with a body, or throws a BundleError.
 */
async function originCommand(origin: Origin, repo: string, command: string, args: Record<string, string> = {}, headerLimit = DEFAULT_HTTP_HEADER_LIMIT): Promise<Response> {
  const { config } = origin;
  const url = originUrlFor(config, new URL(`${repo === "/" ? "/" : repo}?cmd=${command}`, "http://edge.invalid"));
  const headers = new Headers({ accept: HG_MEDIA_TYPE_01, "user-agent": USER_AGENT, "x-hgproto-1": protoHeader(), ...argumentHeaders(args, headerLimit) });
  if (config.bundleOriginAuthorization) headers.set("authorization", config.bundleOriginAuthorization);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException("origin timeout", "TimeoutError")), config.originTimeoutMs);
  let response: Response;
  try {
    response = await origin.fetch(url.href, { method: "GET", headers, redirect: "manual", signal: controller.signal });
  } catch (error) {
    throw new BundleError(controller.signal.aborted ? 504 : 502, `the origin did not answer ${command}: ${String(error)}`);
  } finally {
    clearTimeout(timer);
  }
  if (response.status === 200 && mediaType(response) !== HG_ERROR_MEDIA_TYPE) return response;
  const said = (await response.text().catch(() => "")).slice(0, 300).trim();
  const hint = response.status === 401 || response.status === 403 ? " (set BUNDLE_ORIGIN_AUTHORIZATION to credentials that may pull)" : "";
  throw new BundleError(502, `the origin answered ${command} with ${response.status}${said ? `: ${said}` : ""}${hint}`);
}

async function originText(origin: Origin, repo: string, command: string, args: Record<string, string> = {}, headerLimit?: number): Promise<string> {
  const response = await originCommand(origin, repo, command, args, headerLimit);
  const body = await readBounded(response.body, MAX_SMALL_ANSWER_BYTES);
  if (body.kind === "stream") {
    await body.stream.cancel();
    throw new BundleError(502, `the origin's answer to ${command} is over ${MAX_SMALL_ANSWER_BYTES} bytes`);
  }
  return new TextDecoder().decode(body.bytes);
}

/** What `getbundle` needs to know about the origin, from its capabilities. */
async function originAbilities(origin: Origin, repo: string): Promise<{ headerLimit: number }> {
  const capabilities = parseCapabilities(await originText(origin, repo, "capabilities"));
  if (!capabilities.has("getbundle") || !capabilities.has("bundle2")) {
    throw new BundleError(502, "the origin does not offer getbundle with bundle2 (Mercurial 3.x or older?)");
  }
  const limit = Number(capabilities.get("httpheader")?.split(",")[0]);
  return { headerLimit: Number.isSafeInteger(limit) && limit > 0 ? limit : DEFAULT_HTTP_HEADER_LIMIT };
}

async function originHeads(origin: Origin, repo: string): Promise<string[]> {
  const heads = parseNodeList(await originText(origin, repo, "heads")).filter((node) => node !== NULL_NODE);
  return heads.sort();
}

/** `getbundle` of `heads` over `common`, as a stream of the bundle2 bytes with the transport compression taken off. */
async function originBundle(origin: Origin, repo: string, heads: string[], common: string[], phases: boolean, headerLimit: number): Promise<ReadableStream<Uint8Array>> {
  const args: Record<string, string> = {
    bundlecaps: bundle2Caps(BUNDLE_CAPS),
    cg: "1",
    common: (common.length > 0 ? common : [NULL_NODE]).join(" "),
    heads: heads.join(" "),
  };
  if (phases) args.phases = "1";
  const response = await originCommand(origin, repo, "getbundle", args, headerLimit);
  if (!response.body) throw new BundleError(502, "the origin's getbundle answer has no body");
  const decoder = new V1StreamDecoder(response.headers.get("content-type"));
  const reader = new ByteReader(response.body, origin.config.originIdleTimeoutMs);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return controller.close();
        let produced = false;
        for (let at = 0; at < value.length; at += DECODE_STEP_BYTES) {
          const plain = decoder.decode(value.subarray(at, at + DECODE_STEP_BYTES));
          if (plain.length > 0) {
            controller.enqueue(plain);
            produced = true;
          }
        }
        if (produced) return;
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Generation

export type GenerationOutcome =
  | { ok: true; record: BundleRecord; removed: string[] }
  | { ok: false; status: number; error: string; kept?: string };

/** Repositories whose bundle this isolate is making: a second request for one is refused. */
const generating = new Set<string>();

export interface GenerationOptions {
  /** R2 part size (tests use small ones to exercise multipart uploads). */
  partSize?: number;
}

/**
 * Makes a full bundle of `repo` and, only if all went well, makes it the current one. Runs for as
 * long as the origin takes to send the bundle: call it where that is allowed (the admin request
 * itself, or a cron invocation), not from waitUntil.
 */
export async function generateBundle(config: Config, fetchOrigin: OriginFetch, repo: string, options: GenerationOptions = {}): Promise<GenerationOutcome> {
  if (!bundlesServed(config)) {
    return { ok: false, status: 503, error: `clone bundles are off: ${config.cacheRefusal ?? "no OBJECTS bucket is bound"}` };
  }
  if (generating.has(repo)) return { ok: false, status: 409, error: `a bundle of ${repo} is already being made in this isolate` };
  generating.add(repo);
  const bucket = config.objects;
  const previous = await readBundleRecord(bucket, repo, config.originUrl.href).catch(() => undefined);
  const kept = previous ? { kept: previous.name } : {};
  const createdAt = new Date();
  const writer = new ObjectWriter(bucket, newBundleName(repo, createdAt), "clonebundle", options.partSize, BUNDLE_CONTENT_TYPE);
  try {
    const origin = { config, fetch: fetchOrigin };
    const { headerLimit } = await originAbilities(origin, repo);
    const heads = await originHeads(origin, repo);
    if (heads.length === 0) throw new BundleError(409, `${repo} has no changesets: there is nothing to bundle`);
    const summary = await streamInto(writer, await originBundle(origin, repo, heads, [], true, headerLimit));
    const bundlespec = bundleSpecOf(summary);
    const committed = await writer.commit();
    const record = newRecord({
      repo,
      name: committed.name,
      bundlespec,
      heads,
      changesets: summary.changesets,
      size: committed.size,
      sha256: committed.sha256,
      createdAt: createdAt.toISOString(),
      origin: config.originUrl.href,
    });
    const { removed } = await commitBundleRecord(bucket, record);
    log("info", "bundle-generated", { repo, name: record.name, size: record.size, changesets: record.changesets, removed });
    return { ok: true, record, removed };
  } catch (error) {
    await writer.abort().catch(() => undefined);
    const status = error instanceof BundleError ? error.status : 502;
    const message = error instanceof BundleError || error instanceof ProtocolError ? error.message : `bundle generation failed: ${String(error)}`;
    log("warn", "bundle-generation-failed", { repo, error: message, ...kept });
    return { ok: false, status, error: message, ...kept };
  } finally {
    generating.delete(repo);
  }
}

/** Pumps the bundle into the writer while the scanner checks it; the summary of a whole, sound stream. */
async function streamInto(writer: ObjectWriter, bundle: ReadableStream<Uint8Array>): Promise<Bundle2Summary> {
  const scanner = new Bundle2Scanner();
  const reader = bundle.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      scanner.push(value);
      await writer.write(value);
    }
  } catch (error) {
    await reader.cancel(String(error)).catch(() => undefined);
    throw error;
  }
  const summary = scanner.finish();
  if (summary.announcedChangesets !== undefined && summary.announcedChangesets !== summary.changesets) {
    throw new BundleError(502, `the changegroup announced ${summary.announcedChangesets} changesets but holds ${summary.changesets}`);
  }
  return summary;
}

// ---------------------------------------------------------------------------------------------
// Freshness

export type FreshnessVerdict = { regenerate: true; reason: string } | { regenerate: false; reason: string };

/**
 * Whether the bundle of `repo` is stale enough to make a new one. Cheap on the origin: `heads`
 * (one line) settles the common case of nothing new. When heads moved, `known` says whether the
 * bundle's heads still exist (a rewritten history must not be served), and a `getbundle` of just
 * the new part (common = the bundle's heads) is read only until its changegroup part header
 * announces the count (`nbchanges`, which Mercurial sends) or `threshold` changelog entries were
 * seen — then cut. The alternatives cost more or say less: hgweb pages carry no count and need
 * not exist, and `between` only walks first parents.
 */
export async function freshness(config: Config, fetchOrigin: OriginFetch, record: BundleRecord, threshold: number): Promise<FreshnessVerdict> {
  const origin = { config, fetch: fetchOrigin };
  const heads = await originHeads(origin, record.repo);
  if (heads.join(" ") === record.heads.join(" ")) return { regenerate: false, reason: "the origin's heads are the bundle's" };
  const known = (await originText(origin, record.repo, "known", { nodes: record.heads.join(" ") })).trim();
  if (known.length !== record.heads.length || known.includes("0")) return { regenerate: true, reason: "a head of the bundle is gone from the origin (history rewritten)" };
  const { headerLimit } = await originAbilities(origin, record.repo);
  const count = await countNewChangesets(await originBundle(origin, record.repo, heads, record.heads, false, headerLimit), threshold);
  return count >= threshold
    ? { regenerate: true, reason: `${count}${count === threshold ? " or more" : ""} new changesets (BUNDLE_MIN_NEW_CHANGESETS=${threshold})` }
    : { regenerate: false, reason: `${count} new changesets, fewer than BUNDLE_MIN_NEW_CHANGESETS=${threshold}` };
}

async function countNewChangesets(bundle: ReadableStream<Uint8Array>, threshold: number): Promise<number> {
  const scanner = new Bundle2Scanner();
  const reader = bundle.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return scanner.finish().changesets;
      scanner.push(value);
      const { announcedChangesets, changesets } = scanner.summary;
      if (announcedChangesets !== undefined) return announcedChangesets;
      if (changesets >= threshold) return threshold;
    }
  } finally {
    await reader.cancel("counted").catch(() => undefined);
  }
}

/** The cron trigger's work for one repository: make a bundle if there is none or it is stale. */
export async function refreshBundle(config: Config, fetchOrigin: OriginFetch, repo: string): Promise<{ repo: string; action: string; reason: string; status?: number }> {
  if (!bundlesServed(config)) return { repo, action: "skipped", reason: config.cacheRefusal ?? "no OBJECTS bucket is bound" };
  let verdict: FreshnessVerdict;
  try {
    const record = await readBundleRecord(config.objects, repo, config.originUrl.href);
    verdict = record ? await freshness(config, fetchOrigin, record, config.bundleMinNewChangesets) : { regenerate: true, reason: "no bundle yet" };
  } catch (error) {
    return { repo, action: "failed", reason: `could not tell whether the bundle is stale: ${error instanceof Error ? error.message : String(error)}` };
  }
  if (!verdict.regenerate) return { repo, action: "kept", reason: verdict.reason };
  const outcome = await generateBundle(config, fetchOrigin, repo);
  return outcome.ok
    ? { repo, action: "generated", reason: verdict.reason }
    : { repo, action: "failed", reason: `${verdict.reason}; generation failed: ${outcome.error}`, status: outcome.status };
}

/**
 * The Worker's `scheduled` handler: each repository of BUNDLE_REPOS in turn. A cron invocation
 * may run for up to 15 minutes of wall time (CPU time as configured): generations that need
 * longer belong to the admin API, whose request lasts as long as the client waits.
 */
export function createScheduledHandler(options: { originFetch?: OriginFetch } = {}) {
  const fetchOrigin: OriginFetch = options.originFetch ?? ((url, init) => fetch(url, init));
  return async (_controller: ScheduledController, env: Env): Promise<void> => {
    const config = loadConfig(env);
    for (const repo of config.bundleRepos) {
      const result = await refreshBundle(config, fetchOrigin, repo);
      log(result.action === "failed" ? "warn" : "info", "bundle-cron", result);
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Admin API

/**
 * POST {"repo": "/path"}: makes a new bundle of that repository now and answers with its record
 * (200), or with why not — the previous bundle then stays current (`kept`).
 */
export async function bundlesAdminAction(context: V2Context): Promise<AdminResult> {
  const body = await jsonBody(context.request);
  const repo = typeof body === "object" ? body.repo : undefined;
  if (typeof repo !== "string" || !repo.startsWith("/")) {
    return { status: 400, body: { error: 'the body must be a JSON object with the repository\'s path, e.g. {"repo": "/"} or {"repo": "/team/project"}' } };
  }
  const normalized = repo.replace(/\/+$/, "") || "/";
  const outcome = await generateBundle(context.config, context.originFetch, normalized);
  if (!outcome.ok) return { status: outcome.status, body: { repo: normalized, error: outcome.error, ...(outcome.kept ? { kept: outcome.kept } : {}) } };
  return { status: 200, body: { repo: normalized, bundle: outcome.record, record: bundleRecordName(normalized), removed: outcome.removed } };
}
