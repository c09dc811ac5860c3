/**
 * Capabilities rewriting: hgedge advertises its own content-redirect targets to v2 clients
 * (protocol.md §1.4, §4.2, §6.1, §8.1).
 *
 * The v2 API descriptor reaches clients twice: inside the v1 handshake (`?cmd=capabilities` with
 * X-HgUpgrade-N/X-HgProto-N, answered with one CBOR map `{apibase, apis: {<api>: descriptor},
 * v1capabilities}`), and as the object of the v2 `capabilities` command. In both, the descriptor's
 * `redirect` entry is `{hashes: [...], targets: [{name, protocol, uris, snirequired?,
 * tlsversions?}]}`; everything else is left exactly as the origin said it.
 */
import { decodeOne } from "./cbor/decode.ts";
import { encode } from "./cbor/encode.ts";
import { bytes, cborMap, mapGet, text, type CborMap, type CborValue } from "./cbor/values.ts";
import { SequenceError } from "./errors.ts";
import { collectResponses } from "./responses/read.ts";
import { encodeOkResponse } from "./responses/write.ts";

/** The only v2 API Mercurial 5.x ships (wireprototypes.HTTP_WIREPROTO_V2). */
export const HTTP_V2_API = "exp-http-v2-0003";
/** wireprotov2server.FRAMINGTYPE: Accept and Content-Type of v2 commands, matched exactly. */
export const FRAMING_MEDIA_TYPE = "application/mercurial-exp-framing-0006";
export const CBOR_MEDIA_TYPE = "application/mercurial-cbor";
/** The hashes 5.x clients understand, in the order Mercurial's server advertises them. */
export const REDIRECT_HASHES = ["sha256", "sha1"] as const;

export interface RedirectTarget {
  name: string;
  /** `http` or `https`: the only protocols 5.x clients accept. */
  protocol: string;
  uris: string[];
  snirequired?: boolean;
  /** TLS versions; 5.x clients know 1.0, 1.1 and 1.2 and drop a target listing none of them. */
  tlsversions?: string[];
}

export type RedirectMode = "replace" | "append";

function targetMap(target: RedirectTarget): CborMap {
  const map = cborMap({ name: bytes(target.name), protocol: bytes(target.protocol), uris: target.uris.map(bytes) });
  if (target.snirequired !== undefined) map.set(bytes("snirequired"), target.snirequired);
  if (target.tlsversions !== undefined) map.set(bytes("tlsversions"), target.tlsversions.map(bytes));
  return map;
}

/**
 * The descriptor with hgedge's targets: `replace` drops whatever the origin advertised (so the
 * origin never redirects clients to targets hgedge does not control), `append` keeps the origin's
 * first and adds ours (skipping names the origin already uses).
 */
export function withRedirectTargets(descriptor: CborMap, targets: readonly RedirectTarget[], mode: RedirectMode): CborMap {
  const existing = mapGet(descriptor, "redirect");
  const originTargets = mode === "append" && existing instanceof Map ? asList(mapGet(existing, "targets")) : [];
  const taken = new Set(originTargets.map((t) => (t instanceof Map ? nameOf(t) : undefined)));
  const ours = targets.filter((t) => !taken.has(t.name)).map(targetMap);
  const result = new Map(descriptor);
  for (const key of result.keys()) if (key instanceof Uint8Array && text(key) === "redirect") result.delete(key);
  const all = [...originTargets, ...ours];
  if (all.length > 0) {
    result.set(bytes("redirect"), cborMap({ hashes: REDIRECT_HASHES.map(bytes), targets: all }));
  }
  return result;
}

function asList(value: CborValue | undefined): CborValue[] {
  return Array.isArray(value) ? value : [];
}

function nameOf(target: CborMap): string | undefined {
  const name = mapGet(target, "name");
  return name instanceof Uint8Array ? text(name) : undefined;
}

/** Names of the redirect targets a descriptor advertises. */
export function advertisedTargets(descriptor: CborMap): string[] {
  const redirect = mapGet(descriptor, "redirect");
  if (!(redirect instanceof Map)) return [];
  return asList(mapGet(redirect, "targets")).flatMap((t) => (t instanceof Map ? (nameOf(t) ?? []) : []));
}

/**
 * Rewrites a v1 handshake answer (`application/mercurial-cbor`, one map). Returns `undefined`
 * when the body does not carry the v2 API descriptor (nothing to change: pass it through).
 * Throws a ProtocolError when it is not the single CBOR map Mercurial sends.
 */
export function rewriteHandshake(body: Uint8Array, targets: readonly RedirectTarget[], mode: RedirectMode): Uint8Array | undefined {
  const handshake = decodeOne(body);
  if (!(handshake instanceof Map)) throw new SequenceError("capabilities handshake is not a CBOR map");
  const apis = mapGet(handshake, "apis");
  if (!(apis instanceof Map)) return undefined;
  const descriptor = mapGet(apis, HTTP_V2_API);
  if (!(descriptor instanceof Map)) return undefined;
  const newApis = replaceEntry(apis, HTTP_V2_API, withRedirectTargets(descriptor, targets, mode));
  return encode(replaceEntry(handshake, "apis", newApis));
}

/** A copy of `map` with the value at `key` replaced, keeping the key's identity and position. */
function replaceEntry(map: CborMap, key: string, value: CborValue): CborMap {
  const copy = new Map(map);
  for (const k of copy.keys()) {
    if (k instanceof Uint8Array && text(k) === key) copy.set(k, value);
  }
  return copy;
}

/**
 * Rewrites the framed answer to the v2 `capabilities` command: decodes it (any stream encoding),
 * edits the descriptor and re-emits it unencoded (protocol.md §8.1 b). Returns `undefined` when
 * the answer is not a successful single-object response (an error passes through untouched).
 */
export function rewriteCapabilitiesResponse(
  body: Uint8Array,
  targets: readonly RedirectTarget[],
  mode: RedirectMode,
): Uint8Array | undefined {
  const responses = collectResponses(body);
  const [entry] = responses;
  if (responses.size !== 1 || !entry) return undefined;
  const [requestId, response] = entry;
  if (response.status !== "ok" || !response.ended || response.objects.length !== 1) return undefined;
  const [descriptor] = response.objects;
  if (!(descriptor instanceof Map)) return undefined;
  return encodeOkResponse(requestId, encode(withRedirectTargets(descriptor, targets, mode)));
}
