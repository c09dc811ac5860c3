/**
 * The app inside workerd with the local R2 and a scripted origin, for cache tests: a fresh cache
 * generation per edge, a waitUntil that tests can drain, and v2 command requests.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { Env } from "../../src/config.ts";
import { createApp } from "../../src/edge/app.ts";
import type { OriginFetch } from "../../src/origin/client.ts";
import { bytes, cborMap } from "../../src/protocol/cbor.ts";
import { encodeRequestBody } from "../../src/protocol/requests.ts";

export const EDGE = "http://edge.test";
export const FRAMING = "application/mercurial-exp-framing-0006";
let generation = 0;

/** The app with the local R2, a fresh cache generation per call, and a waitUntil we can drain. */
export function edge(originFetch: OriginFetch, vars: Partial<Env> = {}) {
  const cacheVersion = `test-${Date.now()}-${generation++}`;
  const app = createApp({ originFetch });
  const ctx = createExecutionContext();
  const fetchEdge = async (request: Request) => {
    const response = await app.fetch(request, { ORIGIN_URL: "http://origin.test", OBJECTS: env.OBJECTS, ACCESS: "public", CACHE_VERSION: cacheVersion, MIN_REDIRECT_BYTES: "0", ...vars } as Env, ctx);
    return response;
  };
  const settle = () => waitOnExecutionContext(ctx);
  return { fetchEdge, settle };
}

export function manifestRequest(options: { targets?: string[]; encodings?: string[] } = {}): Request {
  const body = encodeRequestBody(
    [
      {
        name: "manifestdata",
        args: cborMap({ tree: new Uint8Array(0), nodes: [new Uint8Array(20).fill(1)], fields: new Set([bytes("revision")]) }),
        ...(options.targets ? { redirect: { targets: options.targets, hashes: ["sha256", "sha1"] } } : {}),
      },
    ],
    options.encodings ?? ["identity"],
  );
  return new Request(`${EDGE}/repo/api/exp-http-v2-0003/ro/manifestdata`, {
    method: "POST",
    headers: { accept: FRAMING, "content-type": FRAMING },
    body,
  });
}

