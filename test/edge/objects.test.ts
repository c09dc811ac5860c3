/**
 * The content route against the real local R2 bucket (env.OBJECTS) and the real Cache API,
 * inside workerd: what a client that follows a content redirect gets back, status by status.
 */
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { objectPath } from "../../src/cache/urls.ts";
import { OBJECTS_ROUTE_PREFIX, objectNameFromPath } from "../../src/cache/names.ts";
import { VerifiedObjects } from "../../src/cache/objects.ts";
import { handleObjectRequest, type ObjectRouteOptions } from "../../src/edge/objects.ts";

const EDGE = "http://edge.test";
const CBOR = "application/mercurial-cbor";

let counter = 0;

async function hexDigest(algorithm: "SHA-256" | "SHA-1", bytes: Uint8Array): Promise<string> {
  return [...new Uint8Array(await crypto.subtle.digest(algorithm, bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function streamSha256(stream: ReadableStream<Uint8Array>): Promise<string> {
  const digest = new crypto.DigestStream("SHA-256");
  await stream.pipeTo(digest);
  return [...new Uint8Array(await digest.digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A fresh 64-hex cache key, so that tests never share an object. */
const freshKey = () => hexDigest("SHA-256", new TextEncoder().encode(`objects-test-${Date.now()}-${counter++}`));

/** Bytes that any compressor would shrink a lot: a compressed answer could not pass for them. */
function compressible(size: number): Uint8Array {
  const line = new TextEncoder().encode("manifestdata: the same line again and again\n");
  return Uint8Array.from({ length: size }, (_, i) => line[i % line.length] as number);
}

interface Stored {
  name: string;
  url: string;
  bytes: Uint8Array;
  sha256: string;
  etag: string;
}

/** Puts an object as the cache writes it: content type and the documented custom metadata. */
async function putObject(
  bytes: Uint8Array,
  options: { repo?: string; command?: string; metadata?: Record<string, string | undefined> } = {},
): Promise<Stored> {
  const command = options.command ?? "filesdata";
  const name = `${options.repo ?? "team/project"}/${command}/${await freshKey()}`;
  const sha256 = await hexDigest("SHA-256", bytes);
  const metadata: Record<string, string | undefined> = {
    size: String(bytes.length),
    sha256,
    sha1: await hexDigest("SHA-1", bytes),
    command,
    createdAt: new Date().toISOString(),
    keyFormat: "1",
    ...options.metadata,
  };
  const customMetadata = Object.fromEntries(Object.entries(metadata).filter(([, v]) => v !== undefined)) as Record<string, string>;
  await env.OBJECTS.put(name, bytes, { httpMetadata: { contentType: CBOR }, customMetadata });
  return { name, url: `${EDGE}${OBJECTS_ROUTE_PREFIX}${objectPath(name)}`, bytes, sha256, etag: `"${sha256}"` };
}

/** env.OBJECTS with a record of every call the route makes. */
function spiedBucket(inner: R2Bucket = env.OBJECTS) {
  const calls: { method: "head" | "get" | "delete"; args: unknown[] }[] = [];
  const bucket = {
    head: (...args: Parameters<R2Bucket["head"]>) => (calls.push({ method: "head", args }), inner.head(...args)),
    get: (...args: Parameters<R2Bucket["get"]>) => (calls.push({ method: "get", args }), inner.get(...args)),
    delete: (...args: Parameters<R2Bucket["delete"]>) => (calls.push({ method: "delete", args }), inner.delete(...args)),
  } as unknown as R2Bucket;
  return { bucket, calls };
}

/** One memory of verified objects for the whole file, as an isolate has one (every test's objects are fresh). */
const verified = new VerifiedObjects();

function serve(url: string, init: RequestInit = {}, options: Partial<ObjectRouteOptions> = {}, bucket: R2Bucket = env.OBJECTS) {
  return handleObjectRequest(new Request(url, init), bucket, { verified, ...options });
}

const bytesOf = async (response: Response) => new Uint8Array(await response.arrayBuffer());

/** The body is exactly `expected` (compared by hash: vitest's deep equality is slow on big arrays). */
async function expectBody(response: Response, expected: Uint8Array): Promise<void> {
  const body = await bytesOf(response);
  expect(body.length).toBe(expected.length);
  expect(await hexDigest("SHA-256", body)).toBe(await hexDigest("SHA-256", expected));
}
const sample = () => compressible(1000);

/** The JSON lines a console method was called with. */
function loggedLines(spy: { mock: { calls: unknown[][] } }): Record<string, unknown>[] {
  return spy.mock.calls.map((call) => JSON.parse(String(call[0])) as Record<string, unknown>);
}

async function expectOneLineText(response: Response, status: number): Promise<string> {
  expect(response.status).toBe(status);
  expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
  expect(response.headers.get("cache-control")).toBe("no-store");
  const body = await response.text();
  expect(body).toMatch(/^hgedge: [^\n]+\n$/);
  return body;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("GET", () => {
  it("streams the stored bytes with the object's headers", async () => {
    const object = await putObject(sample());
    const response = await serve(object.url);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe(CBOR);
    expect(response.headers.get("content-length")).toBe(String(object.bytes.length));
    expect(response.headers.get("etag")).toBe(object.etag);
    expect(response.headers.get("cache-control")).toMatch(/^public, max-age=31536000, immutable\b/);
    expect(response.headers.get("accept-ranges")).toBe("bytes");
    expect(response.headers.get("x-hgedge-cache")).toBe("HIT");
    expect(response.headers.get("x-hgedge-pop")).toBeNull();
    expect(response.headers.get("content-encoding")).toBeNull();
    await expectBody(response, object.bytes);
  });

  it("serves the root repository's objects (.root) and repository paths that need escaping", async () => {
    for (const repo of [".root", "team/pro ject", "ünï/cödé%/x?y#z", "a+b/c;d=e"]) {
      const object = await putObject(sample(), { repo });
      const response = await serve(object.url);
      expect(response.status, repo).toBe(200);
      await expectBody(response, object.bytes);
    }
  });

  it("streams a 10 MiB object intact", async () => {
    const bytes = Uint8Array.from({ length: 10 * 1024 * 1024 }, (_, i) => (i * 31 + (i >> 12)) % 251);
    const object = await putObject(bytes, { command: "manifestdata" });
    const response = await serve(object.url);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-length")).toBe(String(bytes.length));
    expect(await streamSha256(response.body as ReadableStream<Uint8Array>)).toBe(object.sha256);
  });

  it("never applies a content coding, even to a client that offers gzip", async () => {
    const object = await putObject(compressible(64 * 1024));
    for (const acceptEncoding of ["gzip", "gzip, deflate, br, zstd", "identity"]) {
      const response = await serve(object.url, { headers: { "accept-encoding": acceptEncoding } });
      expect(response.headers.get("content-encoding")).toBeNull();
      expect(response.headers.get("cache-control")).toContain("no-transform");
      await expectBody(response, object.bytes);
    }
  });

  it("serves an object without size and sha256 metadata (a multipart write) on R2's own entity tag", async () => {
    const object = await putObject(sample(), { metadata: { size: undefined, sha256: undefined, sha1: undefined } });
    const stored = await env.OBJECTS.head(object.name);
    const response = await serve(object.url);
    expect(response.status).toBe(200);
    expect(response.headers.get("etag")).toBe(stored?.httpEtag);
    await expectBody(response, object.bytes);
  });
});

describe("HEAD", () => {
  it("answers the GET headers without a body", async () => {
    const object = await putObject(sample());
    const { bucket, calls } = spiedBucket();
    const response = await serve(object.url, { method: "HEAD" }, undefined, bucket);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe(CBOR);
    expect(response.headers.get("content-length")).toBe(String(object.bytes.length));
    expect(response.headers.get("etag")).toBe(object.etag);
    expect(response.headers.get("accept-ranges")).toBe("bytes");
    expect(response.headers.get("x-hgedge-cache")).toBe("HIT");
    expect(response.body).toBeNull();
    expect(calls.map((c) => c.method)).toEqual(["head"]); // the bytes are not even read
  });

  it("ignores Range (range handling is defined for GET only)", async () => {
    const object = await putObject(sample());
    const response = await serve(object.url, { method: "HEAD", headers: { range: "bytes=0-9" } });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-length")).toBe(String(object.bytes.length));
    expect(response.headers.get("content-range")).toBeNull();
  });
});

describe("If-None-Match (RFC 9110 §13.1.2)", () => {
  async function expectNotModified(response: Response, object: Stored) {
    expect(response.status).toBe(304);
    expect(response.headers.get("etag")).toBe(object.etag);
    expect(response.headers.get("cache-control")).toMatch(/^public, max-age=31536000, immutable\b/);
    expect(response.body).toBeNull();
  }

  it("answers 304 to the entity tag, its weak form, a list holding it and *, reading no bytes", async () => {
    const object = await putObject(sample());
    for (const field of [object.etag, `W/${object.etag}`, `"nope", W/"other", ${object.etag}`, `"a",${object.etag}`, "*"]) {
      const { bucket, calls } = spiedBucket();
      await expectNotModified(await serve(object.url, { headers: { "if-none-match": field } }, undefined, bucket), object);
      expect(calls.map((c) => c.method), field).toEqual(["head"]);
    }
  });

  it("answers 304 to HEAD and to a range request too", async () => {
    const object = await putObject(sample());
    await expectNotModified(await serve(object.url, { method: "HEAD", headers: { "if-none-match": object.etag } }), object);
    await expectNotModified(await serve(object.url, { headers: { "if-none-match": object.etag, range: "bytes=0-1" } }), object);
  });

  it("sends the object when no tag matches", async () => {
    const object = await putObject(sample());
    for (const field of [`"${"0".repeat(64)}"`, `W/"x", "y"`, object.sha256 /* unquoted: not an entity tag */]) {
      const response = await serve(object.url, { headers: { "if-none-match": field } });
      expect(response.status, field).toBe(200);
      await expectBody(response, object.bytes);
    }
  });

  it("answers 404, not 304, to * when there is no object", async () => {
    const url = `${EDGE}${OBJECTS_ROUTE_PREFIX}team/project/filesdata/${await freshKey()}`;
    expect((await serve(url, { headers: { "if-none-match": "*" } })).status).toBe(404);
  });
});

describe("Range (RFC 9110 §14)", () => {
  const bytes = Uint8Array.from({ length: 100 }, (_, i) => i);

  async function expectPartial(response: Response, first: number, last: number) {
    expect(response.status).toBe(206);
    expect(response.headers.get("content-range")).toBe(`bytes ${first}-${last}/${bytes.length}`);
    expect(response.headers.get("content-length")).toBe(String(last - first + 1));
    expect(response.headers.get("content-type")).toBe(CBOR);
    expect(response.headers.get("accept-ranges")).toBe("bytes");
    expect(response.headers.get("x-hgedge-cache")).toBe("HIT");
    await expectBody(response, bytes.slice(first, last + 1));
  }

  it("answers bytes=a-b, a- and -n with 206 and only those bytes, read as a range from R2", async () => {
    const object = await putObject(bytes);
    const cases: [string, number, number][] = [
      ["bytes=10-19", 10, 19],
      ["bytes=0-0", 0, 0],
      ["bytes=90-", 90, 99],
      ["bytes=-5", 95, 99],
      ["bytes=95-1000", 95, 99], // last-pos past the end: up to the end
      ["bytes=-1000", 0, 99], // suffix longer than the object: all of it
      ["BYTES = 1-2", 1, 2], // the unit is case-insensitive; whitespace around "="
      ["bytes=,3-4,", 3, 4], // empty list elements do not count
    ];
    for (const [field, first, last] of cases) {
      const { bucket, calls } = spiedBucket();
      await expectPartial(await serve(object.url, { headers: { range: field } }, undefined, bucket), first, last);
      // (A first read of the whole object in an isolate verifies its hash; the range read is last.)
      const get = calls.filter((c) => c.method === "get").at(-1);
      expect((get?.args[1] as R2GetOptions).range, field).toEqual({ offset: first, length: last - first + 1 });
    }
  });

  it("answers 416 with Content-Range: bytes */size to an unsatisfiable range, reading nothing", async () => {
    const object = await putObject(bytes);
    for (const field of ["bytes=100-", "bytes=100-200", "bytes=-0"]) {
      const { bucket, calls } = spiedBucket();
      const response = await serve(object.url, { headers: { range: field } }, undefined, bucket);
      expect(response.status, field).toBe(416);
      expect(response.headers.get("content-range")).toBe(`bytes */${bytes.length}`);
      expect(calls.map((c) => c.method)).toEqual(["head"]);
      await response.body?.cancel();
    }
  });

  it("serves the whole object for several ranges, other units and invalid range sets", async () => {
    const object = await putObject(bytes);
    for (const field of ["bytes=0-1,5-6", "bytes=0-1, -3", "items=0-1", "bytes=5-2", "bytes=a-b", "bytes=-", "bytes=1-2-3", "bytes="]) {
      const response = await serve(object.url, { headers: { range: field } });
      expect(response.status, field).toBe(200);
      expect(response.headers.get("content-range")).toBeNull();
      await expectBody(response, bytes);
    }
  });

  it("honours Range when If-Range holds the strong entity tag, and serves it all otherwise", async () => {
    const object = await putObject(bytes);
    await expectPartial(await serve(object.url, { headers: { range: "bytes=0-9", "if-range": object.etag } }), 0, 9);
    for (const ifRange of [`"${"0".repeat(64)}"`, `W/${object.etag}`, "Wed, 21 Oct 2015 07:28:00 GMT", object.sha256]) {
      const response = await serve(object.url, { headers: { range: "bytes=0-9", "if-range": ifRange } });
      expect(response.status, ifRange).toBe(200);
      await expectBody(response, bytes);
    }
  });

  it("answers 404 to a range of a missing object", async () => {
    const url = `${EDGE}${OBJECTS_ROUTE_PREFIX}team/project/filesdata/${await freshKey()}`;
    await expectOneLineText(await serve(url, { headers: { range: "bytes=0-1" } }), 404);
  });
});

describe("errors", () => {
  it("answers 404 (one line, no-store) to a missing object", async () => {
    const url = `${EDGE}${OBJECTS_ROUTE_PREFIX}team/project/filesdata/${await freshKey()}`;
    await expectOneLineText(await serve(url), 404);
    await expectOneLineText(await serve(url, { method: "HEAD" }), 404);
  });

  it("answers 404 to paths that are not object names, without asking R2", async () => {
    const key = await freshKey();
    const paths = [
      `${OBJECTS_ROUTE_PREFIX}team/%2e%2e/filesdata/${key}`, // normalised away by the URL parser: two segments left
      `${OBJECTS_ROUTE_PREFIX}..%2Fsecret/filesdata/${key}`,
      `${OBJECTS_ROUTE_PREFIX}team%2Fproject/filesdata/${key}`,
      `${OBJECTS_ROUTE_PREFIX}team//filesdata/${key}`,
      `${OBJECTS_ROUTE_PREFIX}team/.hg/filesdata/${key}`,
      `${OBJECTS_ROUTE_PREFIX}filesdata/${key}`,
      `${OBJECTS_ROUTE_PREFIX}team/filesdata/${key.toUpperCase()}`,
      `${OBJECTS_ROUTE_PREFIX}team/filesdata/${key.slice(1)}`,
      `${OBJECTS_ROUTE_PREFIX}team/filesdata/${key}/`,
      `${OBJECTS_ROUTE_PREFIX}team/%ff/filesdata/${key}`,
      `/.hgedge/other/team/filesdata/${key}`,
    ];
    for (const path of paths) {
      const { bucket, calls } = spiedBucket();
      await expectOneLineText(await serve(`${EDGE}${path}`, {}, undefined, bucket), 404);
      expect(calls, path).toEqual([]);
    }
  });

  it("does not let an encoded slash reach an object whose name has a real one", async () => {
    const object = await putObject(sample(), { repo: "a/b" });
    expect((await serve(object.url)).status).toBe(200);
    await expectOneLineText(await serve(object.url.replace("/a/b/", "/a%2Fb/")), 404);
  });

  it("answers 405 with Allow: GET, HEAD to other methods", async () => {
    const object = await putObject(sample());
    for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
      const response = await serve(object.url, { method, ...(method === "POST" || method === "PUT" ? { body: "x" } : {}) });
      await expectOneLineText(response, 405);
      expect(response.headers.get("allow")).toBe("GET, HEAD");
    }
    expect(await env.OBJECTS.head(object.name)).not.toBeNull();
  });

  it("deletes an object whose stored size disagrees with its metadata, answers 404 and logs an error", async () => {
    for (const init of [{}, { method: "HEAD" }, { headers: { range: "bytes=0-1" } }] as RequestInit[]) {
      const error = vi.spyOn(console, "error").mockImplementation(() => undefined);
      const object = await putObject(sample(), { metadata: { size: String(sample().length + 1) } });
      await expectOneLineText(await serve(object.url, init), 404);
      expect(await env.OBJECTS.head(object.name)).toBeNull();
      const lines = loggedLines(error);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ level: "error", event: "object-corrupt", name: object.name, problem: "size 1000, metadata says 1001" });
      vi.restoreAllMocks();
    }
  });

  it("deletes rather than serves an object whose bytes do not hash to its stored sha256", async () => {
    for (const init of [{}, { headers: { range: "bytes=0-1" } }] as RequestInit[]) {
      const error = vi.spyOn(console, "error").mockImplementation(() => undefined);
      const object = await putObject(sample(), { metadata: { sha256: "0".repeat(64) } });
      await expectOneLineText(await serve(object.url, init), 404);
      expect(await env.OBJECTS.head(object.name)).toBeNull();
      expect(loggedLines(error)[0]).toMatchObject({ event: "object-corrupt", problem: "bytes do not hash to the stored sha256" });
      vi.restoreAllMocks();
    }
  });

  it("answers 503 with Retry-After when R2 fails, and logs it", async () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => undefined);
    const failing = {
      head: () => Promise.reject(new Error("R2 is down (10001)")),
      get: () => Promise.reject(new Error("R2 is down (10001)")),
      delete: () => Promise.reject(new Error("R2 is down (10001)")),
    } as unknown as R2Bucket;
    const url = `${EDGE}${OBJECTS_ROUTE_PREFIX}team/project/filesdata/${await freshKey()}`;
    for (const init of [{}, { method: "HEAD" }, { headers: { range: "bytes=0-1" } }] as RequestInit[]) {
      const response = await serve(url, init, undefined, failing);
      await expectOneLineText(response, 503);
      expect(response.headers.get("retry-after")).toBe("1");
    }
    const lines = loggedLines(error);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatchObject({ level: "error", event: "r2-failure", error: "Error: R2 is down (10001)" });
  });
});

describe("verified objects", () => {
  const getsOf = (calls: { method: string }[]) => calls.filter((c) => c.method === "get").length;

  it("hashes an object on its first GET only: the next one, sharing the memory, reads it once", async () => {
    const object = await putObject(sample());
    const memory = new VerifiedObjects();
    const first = spiedBucket();
    await expectBody(await serve(object.url, {}, { verified: memory }, first.bucket), object.bytes);
    expect(getsOf(first.calls)).toBe(2); // the bytes served, and a second read to hash them
    const second = spiedBucket();
    await expectBody(await serve(object.url, {}, { verified: memory }, second.bucket), object.bytes);
    expect(getsOf(second.calls)).toBe(1);
    // Another memory (another isolate) checks for itself.
    const elsewhere = spiedBucket();
    await expectBody(await serve(object.url, {}, { verified: new VerifiedObjects() }, elsewhere.bucket), object.bytes);
    expect(getsOf(elsewhere.calls)).toBe(2);
  });

  it("keys on the R2 entity tag: an object written again under its name is hashed again", () => {
    const memory = new VerifiedObjects();
    memory.remember({ key: "repo/filesdata/k", etag: "one" });
    expect(memory.has({ key: "repo/filesdata/k", etag: "one" })).toBe(true);
    expect(memory.has({ key: "repo/filesdata/k", etag: "two" })).toBe(false);
  });

  it("starts over when full rather than growing without bound", () => {
    const memory = new VerifiedObjects(2);
    const object = (key: string) => ({ key, etag: "e" });
    memory.remember(object("a"));
    memory.remember(object("b"));
    expect(memory.size).toBe(2);
    memory.remember(object("c"));
    expect(memory.size).toBe(1);
    expect(memory.has(object("a"))).toBe(false);
    expect(memory.has(object("c"))).toBe(true);
  });
});

describe("PoP cache", () => {
  async function popCache(): Promise<Cache> {
    return caches.open(`objects-test-${Date.now()}-${counter++}`);
  }

  it("answers the second GET from the PoP cache without touching R2 (waitUntil)", async () => {
    const object = await putObject(compressible(256 * 1024));
    const cache = await popCache();
    const pending: Promise<unknown>[] = [];
    const options: Partial<ObjectRouteOptions> = { cache, waitUntil: (promise) => void pending.push(promise) };

    const first = await serve(object.url, {}, options);
    expect(first.headers.get("x-hgedge-pop")).toBe("MISS");
    await expectBody(first, object.bytes);
    expect(pending).toHaveLength(1);
    await Promise.all(pending);

    const { bucket, calls } = spiedBucket();
    const second = await serve(object.url, { headers: { "accept-encoding": "gzip" } }, options, bucket);
    expect(second.status).toBe(200);
    expect(second.headers.get("x-hgedge-pop")).toBe("HIT");
    expect(second.headers.get("x-hgedge-cache")).toBe("HIT");
    expect(second.headers.get("etag")).toBe(object.etag);
    expect(second.headers.get("content-type")).toBe(CBOR);
    expect(second.headers.get("content-encoding")).toBeNull();
    await expectBody(second, object.bytes);
    expect(calls).toEqual([]);
  });

  it("awaits the cache write inline without waitUntil, and keys on the object alone", async () => {
    const object = await putObject(sample());
    const cache = await popCache();
    const first = await serve(object.url, {}, { cache });
    expect(first.headers.get("x-hgedge-pop")).toBe("MISS");
    await expectBody(first, object.bytes);
    // Another spelling of the same object (a query, a needlessly escaped letter) shares the entry.
    const respelled = `${object.url.replace("/team/", "/t%65am/")}?cache-buster=1`;
    const { bucket, calls } = spiedBucket();
    const second = await serve(respelled, {}, { cache }, bucket);
    expect(second.headers.get("x-hgedge-pop")).toBe("HIT");
    await expectBody(second, object.bytes);
    expect(calls).toEqual([]);
  });

  it("leaves range and conditional requests to R2, and caches no errors", async () => {
    const object = await putObject(sample());
    const cache = await popCache();
    const ranged = await serve(object.url, { headers: { range: "bytes=0-1" } }, { cache });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get("x-hgedge-pop")).toBeNull();
    await expectBody(ranged, object.bytes.slice(0, 2));
    const conditional = await serve(object.url, { headers: { "if-none-match": object.etag } }, { cache });
    expect(conditional.status).toBe(304);
    expect(conditional.headers.get("x-hgedge-pop")).toBeNull();
    expect(await cache.match(object.url)).toBeUndefined();

    const missing = `${EDGE}${OBJECTS_ROUTE_PREFIX}team/project/filesdata/${await freshKey()}`;
    await expectOneLineText(await serve(missing, {}, { cache }), 404);
    expect(await cache.match(missing)).toBeUndefined();
  });
});

describe("objectNameFromPath", () => {
  const key = "ab".repeat(32);

  it("returns the percent-decoded name of a content-route path", () => {
    expect(objectNameFromPath(`/.hgedge/objects/team/project/manifestdata/${key}`)).toBe(`team/project/manifestdata/${key}`);
    expect(objectNameFromPath(`/.hgedge/objects/.root/filesdata/${key}`)).toBe(`.root/filesdata/${key}`);
    expect(objectNameFromPath(`/.hgedge/objects/repo/filedata/${key}`)).toBe(`repo/filedata/${key}`);
    expect(objectNameFromPath(`/.hgedge/objects/pro%20ject/%C3%A9t%C3%A9/filesdata/${key}`)).toBe(`pro ject/été/filesdata/${key}`);
    expect(objectNameFromPath(`/.hgedge/objects/a.b/c..d/filesdata/${key}`)).toBe(`a.b/c..d/filesdata/${key}`);
  });

  it("inverts objectPath, the way redirect URLs are built", () => {
    for (const repo of [".root", "team/project", "a b/c%d/e?f#g", "ü/x+y", "semi;colon/comma,"]) {
      const name = `${repo}/filesdata/${key}`;
      expect(objectNameFromPath(`${OBJECTS_ROUTE_PREFIX}${objectPath(name)}`)).toBe(name);
    }
  });

  it("names clone bundles under .bundles/<repository>/ and nothing else there", () => {
    const file = "20260702T101500Z-0123456789abcdef.hg";
    expect(objectNameFromPath(`/.hgedge/objects/.bundles/.root/${file}`)).toBe(`.bundles/.root/${file}`);
    expect(objectNameFromPath(`/.hgedge/objects/.bundles/team/pro%20ject/${file}`)).toBe(`.bundles/team/pro ject/${file}`);
    for (const refused of [
      `/.hgedge/objects/.bundles/${file}`, // no repository
      `/.hgedge/objects/.bundles/.root/current.json`,
      `/.hgedge/objects/.bundles/.root/team/${file}`,
      `/.hgedge/objects/.bundles/team/../${file}`,
      `/.hgedge/objects/.bundles/team/%2F/${file}`,
      `/.hgedge/objects/.bundles/team//${file}`,
      `/.hgedge/objects/.bundles/team/${file.replace(".hg", ".txt")}`,
      `/.hgedge/objects/.bundles/team/manifestdata/${key}`,
    ]) {
      expect(objectNameFromPath(refused), refused).toBeUndefined();
    }
  });

  it("refuses everything else", () => {
    const refused = [
      `/other/team/filesdata/${key}`,
      `/.hgedge/objects`,
      `/.hgedge/objects/`,
      `/.hgedge/objects/filesdata/${key}`, // no repository
      `/.hgedge/objects/team/../filesdata/${key}`,
      `/.hgedge/objects/../team/filesdata/${key}`,
      `/.hgedge/objects/team/./filesdata/${key}`,
      `/.hgedge/objects/team/%2E%2E/filesdata/${key}`,
      `/.hgedge/objects/team/%2e/filesdata/${key}`,
      `/.hgedge/objects/team/.hg/filesdata/${key}`,
      `/.hgedge/objects/team/.root/filesdata/${key}`, // .root only as the whole repository
      `/.hgedge/objects/.root/x/filesdata/${key}`,
      `/.hgedge/objects/team%2Fproject/filesdata/${key}`,
      `/.hgedge/objects/team%2fproject/filesdata/${key}`,
      `/.hgedge/objects/team%5Cproject/filesdata/${key}`,
      `/.hgedge/objects/team%00/filesdata/${key}`,
      `/.hgedge/objects/team//filesdata/${key}`,
      `/.hgedge/objects//team/filesdata/${key}`,
      `/.hgedge/objects/team/filesdata/${key}/`,
      `/.hgedge/objects/team/filesdata/`,
      `/.hgedge/objects/team/filesdata/${key.slice(2)}`,
      `/.hgedge/objects/team/filesdata/${key}00`,
      `/.hgedge/objects/team/filesdata/${key.toUpperCase()}`,
      `/.hgedge/objects/team/filesdata/${"g".repeat(64)}`,
      `/.hgedge/objects/team/%E0%A4%A/filesdata/${key}`, // malformed escape
      `/.hgedge/objects/team/%FF/filesdata/${key}`, // not UTF-8
      `/.hgedge/objects/${"r".repeat(1000)}/filesdata/${key}`, // longer than an R2 key
    ];
    for (const path of refused) expect(objectNameFromPath(path), path).toBeUndefined();
  });
});
