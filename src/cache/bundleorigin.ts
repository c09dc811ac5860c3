/**
 * hgedge as a Mercurial client of the origin (wire protocol v1 over HTTP, as httppeer speaks
 * it), for making clone bundles: capabilities, heads, known, and `getbundle` — of changesets,
 * or of the origin's stream clone — with the transport compression taken off.
 */
import type { Config } from "../config.ts";
import { fetchOrigin, originTimeout, OriginTimeout, type OriginFetch } from "../origin/client.ts";
import { originCommandUrl } from "../origin/urls.ts";
import { ByteReader } from "../io/reader.ts";
import { concatBytes } from "../protocol/frames.ts";
import {
  argumentHeaders,
  bundle2Caps,
  parseCapabilities,
  parseNodeList,
  protoHeader,
  streamCloneOffer,
  DEFAULT_HTTP_HEADER_LIMIT,
  HG_ERROR_MEDIA_TYPE,
  HG_MEDIA_TYPE_01,
  NULL_NODE,
  V1StreamDecoder,
} from "../protocol/v1.ts";


/** Capabilities, heads and the like are small; a larger answer is refused. */
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
const CHANGEGROUP_CAPS = { HG20: [], changegroup: ["02"], phases: ["heads"] } as const;
/** What a 7.x client asks a stream clone with: bundle2 `stream=v2` (bundle2.getrepocaps). */
const STREAM_CAPS = { HG20: [], stream: ["v2"] } as const;
const USER_AGENT = "hgedge (clone bundles)";

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

export interface BundleOrigin {
  config: Config;
  fetch: OriginFetch;
}

export interface OriginAbilities {
  headerLimit: number;
  /** Why the origin's stream clone cannot be had, if it cannot. */
  streamRefusal?: string;
}

function mediaType(response: Response): string {
  return (response.headers.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

/**
 * Runs v1 `command` on the origin's repository as a Mercurial client would, with hgedge's own
 * credentials if configured. Answers 200 with a body, or throws a BundleError.
 */
async function originCommand(origin: BundleOrigin, repo: string, command: string, args: Record<string, string> = {}, headerLimit = DEFAULT_HTTP_HEADER_LIMIT): Promise<Response> {
  const { config } = origin;
  const headers = new Headers({ accept: HG_MEDIA_TYPE_01, "user-agent": USER_AGENT, "x-hgproto-1": protoHeader(), ...argumentHeaders(args, headerLimit) });
  if (config.bundleOriginAuthorization) headers.set("authorization", config.bundleOriginAuthorization);
  let response: Response;
  try {
    response = await fetchOrigin(origin.fetch, originCommandUrl(config, repo, command), { method: "GET", headers, redirect: "manual" }, originTimeout(config));
  } catch (error) {
    throw new BundleError(error instanceof OriginTimeout ? 504 : 502, `the origin did not answer ${command}: ${String(error)}`);
  }
  if (response.status === 200 && mediaType(response) !== HG_ERROR_MEDIA_TYPE) return response;
  const said = (await response.text().catch(() => "")).slice(0, 300).trim();
  const hint = response.status === 401 || response.status === 403 ? " (set BUNDLE_ORIGIN_AUTHORIZATION to credentials that may pull)" : "";
  throw new BundleError(502, `the origin answered ${command} with ${response.status}${said ? `: ${said}` : ""}${hint}`);
}

export async function originText(origin: BundleOrigin, repo: string, command: string, args: Record<string, string> = {}, headerLimit?: number): Promise<string> {
  const response = await originCommand(origin, repo, command, args, headerLimit);
  const reader = new ByteReader(response.body ?? new ReadableStream(), origin.config.originIdleTimeoutMs);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return new TextDecoder().decode(concatBytes(chunks));
    total += value.length;
    if (total > MAX_SMALL_ANSWER_BYTES) {
      await reader.cancel("too large");
      throw new BundleError(502, `the origin's answer to ${command} is over ${MAX_SMALL_ANSWER_BYTES} bytes`);
    }
    chunks.push(value);
  }
}

/** What `getbundle` needs to know about the origin, from its capabilities. */
export async function originAbilities(origin: BundleOrigin, repo: string): Promise<OriginAbilities> {
  const capabilities = parseCapabilities(await originText(origin, repo, "capabilities"));
  if (!capabilities.has("getbundle") || !capabilities.has("bundle2")) {
    throw new BundleError(502, "the origin does not offer getbundle with bundle2 (Mercurial 3.x or older?)");
  }
  const limit = Number(capabilities.get("httpheader")?.split(",")[0]);
  const abilities: OriginAbilities = { headerLimit: Number.isSafeInteger(limit) && limit > 0 ? limit : DEFAULT_HTTP_HEADER_LIMIT };
  const offer = streamCloneOffer(capabilities);
  if (!offer.offered) abilities.streamRefusal = offer.reason;
  return abilities;
}

export async function originHeads(origin: BundleOrigin, repo: string): Promise<string[]> {
  const heads = parseNodeList(await originText(origin, repo, "heads")).filter((node) => node !== NULL_NODE);
  return heads.sort();
}

/** `getbundle` of `heads` over `common` (changegroup 02, phases if asked), as the bundle2 bytes without transport compression. */
export function originChangegroup(origin: BundleOrigin, repo: string, heads: string[], common: string[], phases: boolean, headerLimit: number): Promise<ReadableStream<Uint8Array>> {
  const args: Record<string, string> = {
    bundlecaps: bundle2Caps(CHANGEGROUP_CAPS),
    cg: "1",
    common: (common.length > 0 ? common : [NULL_NODE]).join(" "),
    heads: heads.join(" "),
  };
  if (phases) args.phases = "1";
  return originBundle(origin, repo, args, headerLimit);
}

/**
 * The origin's stream clone, asked as a 7.x client asks it (exchange._pullbundle2 with
 * streamclone.canperformstreamclone true): bundle2 capabilities with `stream=v2`, `stream=1`,
 * no changegroup, over nothing. The answer is a bundle2 stream holding one `stream2` part — a
 * `none-v2;stream=v2` bundle as it is. The origin sends it uncompressed (it prefers that for
 * stream clones).
 */
export function originStreamClone(origin: BundleOrigin, repo: string, heads: string[], headerLimit: number): Promise<ReadableStream<Uint8Array>> {
  const args = { bundlecaps: bundle2Caps(STREAM_CAPS), cg: "0", common: NULL_NODE, heads: heads.join(" "), stream: "1" };
  return originBundle(origin, repo, args, headerLimit);
}

async function originBundle(origin: BundleOrigin, repo: string, args: Record<string, string>, headerLimit: number): Promise<ReadableStream<Uint8Array>> {
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
        // Uncompressed (how stream clones come) needs no steps: nothing expands.
        const step = decoder.engine === "none" ? value.length : DECODE_STEP_BYTES;
        for (let at = 0; at < value.length; at += step) {
          const plain = decoder.decode(value.subarray(at, at + step));
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
