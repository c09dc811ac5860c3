/**
 * Reading stored objects back out of R2 for the content route, with the checks that keep a
 * broken object from ever being served: its stored size must be the size the writer counted,
 * and its bytes must hash to the SHA-256 the writer computed (store.ts writes both as custom
 * metadata). An object failing either check is deleted, so that the next request misses and
 * fills it again instead of failing the same way forever.
 */
import { toHex } from "../protocol/hex.ts";
import { logEvent as log } from "../log.ts";
import { OBJECT_KEY_PATTERN } from "./names.ts";
import { OBJECT_CONTENT_TYPE } from "./store.ts";

/** What the answers describe: the stored object as one representation (RFC 9110 §3.2). */
export interface Representation {
  size: number;
  /** As stored (cached command responses are CBOR, clone bundles are not). */
  contentType: string;
  /** Strong entity tag, quoted. */
  etag: string;
}

/** Most objects one VerifiedObjects remembers before it starts over. */
export const MAX_VERIFIED_OBJECTS = 100_000;

/**
 * The objects (name and R2 entity tag) whose bytes have been hashed and found right, so that
 * later reads can skip the second, hashing read. One per isolate, made by whoever builds the
 * app: objects are immutable under their tag, so the memory never goes stale, and forgetting
 * only costs a hash again. When full it starts over rather than keeping an order to evict by.
 */
export class VerifiedObjects {
  private readonly ids = new Set<string>();

  constructor(readonly capacity = MAX_VERIFIED_OBJECTS) {}

  has(object: Pick<R2Object, "key" | "etag">): boolean {
    return this.ids.has(verifiedId(object));
  }

  remember(object: Pick<R2Object, "key" | "etag">): void {
    if (this.ids.size >= this.capacity) this.ids.clear();
    this.ids.add(verifiedId(object));
  }

  get size(): number {
    return this.ids.size;
  }
}

/** The tag is part of the identity: an object written again under its name is checked again. */
function verifiedId(object: Pick<R2Object, "key" | "etag">): string {
  return `${object.key}@${object.etag}`;
}

export interface RepresentationChecks {
  /**
   * Whether the answer hands out bytes (a 200 or a 206). Only then is the hash checked: a HEAD,
   * a 304 or a 416 gives out no bytes that could be wrong.
   */
  servesBytes: boolean;
  /** The objects already hashed in this isolate. */
  verified: VerifiedObjects;
}

/**
 * The representation of a stored object, or undefined (after deleting it) when it must not be
 * served. A disagreement of size or hash means a broken write or storage, and serving it would
 * hand a client a truncated or wrong command response. The hash is verified the first time an
 * isolate serves an object (a second, streamed read, in constant memory); later reads trust that
 * check. Objects written as multipart uploads carry no `size`/`sha256` (their metadata is fixed
 * before the bytes are known): they are served on R2's own size and tag.
 */
export async function checkedRepresentation(bucket: R2Bucket, object: R2Object, checks: RepresentationChecks): Promise<Representation | undefined> {
  const declared = object.customMetadata?.size;
  const sha256 = object.customMetadata?.sha256;
  const wrongSize = declared !== undefined && declared !== String(object.size);
  const checkHash = checks.servesBytes && sha256 !== undefined;
  if (wrongSize || (checkHash && !(await hashMatches(bucket, object, sha256, checks.verified)))) {
    if ("body" in object) await (object as R2ObjectBody).body.cancel();
    await discardCorrupt(bucket, object, wrongSize ? `size ${object.size}, metadata says ${declared}` : "bytes do not hash to the stored sha256");
    return undefined;
  }
  const etag = sha256 && OBJECT_KEY_PATTERN.test(sha256) ? `"${sha256}"` : object.httpEtag;
  return { size: object.size, etag, contentType: object.httpMetadata?.contentType ?? OBJECT_CONTENT_TYPE };
}

/**
 * The bytes (or only `range` of them) of the object just looked at, or undefined when it has been
 * deleted since. `onlyIf` makes sure they are that object's, not those of one written under the
 * same name in between, whose metadata nobody checked.
 */
export async function readStored(bucket: R2Bucket, stored: R2Object, range?: R2Range): Promise<ReadableStream | undefined> {
  const object = await bucket.get(stored.key, { onlyIf: { etagMatches: stored.etag }, ...(range ? { range } : {}) });
  if (!object) return undefined;
  if (!("body" in object)) throw new Error(`${stored.key} changed between head and get`);
  return object.body;
}

async function hashMatches(bucket: R2Bucket, object: R2Object, sha256: string, verified: VerifiedObjects): Promise<boolean> {
  if (verified.has(object)) return true;
  const copy = await bucket.get(object.key, { onlyIf: { etagMatches: object.etag } });
  // Replaced or deleted since: nothing to condemn; the caller's own read decides.
  if (!copy || !("body" in copy)) return true;
  const digest = new crypto.DigestStream("SHA-256");
  // If the read fails, pipeTo says so (the route answers 503); the digest promise then rejects
  // too, and nobody else is waiting for it.
  digest.digest.catch(() => undefined);
  await copy.body.pipeTo(digest);
  if (toHex(await digest.digest) !== sha256) return false;
  verified.remember(object);
  return true;
}

/** Deletes a broken object so the next request fills it afresh; a failed delete is only logged. */
async function discardCorrupt(bucket: R2Bucket, object: R2Object, problem: string): Promise<void> {
  log("error", "object-corrupt", { name: object.key, problem, action: "deleted" });
  try {
    await bucket.delete(object.key);
  } catch (error) {
    log("error", "object-corrupt-delete-failed", { name: object.key, error: String(error) });
  }
}
