/**
 * Answers from the cache, without asking the origin: a content redirect (one frame, the object
 * not even read), or the stored bytes re-framed inline in an encoding the client offered.
 */
import { CBOR_MEDIA_TYPE, FRAMING_MEDIA_TYPE } from "../protocol/capabilities.ts";
import { ResponseEmitter, encodeRedirectResponse, type RedirectLocation } from "../protocol/responses.ts";
import { negotiateEncoding } from "../protocol/streams.ts";
import { fromHex } from "../protocol/hex.ts";
import type { ObjectMetadata } from "./store.ts";
import { ByteReader } from "./reader.ts";

export const CACHE_STATUS_HEADER = "x-hgedge-cache";
export type CacheStatus = "HIT" | "MISS" | "REDIRECT" | "BYPASS";

function framedHeaders(status: CacheStatus): Headers {
  return new Headers({ "content-type": FRAMING_MEDIA_TYPE, [CACHE_STATUS_HEADER]: status });
}

/**
 * `{status: redirect, location: {url, mediatype, size}}` in a single unencoded eos frame. Full
 * hashes only when asked for and known: 5.x clients do not check them and warn for each one.
 */
export function redirectAnswer(requestId: number, url: string, metadata: ObjectMetadata, withHashes: boolean): Response {
  const location: RedirectLocation = { url, mediatype: CBOR_MEDIA_TYPE, size: metadata.size };
  if (withHashes && metadata.sha256 && metadata.sha1) {
    location.fullhashes = [
      ["sha256", fromHex(metadata.sha256)],
      ["sha1", fromHex(metadata.sha1)],
    ];
  }
  const body = encodeRedirectResponse(requestId, location);
  const headers = framedHeaders("REDIRECT");
  headers.set("content-length", String(body.length));
  return new Response(body, { headers });
}

/**
 * `{status: ok}` then the stored bytes, framed (≤ 32 KiB each) as they are read from R2, in the
 * best encoding the client offered (zlib, else identity, as Mercurial's server would choose
 * among what hgedge can produce).
 */
export function inlineAnswer(requestId: number, stored: ReadableStream<Uint8Array>, clientEncodings: string[]): Response {
  const emitter = new ResponseEmitter(requestId, negotiateEncoding(clientEncodings) ?? "identity");
  const reader = new ByteReader(stored, undefined);
  let begun = false;
  const body = new ReadableStream<Uint8Array>({
    // Each pull must enqueue something (or close): a pull that enqueues nothing is not called
    // again, and the emitter holds bytes back until it has a full frame.
    async pull(controller) {
      const frames = begun ? [] : emitter.begin();
      begun = true;
      while (frames.length === 0) {
        const { done, value } = await reader.read();
        if (done) {
          for (const frame of emitter.end()) controller.enqueue(frame);
          controller.close();
          return;
        }
        frames.push(...emitter.write(value));
      }
      for (const frame of frames) controller.enqueue(frame);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return new Response(body, { headers: framedHeaders("HIT") });
}
