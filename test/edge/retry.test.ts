/** The edge routes around the origin's filesdata failure on removed files, and nothing else. */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Env } from "../../src/config.ts";
import { createApp } from "../../src/edge/app.ts";
import type { OriginFetch } from "../../src/origin/client.ts";
import { CacheIsolate } from "../../src/cache/isolate.ts";
import { bytes, cborMap, mapGet } from "../../src/protocol/cbor.ts";
import { parseRequestBody } from "../../src/protocol/requests.ts";
import { encodeErrorResponseFrame, ResponseEmitter } from "../../src/protocol/responses.ts";
import { concatBytes } from "../../src/protocol/frames.ts";
import { encodeRequestBody } from "../../src/protocol/requests.ts";
import { exchanges, fixtureBytes } from "../support/fixtures.ts";

const FRAMING = "application/mercurial-exp-framing-0006";
let unique = 0;

/** An origin with the bug: haveparents true fails with `failure`, false answers `success`. */
function buggyOrigin(failure: Uint8Array, success: Uint8Array) {
  const seen: boolean[] = [];
  const originFetch: OriginFetch = async (url, init) => {
    const body = new Uint8Array(await new Request(url, init).arrayBuffer());
    const haveParents = mapGet(parseRequestBody(body).commands[0]!.args, "haveparents") === true;
    seen.push(haveParents);
    return new Response(haveParents ? failure : success, { headers: { "content-type": FRAMING } });
  };
  return { seen, originFetch };
}

function filesdataRequest(marker: number): Request {
  const args = cborMap({
    revisions: [cborMap({ type: bytes("changesetexplicit"), nodes: [new Uint8Array(20).fill(marker)] })],
    fields: new Set([bytes("parents"), bytes("revision")]),
    haveparents: true,
  });
  return new Request("http://edge.test/api/exp-http-v2-0003/ro/filesdata", {
    method: "POST",
    headers: { accept: FRAMING, "content-type": FRAMING },
    body: encodeRequestBody([{ name: "filesdata", args }], ["identity"]),
  });
}

async function call(originFetch: OriginFetch, request: Request, vars: Record<string, string> = {}, isolate = new CacheIsolate({ originFetch })) {
  const ctx = createExecutionContext();
  const response = await createApp({ isolate }).fetch(request, { ORIGIN_URL: "http://origin.test", OBJECTS: env.OBJECTS, ...vars } as Env, ctx);
  const body = new Uint8Array(await response.arrayBuffer());
  await waitOnExecutionContext(ctx);
  return { response, body };
}

describe("filesdata on removed files", async () => {
  const failure = (await exchanges("clone-v2-rename-bug")).at(-1)!.response;
  const success = await fixtureBytes("cmd-filesdata/002-response.body");

  it("retries once without parents and gives the client only the second answer", async () => {
    const origin = buggyOrigin(failure, success);
    const isolate = new CacheIsolate({ originFetch: origin.originFetch });
    const { body } = await call(origin.originFetch, filesdataRequest(++unique), {}, isolate);
    expect(body).toEqual(success);
    expect(origin.seen).toEqual([true, false]);
    expect(isolate.retryMemory.retries).toBe(1);

    // The same request again, in the same isolate, goes straight to the working form.
    const again = await call(origin.originFetch, filesdataRequest(unique), {}, isolate);
    expect(again.body).toEqual(success);
    expect(origin.seen).toEqual([true, false, false]);
    expect(isolate.retryMemory).toMatchObject({ retries: 1, direct: 1 });
  });

  it("caches the retried answer under the original request's key", async () => {
    const origin = buggyOrigin(failure, success);
    const vars = { ACCESS: "public", CACHE_VERSION: `retry-${Date.now()}`, MIN_REDIRECT_BYTES: "0" };
    const marker = ++unique;
    const miss = await call(origin.originFetch, filesdataRequest(marker), vars);
    expect(miss.response.headers.get("x-hgedge-cache")).toBe("MISS");
    expect(miss.body).toEqual(success);
    const hit = await call(origin.originFetch, filesdataRequest(marker), vars);
    expect(hit.response.headers.get("x-hgedge-cache")).toBe("HIT");
    expect(origin.seen).toEqual([true, false]);
  });

  it("never retries another error, or a failure after output started", async () => {
    const otherError = encodeErrorResponseFrame(1, "server", "unknown revision 'x'");
    const emitter = new ResponseEmitter(1);
    const lateFailure = concatBytes([...emitter.begin(), ...emitter.write(new Uint8Array([0xa0])), ...emitter.end()].slice(0, 1).concat([failure]));
    for (const answer of [otherError, lateFailure]) {
      const origin = buggyOrigin(answer, success);
      const { body } = await call(origin.originFetch, filesdataRequest(++unique));
      expect(body).toEqual(answer);
      expect(origin.seen).toEqual([true]);
    }
  });

  it("never changes a request the origin answers correctly", async () => {
    const origin = buggyOrigin(success, success);
    const { body } = await call(origin.originFetch, filesdataRequest(++unique));
    expect(body).toEqual(success);
    expect(origin.seen).toEqual([true]);
  });
});
