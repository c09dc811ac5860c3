/**
 * Answers from the cache, without asking the origin: a content redirect (one frame, the object
 * not even read), or the stored bytes framed inline — as they are (identity, which every
 * Mercurial client accepts) or re-encoded when a client does not take identity.
 */
import { CBOR_MEDIA_TYPE, FRAMING_MEDIA_TYPE } from "../protocol/capabilities.ts";
import { ResponseEmitter, encodeRedirectResponse, type RedirectLocation } from "../protocol/responses.ts";
import { DEFAULT_MAX_FRAME_SIZE } from "../protocol/frames.ts";
import { IdentityFramer } from "../protocol/inline.ts";
import { negotiateEncoding, type EncodingName } from "../protocol/streams.ts";
import { fromHex } from "../protocol/hex.ts";
import type { ObjectMetadata } from "./store.ts";
import { ByteReader, RegionFiller } from "../io/reader.ts";

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
 * `{status: ok}` then the stored bytes, framed (≤ 32 KiB each) as they are read from R2.
 *
 * The stored bytes are the response's decoded CBOR sequence, which is what an identity stream
 * carries: when the client takes identity (Mercurial's clients always offer it), the runtime
 * reads R2 straight into buffers the frames' payloads are views of, and JavaScript only writes
 * their 8-byte headers — no byte of the object is read or copied by this isolate. Compressing (zlib, zstd-8mb) would
 * cost CPU for every byte of every hit, which is what the cache is there to save: it is done only
 * for a client that does not take identity.
 */
export function inlineAnswer(requestId: number, stored: ReadableStream<Uint8Array>, clientEncodings: string[]): Response {
  const encoding = clientEncodings.length === 0 || clientEncodings.includes("identity") ? "identity" : negotiateEncoding(clientEncodings);
  const body = encoding === undefined || encoding === "identity" ? identityFrames(requestId, stored) : encodedFrames(requestId, stored, encoding);
  return new Response(body, { headers: framedHeaders("HIT") });
}

/**
 * The stored bytes read by the runtime in pieces of READ_FRAMES frames (one BYOB read each,
 * straight into the piece's buffer), sent as views between their frame headers: no byte of the
 * object is read or copied by JavaScript. A piece that fills its buffer continues;
 * the first that does not ends the answer (its last frame, possibly empty, carries eos).
 */
function identityFrames(requestId: number, stored: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const framer = new IdentityFramer(requestId);
  const source = new RegionFiller(stored);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const room = framer.room() + (READ_FRAMES - 1) * DEFAULT_MAX_FRAME_SIZE;
      const { bytes, filled } = await source.fill(new Uint8Array(room), 0, room);
      const last = filled < room;
      for (const chunk of framer.frames(bytes.subarray(0, filled), last)) controller.enqueue(chunk);
      if (last) controller.close();
    },
    cancel(reason) {
      return source.cancel(reason);
    },
  });
}

/**
 * Frames per read of the stored object (256 KiB): few reads per MiB, while an answer holds at
 * most a piece or two (many inline answers share an isolate's 128 MB).
 */
const READ_FRAMES = 8;

/** The old way, for a client that does not take identity: every byte goes through the compressor. */
function encodedFrames(requestId: number, stored: ReadableStream<Uint8Array>, encoding: EncodingName): ReadableStream<Uint8Array> {
  const emitter = new ResponseEmitter(requestId, encoding);
  const reader = new ByteReader(stored, undefined);
  let begun = false;
  return new ReadableStream<Uint8Array>({
    // The emitter holds bytes back until it has a full frame: read until a pull has something.
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
}
