/**
 * Fault injection: what a client sees, and what ends up in R2, when the origin, R2 or the client
 * misbehave. Every case drives the whole app inside workerd with a scripted origin and the real
 * local R2, and checks the same three promises:
 *
 *  1. the client sees what the origin would have given it — same status, same headers that
 *     matter, the same bytes as far as the origin sent them — or a clean failure: a 502/504 with
 *     a one-line text reason, or, when the origin's connection broke after the headers, a cut
 *     stream (the body errors, it never ends cleanly: a truncated answer must not look whole);
 *  2. nothing throws out of the app (nor out of the work it leaves to waitUntil), and the
 *     request ends within a bounded time;
 *  3. no object is committed: the case's prefix in R2 stays empty, and for a cacheable request
 *     the same request afterwards is again a MISS that reaches the origin (which then fills it:
 *     the control that shows a commit would have been seen).
 *
 * Four kinds of request go through each origin fault: two cacheable ones (`ro/manifestdata`,
 * and `ro/filesdata` with `haveparents: true`, which the edge peeks at to route around the stock
 * origin's removed-file bug, see src/origin/retry.ts) and two pass-through ones (v2 `ro/heads` and
 * v1 `?cmd=getbundle`). Each case has its own repository path and CACHE_VERSION, so its objects
 * live under their own prefix. Then: recorded answers cut at every byte offset; R2 failing
 * (a Proxy around env.OBJECTS, passed as the OBJECTS binding) while filling, on a hit, and
 * behind the content route; and clients that go away mid-stream.
 *
 * Time is bounded everywhere: the origin's timeouts are set small (ORIGIN_TIMEOUT_MS for the
 * headers, ORIGIN_IDLE_TIMEOUT_MS for a silent body), and a client that has not seen its request
 * end after CLIENT_DEADLINE_MS calls it hung and fails the case.
 *
 * The five defects this table found (a reset, and a stall, before filesdata's first frame; no idle
 * timeout on pass-through bodies, an unhandled rejection in hash verification, a truncated
 * PoP-cache entry) are fixed; their cases run here as ordinary tests.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import type { Env } from "../../src/config.ts";
import { createApp } from "../../src/edge/app.ts";
import type { OriginFetch } from "../../src/origin/client.ts";
import { bytes, bytesEqual, cborMap, encodeSequence, type CborMap } from "../../src/protocol/cbor.ts";
import { concatBytes } from "../../src/protocol/frames.ts";
import { encodeRequestBody } from "../../src/protocol/requests.ts";
import { encodeCommandError, encodeErrorResponseFrame, encodeOkResponse, ResponseEmitter } from "../../src/protocol/responses.ts";
import { fixtureBytes, fixtureText } from "../support/fixtures.ts";

const EDGE = "http://edge.test";
const ORIGIN = "http://origin.test";
const FRAMING = "application/mercurial-exp-framing-0006";
/** ORIGIN_IDLE_TIMEOUT_MS: how long the origin may stay silent mid-body before the edge gives up. */
const IDLE_TIMEOUT_MS = 150;
/** How long a client waits for a request to end before the case calls it hung. */
const CLIENT_DEADLINE_MS = 2_000;
/** Per test: a hung request is detected at CLIENT_DEADLINE_MS; this only catches harness bugs. */
const TEST_TIMEOUT_MS = 15_000;

// -------------------------------------------------------------------------------------------
// The requests

interface Route {
  name: string;
  cacheable: boolean;
  /** A v2 command (frames on the wire) rather than v1. */
  v2: boolean;
  /** The recorded exchange whose response a healthy origin gives. */
  fixture: string;
  request(repo: string): Request;
}

function v2Request(repo: string, command: string, args: CborMap, targets?: string[]): Request {
  return new Request(`${EDGE}${repo}/api/exp-http-v2-0003/ro/${command}`, {
    method: "POST",
    headers: { accept: FRAMING, "content-type": FRAMING },
    body: encodeRequestBody([{ name: command, args, ...(targets ? { redirect: { targets, hashes: ["sha256", "sha1"] } } : {}) }], ["identity"]),
  });
}

const manifestdataArgs = () => cborMap({ tree: new Uint8Array(0), nodes: [new Uint8Array(20).fill(1)], fields: new Set([bytes("revision")]) });

const MANIFESTDATA: Route = {
  name: "ro/manifestdata (cacheable)",
  cacheable: true,
  v2: true,
  fixture: "cmd-manifestdata/002",
  request: (repo) => v2Request(repo, "manifestdata", manifestdataArgs()),
};

const FILESDATA: Route = {
  // haveparents: true is what every stock client sends, and what the edge peeks at.
  name: "ro/filesdata haveparents (cacheable)",
  cacheable: true,
  v2: true,
  fixture: "cmd-filesdata/002",
  request: (repo) =>
    v2Request(
      repo,
      "filesdata",
      cborMap({
        revisions: [cborMap({ type: bytes("changesetexplicit"), nodes: [new Uint8Array(20).fill(2)] })],
        fields: new Set([bytes("parents"), bytes("revision")]),
        haveparents: true,
      }),
    ),
};

const HEADS: Route = { name: "ro/heads (pass-through)", cacheable: false, v2: true, fixture: "cmd-heads/002", request: (repo) => v2Request(repo, "heads", cborMap({})) };

const ROUTES: Route[] = [
  MANIFESTDATA,
  FILESDATA,
  HEADS,
  {
    name: "?cmd=getbundle (pass-through)",
    cacheable: false,
    v2: false,
    fixture: "clone-v1/003",
    request: (repo) => new Request(`${EDGE}${repo}?cmd=getbundle`, { headers: { accept: "application/mercurial-0.1", "x-hgarg-1": "bundlecaps=HG20&cg=1&common=0000000000000000000000000000000000000000&heads=1111111111111111111111111111111111111111" } }),
  },
];

/** A recorded answer: its body and the chunk sizes the origin wrote it in. */
interface Recorded {
  body: Uint8Array;
  chunks: number[];
  contentType: string;
}

const recordings = new Map<string, Promise<Recorded>>();
function recorded(fixture: string): Promise<Recorded> {
  let r = recordings.get(fixture);
  if (!r) {
    r = (async () => {
      const meta = JSON.parse(await fixtureText(`${fixture}.json`)) as { response_chunk_sizes: number[] | null; content_type: string };
      const body = await fixtureBytes(`${fixture}-response.body`);
      return { body, chunks: meta.response_chunk_sizes ?? [body.length], contentType: meta.content_type };
    })();
    recordings.set(fixture, r);
  }
  return r;
}

// -------------------------------------------------------------------------------------------
// The scripted origin

/** What the origin does with one request. */
type OriginBehaviour =
  | { kind: "answer"; answer: OriginAnswer }
  /** The connection is refused: fetch rejects at once. */
  | { kind: "unreachable" }
  /** No response headers, ever (until the edge's timeout aborts the fetch, as real fetch does). */
  | { kind: "silent" }
  /** The answer, after `delayMs` without headers (a stock server working out a big answer first). */
  | { kind: "late"; delayMs: number; answer: OriginAnswer };

interface OriginAnswer {
  status?: number;
  headers?: Record<string, string>;
  /** What the origin manages to send. */
  body: Uint8Array;
  /** Sizes of the chunks it writes `body` in (the last size repeats); default one chunk. */
  chunks?: number[];
  /** After `body`: the stream ends cleanly, the connection resets, or nothing more ever comes. */
  then?: "end" | "reset" | "stall";
}

interface OriginLog {
  calls: number;
  /** Whether the edge cancelled the origin's body (released the connection). */
  cancelled: boolean;
  /** Unblocks a stalled body at the end of a case, so that nothing dangles between tests. */
  release(): void;
}

function scriptedOrigin(behaviour: OriginBehaviour): { originFetch: OriginFetch; log: OriginLog } {
  const releases: (() => void)[] = [];
  const log: OriginLog = { calls: 0, cancelled: false, release: () => releases.splice(0).forEach((r) => r()) };
  const originFetch: OriginFetch = async (_url, init) => {
    log.calls += 1;
    switch (behaviour.kind) {
      case "unreachable":
        throw new TypeError("Network connection lost.");
      case "silent":
        return new Promise<Response>((_, reject) => {
          const abort = () => reject(init.signal?.reason ?? new Error("aborted"));
          if (init.signal?.aborted) abort();
          init.signal?.addEventListener("abort", abort);
          releases.push(() => reject(new Error("test over")));
        });
      case "answer": {
        const { answer } = behaviour;
        return new Response(originBody(answer, log, releases), { status: answer.status ?? 200, headers: answer.headers ?? {} });
      }
      case "late": {
        const { answer, delayMs } = behaviour;
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(resolve, delayMs);
          init.signal?.addEventListener("abort", () => {
            clearTimeout(timer);
            reject(init.signal?.reason);
          });
        });
        return new Response(originBody(answer, log, releases), { status: answer.status ?? 200, headers: answer.headers ?? {} });
      }
    }
  };
  return { originFetch, log };
}

function originBody(answer: OriginAnswer, log: OriginLog, releases: (() => void)[]): ReadableStream<Uint8Array> {
  const pieces = split(answer.body, answer.chunks ?? [answer.body.length]);
  let next = 0;
  return new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (next < pieces.length) return controller.enqueue(pieces[next++] as Uint8Array);
        switch (answer.then ?? "end") {
          case "end":
            return controller.close();
          case "reset":
            return controller.error(new Error("connection reset by the origin"));
          case "stall":
            return new Promise<void>((resolve) => {
              releases.push(() => {
                try {
                  controller.error(new Error("test over"));
                } catch {
                  // already cancelled
                }
                resolve();
              });
            });
        }
      },
      cancel() {
        log.cancelled = true;
        log.release();
      },
    },
    // Pull only when the edge reads, as a socket would: what the edge never read was never sent.
    { highWaterMark: 0 },
  );
}

/** `body` in chunks of the given sizes (the last size repeating), ending exactly at its end. */
function split(body: Uint8Array, sizes: number[]): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  let at = 0;
  for (let i = 0; at < body.length; i++) {
    const size = Math.max(1, sizes[Math.min(i, sizes.length - 1)] ?? body.length);
    pieces.push(body.slice(at, at + size));
    at += size;
  }
  return pieces;
}

// -------------------------------------------------------------------------------------------
// The edge, and what a client sees of it

interface Scope {
  repo: string;
  cacheVersion: string;
  /** Where this case's objects would be in R2. */
  prefix: string;
}

let serial = 0;
function newScope(): Scope {
  const id = `${Date.now().toString(36)}-${serial++}`;
  return { repo: `/faults/${id}`, cacheVersion: `faults-${id}`, prefix: `faults/${id}/` };
}

interface EdgeOptions {
  scope: Scope;
  originFetch: OriginFetch;
  bucket?: R2Bucket;
  vars?: Partial<Record<keyof Env, string>>;
}

/** The app as workerd runs it, with an ExecutionContext whose waitUntil work we collect. */
function edge({ scope, originFetch, bucket, vars }: EdgeOptions) {
  const app = createApp({ originFetch });
  const ctx = createExecutionContext();
  const bindings = {
    ORIGIN_URL: ORIGIN,
    OBJECTS: bucket ?? env.OBJECTS,
    ACCESS: "public",
    CACHE_VERSION: scope.cacheVersion,
    MIN_REDIRECT_BYTES: "0",
    ORIGIN_TIMEOUT_MS: "1000",
    ORIGIN_IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS),
    ...vars,
  } as Env;
  return {
    fetch: async (request: Request) => app.fetch(request, bindings, ctx),
    /** Waits for the background work; answers what of it failed (it must not). */
    settle: async (): Promise<unknown[]> => {
      try {
        await waitOnExecutionContext(ctx);
        return [];
      } catch (error) {
        // One rejection comes as itself, several as one AggregateError.
        return error instanceof AggregateError ? error.errors : [error];
      }
    },
  };
}

interface ClientView {
  /** app.fetch rejected: an exception escaped the app. */
  thrown?: unknown;
  status?: number;
  headers?: Headers;
  bytes: Uint8Array;
  /** The body ended cleanly, errored (a cut), was cancelled by us, or did not end in time. */
  ending: "end" | "cut" | "cancelled" | "hung";
  cutReason?: string;
}

type Timed<T> = { value: T } | "timeout";
async function within<T>(promise: Promise<T>, ms: number): Promise<Timed<T>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), Math.max(0, ms))));
  try {
    return await Promise.race([promise.then((value) => ({ value })), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads the answer as a client would, giving up after `deadlineMs` (or cancelling after some chunks). */
async function observe(call: Promise<Response>, options: { deadlineMs?: number; cancelAfterChunks?: number } = {}): Promise<ClientView> {
  const deadline = Date.now() + (options.deadlineMs ?? CLIENT_DEADLINE_MS);
  call.catch(() => undefined); // a late rejection after a timeout is reported through `thrown` or not at all
  const received: Uint8Array[] = [];
  const view = (rest: Omit<ClientView, "bytes">): ClientView => ({ bytes: concatBytes(received), ...rest });
  let response: Response;
  try {
    const r = await within(call, deadline - Date.now());
    if (r === "timeout") return view({ ending: "hung" });
    response = r.value;
  } catch (error) {
    return view({ thrown: error, ending: "cut" });
  }
  const head = { status: response.status, headers: response.headers };
  if (!response.body) return view({ ...head, ending: "end" });
  const reader = response.body.getReader();
  for (;;) {
    if (received.length === options.cancelAfterChunks) {
      await reader.cancel("the client went away");
      return view({ ...head, ending: "cancelled" });
    }
    let r: Timed<ReadableStreamReadResult<Uint8Array>>;
    try {
      r = await within(reader.read(), deadline - Date.now());
    } catch (error) {
      return view({ ...head, ending: "cut", cutReason: String(error) });
    }
    if (r === "timeout") {
      void reader.cancel("the client gave up").catch(() => undefined);
      return view({ ...head, ending: "hung" });
    }
    if (r.value.done) return view({ ...head, ending: "end" });
    received.push(r.value.value);
  }
}

/** One request of `route` against an origin behaving as told; everything a case checks. */
async function exercise(route: Route, behaviour: OriginBehaviour, options: { vars?: EdgeOptions["vars"]; bucket?: R2Bucket; cancelAfterChunks?: number } = {}) {
  const scope = newScope();
  const origin = scriptedOrigin(behaviour);
  const { fetch, settle } = edge({ scope, originFetch: origin.originFetch, ...options });
  try {
    const client = await observe(fetch(route.request(scope.repo)), options);
    const backgroundFailures = await settle();
    return { scope, client, origin: origin.log, backgroundFailures };
  } finally {
    origin.log.release();
  }
}

// -------------------------------------------------------------------------------------------
// What the client may see

function expectBytes(actual: Uint8Array, expected: Uint8Array): void {
  // toEqual on hundreds of KiB is slow and its diff unreadable: compare, then say where.
  if (bytesEqual(actual, expected)) return;
  let at = 0;
  while (at < Math.min(actual.length, expected.length) && actual[at] === expected[at]) at++;
  expect.fail(`client got ${actual.length} bytes, origin sent ${expected.length}; first difference at byte ${at}`);
}

function expectNothingEscaped(run: { client: ClientView; backgroundFailures: unknown[] }): void {
  expect(run.client.thrown, "an exception escaped app.fetch").toBeUndefined();
  expect(run.backgroundFailures, "waitUntil work rejected").toEqual([]);
  expect(run.client.ending, "the request did not end in time").not.toBe("hung");
}

/** Exactly the origin's answer: status, the headers it set, every byte, a clean end. */
function expectSameAsOrigin(client: ClientView, answer: OriginAnswer): void {
  expect(client.status).toBe(answer.status ?? 200);
  for (const [name, value] of Object.entries(answer.headers ?? {})) expect(client.headers?.get(name), name).toBe(value);
  // No type of the edge's own on a body the origin sent untyped: clients judge by Content-Type.
  if (!answer.headers?.["content-type"]) expect(client.headers?.get("content-type")).toBeNull();
  expectBytes(client.bytes, answer.body);
  expect(client.ending).toBe("end");
}

/** 502/504 with a one-line text reason. */
function isCleanError(client: ClientView): boolean {
  if (client.status !== 502 && client.status !== 504) return false;
  const text = new TextDecoder().decode(client.bytes);
  return client.ending === "end" && /^text\/plain/.test(client.headers?.get("content-type") ?? "") && /^[^\n]+\n?$/.test(text);
}

function expectCleanError(client: ClientView, status: 502 | 504): void {
  expect(client.status).toBe(status);
  expect(isCleanError(client), `not a one-line text reason: ${new TextDecoder().decode(client.bytes)}`).toBe(true);
}

/**
 * The origin's connection broke (or went silent) after `answer.body`: the client gets the
 * origin's status and exactly those bytes and then a cut — never a clean end, which would make
 * a truncated answer look whole — or, if the edge had sent nothing yet, a clean 502/504.
 */
function expectCutOrCleanError(client: ClientView, answer: OriginAnswer): void {
  if (isCleanError(client)) return;
  expect(client.status).toBe(answer.status ?? 200);
  expectBytes(client.bytes, answer.body);
  expect(client.ending, "a broken origin stream must reach the client as a cut, not a clean end").toBe("cut");
}

function expectClientView(client: ClientView, answer: OriginAnswer): void {
  if ((answer.then ?? "end") === "end") expectSameAsOrigin(client, answer);
  else expectCutOrCleanError(client, answer);
}

/**
 * Nothing under the case's prefix; and for a cacheable request, the same request to a healthy
 * origin afterwards is a MISS that reaches it — and is then committed (the control).
 */
async function expectNothingStored(route: Route, scope: Scope): Promise<void> {
  expect((await env.OBJECTS.list({ prefix: scope.prefix })).objects.map((o) => o.key)).toEqual([]);
  if (!route.cacheable) return;
  const healthy = await recorded(route.fixture);
  const origin = scriptedOrigin({ kind: "answer", answer: { headers: { "content-type": FRAMING }, body: healthy.body, chunks: healthy.chunks } });
  const { fetch, settle } = edge({ scope, originFetch: origin.originFetch });
  const response = await fetch(route.request(scope.repo));
  expect(response.headers.get("x-hgedge-cache")).toBe("MISS");
  expectBytes(new Uint8Array(await response.arrayBuffer()), healthy.body);
  expect(await settle()).toEqual([]);
  expect(origin.log.calls).toBe(1);
  expect((await env.OBJECTS.list({ prefix: scope.prefix })).objects).toHaveLength(1);
}

// -------------------------------------------------------------------------------------------
// The origin's faults

/** The first frames of a successful answer: stream start, `{status: ok}`, `payload` — no eos. */
function partialOutput(payload: Uint8Array): Uint8Array[] {
  const emitter = new ResponseEmitter(1);
  return [...emitter.begin(), ...emitter.write(payload)];
}

const text = (s: string) => new TextEncoder().encode(s);

interface OriginFault {
  name: string;
  /** Only for v2 routes (frames mean nothing to a v1 client). */
  v2Only?: boolean;
  answer(recorded: Recorded): Promise<OriginAnswer> | OriginAnswer;
}

/** Byte offsets at which the origin's connection breaks, or it falls silent. */
const BREAK_POINTS: { name: string; v2Only?: boolean; at(body: Uint8Array): number }[] = [
  { name: "right after the headers", at: () => 0 },
  { name: "inside the first frame header", v2Only: true, at: () => 5 },
  { name: "after the stream-settings frame", v2Only: true, at: () => 17 },
  { name: "after the status frame", v2Only: true, at: () => 36 },
  { name: "after half the data", at: (body) => Math.floor(body.length / 2) },
  { name: "before the final eos frame", v2Only: true, at: (body) => body.length - 8 },
  { name: "one byte before the end", at: (body) => body.length - 1 },
];

const ORIGIN_FAULTS: OriginFault[] = [
  // Statuses from the origin itself (Mercurial's own shapes, protocol.md §1.6).
  { name: "500 Internal Server Error, no content type", answer: () => ({ status: 500, body: text("Internal Server Error") }) },
  { name: "500 text/plain", answer: () => ({ status: 500, headers: { "content-type": "text/plain" }, body: text("an exception occurred\n") }) },
  { name: "500 carrying complete, valid frames", answer: (r) => ({ status: 500, headers: { "content-type": FRAMING }, body: r.body, chunks: r.chunks }) },
  { name: "404 text/plain", answer: () => ({ status: 404, headers: { "content-type": "text/plain" }, body: text("unknown wire protocol command: x\n") }) },
  { name: "401 with WWW-Authenticate", answer: () => ({ status: 401, headers: { "www-authenticate": 'Basic realm="hg"' }, body: text("permission denied") }) },
  { name: "403", answer: () => ({ status: 403, body: text("permission denied") }) },
  { name: "502 from the origin's own proxy", answer: () => ({ status: 502, headers: { "content-type": "text/html" }, body: text("<html><body>Bad Gateway</body></html>") }) },
  // A 200 is not a framed answer unless it says so.
  {
    name: "200 text/plain protocol error (recorded: command in frame must match command in URL)",
    answer: async () => ({ headers: { "content-type": "text/plain" }, body: await fixtureBytes("errors-raw/012-response.body") }),
  },
  {
    name: "200 text/plain protocol error (recorded: expected command request frame)",
    answer: async () => ({ headers: { "content-type": "text/plain" }, body: await fixtureBytes("errors-raw/004-response.body") }),
  },
  { name: "200 text/plain carrying complete, valid frames", answer: (r) => ({ headers: { "content-type": "text/plain" }, body: r.body, chunks: r.chunks }) },
  { name: "200 application/json", answer: () => ({ headers: { "content-type": "application/json" }, body: text('{"error":"maintenance"}') }) },
  { name: "200 without a content type, carrying complete, valid frames", answer: (r) => ({ body: r.body, chunks: r.chunks }) },
  // Frames that say the command failed.
  { name: "error-response frame before output", v2Only: true, answer: () => ({ headers: { "content-type": FRAMING }, body: encodeErrorResponseFrame(1, "server", "boom") }) },
  {
    name: "error-response frame after output",
    v2Only: true,
    answer: () => ({ headers: { "content-type": FRAMING }, body: concatBytes([...partialOutput(encodeSequence([bytes("x".repeat(100))])), encodeErrorResponseFrame(1, "server", "boom", false)]) }),
  },
  { name: "command error {status: error} before output", v2Only: true, answer: () => ({ headers: { "content-type": FRAMING }, body: encodeCommandError(1, "unknown node: %s", ["01"]) }) },
  {
    name: "command error {status: error} after output",
    v2Only: true,
    answer: () => ({ headers: { "content-type": FRAMING }, body: concatBytes([...partialOutput(encodeSequence([bytes("x".repeat(100))])), encodeCommandError(1, "late", undefined, false)]) }),
  },
  { name: "a complete answer for another request id", v2Only: true, answer: (r) => ({ headers: { "content-type": FRAMING }, body: encodeOkResponse(3, encodeSequence([bytes("other")])), chunks: r.chunks }) },
  { name: "malformed frames", v2Only: true, answer: () => ({ headers: { "content-type": FRAMING }, body: new Uint8Array([0xff, 0xff, 0xff, 1, 0, 2, 1, 0x31, 1, 2, 3]) }) },
  { name: "an empty 200 body", answer: (r) => ({ headers: { "content-type": r.contentType }, body: new Uint8Array(0) }) },
  // The connection breaks mid-stream.
  ...BREAK_POINTS.map((p) => ({
    name: `connection reset ${p.name}`,
    v2Only: p.v2Only,
    answer: (r: Recorded): OriginAnswer => ({ headers: { "content-type": r.contentType }, body: r.body.slice(0, p.at(r.body)), chunks: r.chunks, then: "reset" }),
  })),
  // The origin sends its headers, then falls silent for good.
  ...BREAK_POINTS.filter((p) => ["right after the headers", "after the status frame", "after half the data"].includes(p.name)).map((p) => ({
    name: `body stalls ${p.name}`,
    v2Only: p.v2Only,
    answer: (r: Recorded): OriginAnswer => ({ headers: { "content-type": r.contentType }, body: r.body.slice(0, p.at(r.body)), chunks: r.chunks, then: "stall" }),
  })),
];

/** One case of the table, with the per-case timeout. */
function check(title: string, body: () => Promise<void>, timeout = TEST_TIMEOUT_MS): void {
  it(title, body, timeout);
}

// -------------------------------------------------------------------------------------------

describe("origin faults", () => {
  for (const route of ROUTES) {
    describe(route.name, () => {
      for (const fault of ORIGIN_FAULTS) {
        if (fault.v2Only && !route.v2) continue;
        check(`${route.name} › ${fault.name}`, async () => {
          const answer = await fault.answer(await recorded(route.fixture));
          const run = await exercise(route, { kind: "answer", answer });
          expectNothingEscaped(run);
          expectClientView(run.client, answer);
          // An edge that gave up on a silent origin must also let go of its connection.
          if (answer.then === "stall") expect(run.origin.cancelled, "the origin's body was not cancelled").toBe(true);
          await expectNothingStored(route, run.scope);
        });
      }

      // Faults before any response: the edge answers for the origin, quickly. A cacheable
      // command waits ORIGIN_CACHEABLE_TIMEOUT_MS for its headers, any other ORIGIN_TIMEOUT_MS.
      const headerLimit = route.cacheable ? "ORIGIN_CACHEABLE_TIMEOUT_MS" : "ORIGIN_TIMEOUT_MS";
      const noAnswer: [string, OriginBehaviour, 502 | 504, EdgeOptions["vars"]][] = [
        ["origin unreachable: 502", { kind: "unreachable" }, 502, {}],
        [`origin never sends its headers (${headerLimit}=50): 504`, { kind: "silent" }, 504, { ORIGIN_TIMEOUT_MS: "50", ORIGIN_CACHEABLE_TIMEOUT_MS: "50" }],
      ];
      for (const [name, behaviour, status, vars] of noAnswer) {
        check(`${route.name} › ${name}`, async () => {
          const started = Date.now();
          const run = await exercise(route, behaviour, { vars });
          expectNothingEscaped(run);
          expectCleanError(run.client, status);
          expect(Date.now() - started).toBeLessThan(1_000);
          await expectNothingStored(route, run.scope);
        });
      }

      // The client goes away mid-stream: nothing stored, and the origin's connection released.
      check(`${route.name} › client cancels after 3 of 20 chunks`, async () => {
        const r = await recorded(route.fixture);
        const answer: OriginAnswer = { headers: { "content-type": r.contentType }, body: r.body, chunks: [Math.ceil(r.body.length / 20)] };
        const run = await exercise(route, { kind: "answer", answer }, { cancelAfterChunks: 3 });
        expectNothingEscaped(run);
        expect(run.client.ending).toBe("cancelled");
        expectBytes(run.client.bytes, r.body.slice(0, run.client.bytes.length));
        expect(run.origin.cancelled, "the origin's body was not cancelled").toBe(true);
        await expectNothingStored(route, run.scope);
      });
    });
  }
});

// -------------------------------------------------------------------------------------------
// How long the origin may take to start answering

describe("header timeouts", () => {
  /** Longer than ORIGIN_TIMEOUT_MS below, far shorter than the default ORIGIN_CACHEABLE_TIMEOUT_MS. */
  const WORK_MS = 300;
  const shortLimit = { ORIGIN_TIMEOUT_MS: "50" };
  const bodyOf = (client: ClientView) => new TextDecoder().decode(client.bytes);

  for (const route of [MANIFESTDATA, FILESDATA]) {
    // A stock 5.x server sends a big filesdata answer's headers only once it has worked it all out.
    check(`${route.name} › headers later than ORIGIN_TIMEOUT_MS: answered and stored with the default ORIGIN_CACHEABLE_TIMEOUT_MS`, async () => {
      const r = await recorded(route.fixture);
      const answer: OriginAnswer = { headers: { "content-type": FRAMING }, body: r.body, chunks: r.chunks };
      const run = await exercise(route, { kind: "late", delayMs: WORK_MS, answer }, { vars: shortLimit });
      expectNothingEscaped(run);
      expectSameAsOrigin(run.client, answer);
      expect(run.client.headers?.get("x-hgedge-cache")).toBe("MISS");
      expect((await env.OBJECTS.list({ prefix: run.scope.prefix })).objects).toHaveLength(1);
    });

    check(`${route.name} › headers that never come: a clean 504 naming ORIGIN_CACHEABLE_TIMEOUT_MS`, async () => {
      const run = await exercise(route, { kind: "silent" }, { vars: { ...shortLimit, ORIGIN_CACHEABLE_TIMEOUT_MS: String(WORK_MS) } });
      expectNothingEscaped(run);
      expectCleanError(run.client, 504);
      expect(bodyOf(run.client)).toMatch(/ORIGIN_CACHEABLE_TIMEOUT_MS/);
      await expectNothingStored(route, run.scope);
    });
  }

  check(`${HEADS.name} › headers later than ORIGIN_TIMEOUT_MS: a clean 504 naming ORIGIN_TIMEOUT_MS (the longer limit is for cacheable commands only)`, async () => {
    const r = await recorded(HEADS.fixture);
    const answer: OriginAnswer = { headers: { "content-type": FRAMING }, body: r.body, chunks: r.chunks };
    const run = await exercise(HEADS, { kind: "late", delayMs: WORK_MS, answer }, { vars: shortLimit });
    expectNothingEscaped(run);
    expectCleanError(run.client, 504);
    expect(bodyOf(run.client)).toMatch(/\(ORIGIN_TIMEOUT_MS/);
  });
});

// -------------------------------------------------------------------------------------------
// Cut at every byte offset

describe("a recorded answer cut at every byte offset", () => {
  // Each cut is one request through the app, all in one scope: had any cut been committed, the
  // next request would be a HIT answered without the origin, so "every one is a MISS that reached
  // the origin" is the per-cut check that nothing was stored. The origin writes the prefix in the
  // recorded chunk sizes, then ends its body cleanly or resets the connection.
  const sweeps: { route: Route; then: "end" | "reset"; from?: number; to?: number; why?: string }[] = [
    { route: MANIFESTDATA, then: "end" },
    { route: MANIFESTDATA, then: "reset" },
    // The first frames are where the edge peeks at a filesdata answer (src/origin/retry.ts).
    { route: FILESDATA, then: "end", to: 100 },
    { route: FILESDATA, then: "reset", to: 17, why: "inside the first frame" },
    { route: FILESDATA, then: "reset", from: 17, to: 100 },
    { route: HEADS, then: "end" },
    { route: HEADS, then: "reset" },
  ];
  for (const { route, then, from = 0, to, why } of sweeps) {
    const ending = then === "end" ? "the origin's body ends cleanly" : "the origin's connection resets";
    const range = to === undefined ? "at every offset" : `at every offset in [${from}, ${to})${why ? `, ${why}` : ""}`;
    check(`${route.name} › ${ending} ${range}: the client gets exactly the prefix`, async () => {
      const r = await recorded(route.fixture);
      const scope = newScope();
      const end = Math.min(to ?? r.body.length, r.body.length);
      let originCalls = 0;
      // Hundreds of requests: their log lines (one per aborted fill) would bury the report.
      for (const method of ["log", "warn", "error"] as const) vi.spyOn(console, method).mockImplementation(() => undefined);
      onTestFinished(() => {
        vi.restoreAllMocks();
      });
      for (let cut = from; cut < end; cut++) {
        const answer: OriginAnswer = { headers: { "content-type": FRAMING }, body: r.body.slice(0, cut), chunks: r.chunks, then };
        const origin = scriptedOrigin({ kind: "answer", answer });
        const { fetch, settle } = edge({ scope, originFetch: origin.originFetch });
        const client = await observe(fetch(route.request(scope.repo)));
        const failures = await settle();
        originCalls += origin.log.calls;
        // One compact check per cut: a failure names the offset and what went wrong there.
        const cacheStatus = client.headers?.get("x-hgedge-cache");
        const problem =
          client.thrown !== undefined ? `an exception escaped app.fetch: ${String(client.thrown)}`
          : failures.length > 0 ? `waitUntil work rejected: ${String(failures[0])}`
          : client.ending === "hung" ? "the request did not end in time"
          : cacheStatus !== (route.cacheable ? "MISS" : "BYPASS") ? `x-hgedge-cache: ${cacheStatus}`
          : !bytesEqual(client.bytes, answer.body) ? `the client got ${client.bytes.length} bytes, not the ${cut}-byte prefix`
          : client.ending !== (then === "end" ? "end" : "cut") ? `the body ended with a ${client.ending}`
          : undefined;
        if (problem) expect.fail(`cut at byte ${cut}: ${problem}`);
      }
      expect(originCalls).toBe(end - from);
      await expectNothingStored(route, scope);
    }, 30_000);
  }
});

// -------------------------------------------------------------------------------------------
// R2 failures

interface R2Faults {
  put?: boolean;
  createMultipartUpload?: boolean;
  uploadPart?: boolean;
  complete?: boolean;
  head?: boolean;
  get?: boolean;
  /** get() finds nothing (the object was deleted since the head). */
  getNothing?: boolean;
  /** The body of every get() (or only of the first) errors after `bytes` bytes. */
  getBodyFails?: { after: number; reads: "every" | "first" };
}

/** env.OBJECTS with the given operations failing; the rest pass through to the real bucket. */
function faultyBucket(faults: R2Faults) {
  const log = { uploadsAborted: 0, gets: 0 };
  const fail = (operation: string) => () => Promise.reject(new Error(`R2 ${operation} failed (injected)`));
  const passThrough = <T extends object>(target: T, property: string | symbol) => {
    const value = Reflect.get(target, property) as unknown;
    return typeof value === "function" ? value.bind(target) : value;
  };
  const upload = (inner: R2MultipartUpload): R2MultipartUpload =>
    new Proxy(inner, {
      get(target, property) {
        if (property === "uploadPart" && faults.uploadPart) return fail("uploadPart");
        if (property === "complete" && faults.complete) return fail("complete");
        if (property === "abort") return () => ((log.uploadsAborted += 1), target.abort());
        return passThrough(target, property);
      },
    });
  const bucket = new Proxy(env.OBJECTS, {
    get(target, property) {
      if ((property === "put" || property === "createMultipartUpload" || property === "head" || property === "get") && faults[property]) return fail(property);
      if (property === "createMultipartUpload") return async (...args: Parameters<R2Bucket["createMultipartUpload"]>) => upload(await target.createMultipartUpload(...args));
      if (property === "get" && faults.getNothing) return async () => null;
      if (property === "get" && faults.getBodyFails) {
        const { after, reads } = faults.getBodyFails;
        return async (...args: Parameters<R2Bucket["get"]>) => {
          const object = await target.get(...args);
          log.gets += 1;
          if (!object || !("body" in object) || (reads === "first" && log.gets > 1)) return object;
          const body = failingAfter(object.body, after);
          return new Proxy(object, { get: (o, p) => (p === "body" ? body : passThrough(o, p)) });
        };
      }
      return passThrough(target, property);
    },
  });
  return { bucket, log };
}

/** `stream`'s first `limit` bytes, then an error. */
function failingAfter(stream: ReadableStream<Uint8Array>, limit: number): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent >= limit) {
        await reader.cancel();
        return controller.error(new Error("R2 read failed mid-body (injected)"));
      }
      const { done, value } = await reader.read();
      if (done) return controller.close();
      const piece = value.subarray(0, limit - sent);
      sent += piece.length;
      controller.enqueue(piece);
    },
  });
}

/** A manifestdata answer of ~10 MB: more than one 5 MiB part, so it goes up as a multipart upload. */
let bigAnswer: Uint8Array | undefined;
function multipartSized(): Uint8Array {
  bigAnswer ??= encodeOkResponse(1, encodeSequence([new Uint8Array(5_000_000).fill(7), new Uint8Array(5_000_000).fill(8)]));
  return bigAnswer;
}

describe("R2 failures while filling", () => {
  const cases: [string, R2Faults, () => Promise<Uint8Array> | Uint8Array][] = [
    ["put rejects", { put: true }, async () => (await recorded(MANIFESTDATA.fixture)).body],
    ["createMultipartUpload rejects", { createMultipartUpload: true }, multipartSized],
    ["uploadPart rejects", { uploadPart: true }, multipartSized],
    ["complete rejects", { complete: true }, multipartSized],
  ];
  for (const [name, faults, body] of cases) {
    check(`${MANIFESTDATA.name} › R2 ${name}: the client gets every byte, nothing is committed`, async () => {
      const answer: OriginAnswer = { headers: { "content-type": FRAMING }, body: await body(), chunks: [65536] };
      const { bucket, log } = faultyBucket(faults);
      const run = await exercise(MANIFESTDATA, { kind: "answer", answer }, { bucket });
      expectNothingEscaped(run);
      expectSameAsOrigin(run.client, answer);
      expect(run.client.headers?.get("x-hgedge-cache")).toBe("MISS");
      // A multipart upload that was started is aborted, not left for R2 to expire.
      if (faults.uploadPart || faults.complete) expect(log.uploadsAborted).toBe(1);
      await expectNothingStored(MANIFESTDATA, run.scope);
    });
  }
});

describe("R2 failures on a hit", () => {
  /** Fills the cache for `scope` through a healthy origin and the real bucket; the object's name. */
  async function warm(scope: Scope, body: Uint8Array): Promise<string> {
    const origin = scriptedOrigin({ kind: "answer", answer: { headers: { "content-type": FRAMING }, body } });
    const { fetch, settle } = edge({ scope, originFetch: origin.originFetch });
    await (await fetch(MANIFESTDATA.request(scope.repo))).arrayBuffer();
    expect(await settle()).toEqual([]);
    const objects = (await env.OBJECTS.list({ prefix: scope.prefix })).objects;
    expect(objects).toHaveLength(1);
    return objects[0]!.key;
  }

  // The object is there but R2 fails to describe it or to hand it over: the origin answers instead.
  const fallBacks: [string, R2Faults, string[] | undefined][] = [
    ["head rejects (the client accepts our redirect)", { head: true }, ["hgedge"]],
    ["head rejects (inline answer)", { head: true }, undefined],
    ["get rejects (inline answer)", { get: true }, undefined],
    ["get finds nothing after the head found it (inline answer)", { getNothing: true }, undefined],
  ];
  for (const [name, faults, targets] of fallBacks) {
    check(`${MANIFESTDATA.name} › R2 ${name}: the client gets the origin's answer`, async () => {
      const r = await recorded(MANIFESTDATA.fixture);
      const scope = newScope();
      await warm(scope, r.body);
      const answer: OriginAnswer = { headers: { "content-type": FRAMING }, body: r.body, chunks: r.chunks };
      const origin = scriptedOrigin({ kind: "answer", answer });
      const { fetch, settle } = edge({ scope, originFetch: origin.originFetch, bucket: faultyBucket(faults).bucket });
      const client = await observe(fetch(v2Request(scope.repo, "manifestdata", manifestdataArgs(), targets)));
      expectNothingEscaped({ client, backgroundFailures: await settle() });
      expectSameAsOrigin(client, answer);
      expect(origin.log.calls).toBe(1);
    });
  }

  check(`${MANIFESTDATA.name} › R2 body fails mid-read on an inline hit: a cut, never a clean end`, async () => {
    const r = await recorded(MANIFESTDATA.fixture);
    const scope = newScope();
    await warm(scope, r.body);
    const origin = scriptedOrigin({ kind: "answer", answer: { headers: { "content-type": FRAMING }, body: r.body } });
    const { fetch, settle } = edge({ scope, originFetch: origin.originFetch, bucket: faultyBucket({ getBodyFails: { after: 100, reads: "every" } }).bucket });
    const client = await observe(fetch(MANIFESTDATA.request(scope.repo)));
    expectNothingEscaped({ client, backgroundFailures: await settle() });
    expect(client.headers?.get("x-hgedge-cache")).toBe("HIT");
    // Bytes are already on their way: the only honest answer left is to break the stream.
    expect(client.ending).toBe("cut");
  });

  describe("the content route", () => {
    const objectUrl = (name: string) => `${EDGE}/.hgedge/objects/${name.split("/").map(encodeURIComponent).join("/")}`;
    const nowhere = () => scriptedOrigin({ kind: "unreachable" }).originFetch;

    const unavailable: [string, string, R2Faults, HeadersInit][] = [
      ["GET, get rejects", "GET", { get: true }, {}],
      ["HEAD, head rejects", "HEAD", { head: true }, {}],
      ["GET with Range, head rejects", "GET", { head: true }, { range: "bytes=0-9" }],
    ];
    for (const [name, method, faults, headers] of unavailable) {
      check(`content route › ${name}: 503 with a one-line reason`, async () => {
        const scope = newScope();
        const key = await warm(scope, (await recorded(MANIFESTDATA.fixture)).body);
        const { fetch, settle } = edge({ scope, originFetch: nowhere(), bucket: faultyBucket(faults).bucket });
        const client = await observe(fetch(new Request(objectUrl(key), { method, headers })));
        expectNothingEscaped({ client, backgroundFailures: await settle() });
        expect(client.status).toBe(503);
        if (method === "GET") expect(new TextDecoder().decode(client.bytes)).toMatch(/^[^\n]+\n$/);
      });
    }

    // A transient R2 failure while the bytes stream: the client gets a 503 or a cut, never a
    // clean end; the object is not condemned for it; and no partial copy outlives the failure
    // (the PoP cache in front of R2 included): the next GET, with R2 healthy, gets it whole.
    const midBody: [string, "every" | "first"][] = [
      ["every R2 read of the object fails after 100 bytes", "every"],
      ["the first R2 read of the object fails after 100 bytes, later ones succeed", "first"],
    ];
    for (const [name, reads] of midBody) {
      check(`content route › GET, ${name}: a 503 or a cut, the object stays, the next GET gets it whole`, async () => {
        const scope = newScope();
        const key = await warm(scope, (await recorded(MANIFESTDATA.fixture)).body);
        const stored = new Uint8Array(await (await env.OBJECTS.get(key))!.arrayBuffer());
        const faulty = edge({ scope, originFetch: nowhere(), bucket: faultyBucket({ getBodyFails: { after: 100, reads } }).bucket });
        const client = await observe(faulty.fetch(new Request(objectUrl(key))));
        expectNothingEscaped({ client, backgroundFailures: await faulty.settle() });
        if (client.status === 503) expect(new TextDecoder().decode(client.bytes)).toMatch(/^[^\n]+\n$/);
        else expect([client.status, client.ending]).toEqual([200, "cut"]);
        expect(await env.OBJECTS.head(key), "a read failure condemned the object").not.toBeNull();
        const healthy = edge({ scope, originFetch: nowhere() });
        const again = await observe(healthy.fetch(new Request(objectUrl(key))));
        expect(again.status).toBe(200);
        expectBytes(again.bytes, stored);
        expect(again.ending).toBe("end");
      });
    }
  });
});

