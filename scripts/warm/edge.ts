/**
 * The warmer's side of the wire: the v1 capabilities handshake that upgrades to wire protocol
 * v2, plain v2 commands whose answers the warmer reads (heads, changesetdata), and the
 * cacheable requests it sends to warm the cache — read to the last byte on a miss (the edge
 * stores an object only after streaming all of it), stopped after the one frame on a redirect.
 */
import { CBOR_MEDIA_TYPE, FRAMING_MEDIA_TYPE, HTTP_V2_API, REDIRECT_HASHES } from "../../src/protocol/capabilities.ts";
import { decodeOne, mapGet, text, type CborMap, type CborValue } from "../../src/protocol/cbor.ts";
import { encodeRequestBody } from "../../src/protocol/requests.ts";
import { ResponseReader, commandErrorMessage } from "../../src/protocol/responses.ts";
import { advertisedTargets } from "../../src/protocol/capabilities.ts";
import { ItemProgress } from "./progress.ts";

/** What went wrong before any warming could happen: the run stops with exit status 2. */
export class CannotWarm extends Error {
  override readonly name = "CannotWarm";
}

export const CACHE_HEADER = "x-hgedge-cache";
export const FILL_HEADER = "x-hgedge-fill";
const USER_AGENT = "hgedge-warm";

export interface EdgeOptions {
  /** The repository's URL on the edge, as clients clone it. */
  repoUrl: string;
  /** Extra request headers (credentials), sent with every request. */
  headers: [string, string][];
  /** Content encodings offered for v2 answers, in preference order. */
  encodings: string[];
  /** Aborts every request under way (an interrupt). */
  signal?: AbortSignal;
}

export interface Handshake {
  descriptor: CborMap;
  /** Base URL of the v2 API: `<repo>/api/exp-http-v2-0003`. */
  apiUrl: string;
  /** Redirect targets the edge advertises (sent back with every cacheable request). */
  targets: string[];
}

/** How a cacheable request was answered. */
export interface WarmAnswer {
  /** X-Hgedge-Cache: REDIRECT, HIT, MISS. */
  cache: string;
  /** The edge said it is not storing this miss (X-Hgedge-Fill: skipped). */
  fillSkipped: boolean;
  /** Bytes of the object (what the cache stores): read on a miss or inline hit, announced by a redirect. */
  objectBytes: number;
  /** Bytes received over HTTP. */
  wireBytes: number;
}

export class EdgeClient {
  /** Bytes received for the commands the warmer reads (handshake, heads, changesetdata). */
  discoveryBytes = 0;
  readonly sent = new Map<string, number>();

  constructor(private readonly options: EdgeOptions) {}

  /** GET <repo>?cmd=capabilities with the upgrade headers a 5.x client sends. */
  async handshake(): Promise<Handshake> {
    const url = `${this.options.repoUrl}?cmd=capabilities`;
    const response = await this.fetch(url, {
      method: "GET",
      headers: {
        accept: "application/mercurial-0.1",
        "x-hgproto-1": "cbor",
        "x-hgupgrade-1": HTTP_V2_API,
        vary: "X-HgProto-1,X-HgUpgrade-1",
      },
    });
    this.count("capabilities");
    const body = new Uint8Array(await response.arrayBuffer());
    this.discoveryBytes += body.length;
    const type = response.headers.get("content-type") ?? "";
    if (type !== CBOR_MEDIA_TYPE) {
      throw new CannotWarm(
        `${url} answered ${type || "no content type"}, not the wire-protocol-v2 handshake: the origin must run Mercurial 5.x ` +
          `with experimental.web.apiserver=true and experimental.web.api.http-v2=true`,
      );
    }
    const handshake = decodeOne(body);
    const apis = handshake instanceof Map ? mapGet(handshake, "apis") : undefined;
    const descriptor = apis instanceof Map ? mapGet(apis, HTTP_V2_API) : undefined;
    const apibase = handshake instanceof Map ? mapGet(handshake, "apibase") : undefined;
    if (!(descriptor instanceof Map) || !(apibase instanceof Uint8Array)) {
      throw new CannotWarm(`${url} does not offer ${HTTP_V2_API} (enable experimental.web.api.http-v2 on the origin)`);
    }
    // The client builds the API URL on the URL the handshake ended at (after HTTP redirects).
    const base = response.url ? response.url.replace(/\?.*$/, "") : this.options.repoUrl;
    const apiUrl = `${base.replace(/\/+$/, "")}/${text(apibase).replace(/\/+$/, "")}/${HTTP_V2_API}`;
    return { descriptor, apiUrl, targets: advertisedTargets(descriptor) };
  }

  /** A v2 command whose answer the warmer needs; objects are handed over as they are decoded. */
  async command(apiUrl: string, name: string, args: CborMap, onObjects: (values: CborValue[]) => void): Promise<void> {
    const response = await this.post(apiUrl, name, args);
    const reader = new ResponseReader();
    let failure: string | undefined;
    let ended = false;
    for await (const chunk of bodyChunks(response)) {
      this.discoveryBytes += chunk.length;
      for (const event of reader.push(chunk)) {
        if (event.type === "status" && event.status !== "ok") failure = `${name}: the origin answered ${event.status}: ${commandErrorMessage(event.map)}`;
        else if (event.type === "error-response") failure = `${name}: the origin failed: ${event.message}`;
        else if (event.type === "objects") onObjects(event.values);
        else if (event.type === "end") ended = true;
      }
    }
    reader.finish();
    if (failure) throw new CannotWarm(failure);
    if (!ended) throw new CannotWarm(`${name}: the answer ended early`);
  }

  /**
   * Sends one cacheable request and reads its answer: all of it on a miss or an inline hit (the
   * edge commits an object only once the whole answer went through), one frame on a redirect.
   * `checkOnly` (an object an earlier run recorded) stops at the response headers when they say
   * the edge answered from its cache: no object byte is read; a miss is read as any other.
   */
  async warm(
    apiUrl: string,
    name: string,
    args: CborMap,
    targets: string[],
    onBytes: (objectBytes: number, fraction?: number) => void,
    checkOnly = false,
  ): Promise<WarmAnswer> {
    const response = await this.post(apiUrl, name, args, targets.length > 0 ? { targets, hashes: [...REDIRECT_HASHES] } : undefined);
    const cache = response.headers.get(CACHE_HEADER);
    if (!cache) {
      await response.body?.cancel();
      throw new CannotWarm(`${apiUrl} is not an hgedge edge (no X-Hgedge-Cache header): warming the origin itself does nothing`);
    }
    if (cache === "BYPASS") {
      await response.body?.cancel();
      throw new CannotWarm(
        `the edge does not cache ${name} (X-Hgedge-Cache: BYPASS): its cache is off — no OBJECTS bucket, or ACCESS=origin ` +
          `without SIGNING_KEY (its log says which, event "cache-refused")`,
      );
    }
    const answer: WarmAnswer = { cache, fillSkipped: response.headers.get(FILL_HEADER) === "skipped", objectBytes: 0, wireBytes: 0 };
    if (checkOnly && cache !== "MISS") {
      await response.body?.cancel();
      return answer;
    }
    const reader = new ResponseReader({ emitBody: true, decodeObjects: false });
    const items = new ItemProgress(name);
    let failure: string | undefined;
    let ended = false;
    for await (const chunk of bodyChunks(response)) {
      answer.wireBytes += chunk.length;
      for (const event of reader.push(chunk)) {
        if (event.type === "status" && event.status === "redirect") {
          const location = mapGet(event.map, "location");
          const size = location instanceof Map ? mapGet(location, "size") : undefined;
          answer.objectBytes = typeof size === "number" ? size : typeof size === "bigint" ? Number(size) : 0;
        } else if (event.type === "status" && event.status === "error") {
          failure = `the origin answered an error: ${commandErrorMessage(event.map)}`;
        } else if (event.type === "error-response") {
          failure = `the origin failed: ${event.message}`;
        } else if (event.type === "body") {
          answer.objectBytes += event.bytes.length;
          items.push(event.bytes);
        } else if (event.type === "end") {
          ended = true;
        }
      }
      onBytes(answer.objectBytes, items.fraction());
    }
    reader.finish();
    if (failure) throw new Error(failure);
    if (!ended) throw new Error("the answer ended early");
    return answer;
  }

  private post(apiUrl: string, name: string, args: CborMap, redirect?: { targets: string[]; hashes: string[] }): Promise<Response> {
    this.count(name);
    const body = encodeRequestBody([{ name, args, ...(redirect ? { redirect } : {}) }], this.options.encodings);
    return this.fetch(`${apiUrl}/ro/${name}`, {
      method: "POST",
      headers: { accept: FRAMING_MEDIA_TYPE, "content-type": FRAMING_MEDIA_TYPE },
      body,
    });
  }

  private count(name: string): void {
    this.sent.set(name, (this.sent.get(name) ?? 0) + 1);
  }

  /** fetch with the operator's headers; network failures and refusals become messages that say what to do. */
  private async fetch(url: string, init: { method: string; headers: Record<string, string>; body?: Uint8Array }): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set("user-agent", USER_AGENT);
    for (const [name, value] of this.options.headers) headers.set(name, value);
    let response: Response;
    try {
      response = await fetch(url, {
        method: init.method,
        headers,
        ...(init.body ? { body: init.body } : {}),
        ...(this.options.signal ? { signal: this.options.signal } : {}),
      });
    } catch (error) {
      if (this.options.signal?.aborted) throw error;
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new CannotWarm(`cannot reach the edge at ${url}: ${cause?.code ?? cause?.message ?? String(error)} (is it running, is the URL right?)`);
    }
    if (response.status === 200) return response;
    const detail = (await response.text().catch(() => "")).trim().split("\n")[0]?.slice(0, 200) ?? "";
    const said = `${response.status} ${response.statusText}${detail ? `: ${detail}` : ""}`;
    if (response.status === 401) {
      throw new CannotWarm(`${url} answered ${said} — the repository needs credentials: pass them with --header 'Authorization: Basic …'`);
    }
    if (response.status === 403) throw new CannotWarm(`${url} answered ${said} — these credentials may not pull this repository`);
    if (response.status === 404) throw new CannotWarm(`${url} answered ${said} — no repository there (check the repository path)`);
    if (response.status === 502 || response.status === 504) throw new CannotWarm(`${url} answered ${said} — the edge cannot reach the origin`);
    throw new CannotWarm(`${url} answered ${said}`);
  }
}

async function* bodyChunks(response: Response): AsyncGenerator<Uint8Array> {
  if (!response.body) return;
  const reader = response.body.getReader();
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        finished = true;
        return;
      }
      yield value;
    }
  } finally {
    // Stopped early (an error, an interrupt): close the connection rather than leave it open.
    if (!finished) await reader.cancel().catch(() => undefined);
  }
}
