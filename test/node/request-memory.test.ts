/**
 * The memory a request costs before any access check: parsing its body, normalising its
 * arguments and deriving its cache key, for the worst bodies the limits allow. Measured as the
 * growth of the V8 heap plus array buffers (after full collections) while the results are held,
 * on src/protocol and src/cache code run in Node. The bound is stated in SECURITY.md.
 */
import v8 from "node:v8";
import vm from "node:vm";
import { describe, expect, it } from "vitest";
import { cacheKey, cacheability } from "../../src/cache/keys.ts";
import { bytes, cborMap, type CborMap, type CborValue } from "../../src/protocol/cbor.ts";
import { ProtocolError } from "../../src/protocol/errors.ts";
import { DEFAULT_REQUEST_LIMITS, encodeRequestBody, parseRequestBody } from "../../src/protocol/requests.ts";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

/** The bound this test holds every worst case to (SECURITY.md states it). */
const REQUEST_MEMORY_BOUND_BYTES = 32 * 1024 * 1024;

const { maxItems, maxRequestBytes } = DEFAULT_REQUEST_LIMITS;

function used(): number {
  gc();
  gc();
  const memory = process.memoryUsage();
  return memory.heapUsed + memory.arrayBuffers;
}

/** Everything the edge does with a v2 request body before it asks anyone anything. */
async function handle(body: Uint8Array): Promise<unknown> {
  const parsed = parseRequestBody(body, DEFAULT_REQUEST_LIMITS);
  const verdict = cacheability(parsed, "/repo", "ro", parsed.commands[0]?.name ?? "");
  const key = verdict.cacheable ? await cacheKey({ origin: "http://origin/", cacheVersion: "1" }, verdict.request) : undefined;
  return [parsed, verdict, key];
}

async function measure(body: Uint8Array): Promise<{ grown: number; outcome: string }> {
  const before = used();
  let kept: unknown;
  let outcome = "parsed";
  try {
    kept = await handle(body);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    outcome = `refused: ${error.message}`;
  }
  const grown = used() - before;
  expect(kept === undefined || kept !== null).toBe(true); // held until measured
  return { grown, outcome };
}

/** A node-like 20-byte string, distinct for each i. */
function node(i: number): Uint8Array {
  const b = new Uint8Array(20);
  new DataView(b.buffer).setUint32(0, i);
  b[19] = 0xaa;
  return b;
}

const manifest = (args: Record<string, CborValue>) => encodeRequestBody([{ name: "manifestdata", args: cborMap({ tree: new Uint8Array(0), ...args }) }], ["identity"]);

/** Fills the item budget (less room for the request's own few items). */
const ITEMS = maxItems - 32;

const worst: [string, () => Uint8Array][] = [
  ["a stock 100 000-node manifestdata batch", () => manifest({ nodes: Array.from({ length: 100_000 }, (_, i) => node(i)), fields: new Set([bytes("parents"), bytes("revision")]), haveparents: true })],
  ["nodes up to the item budget", () => manifest({ nodes: Array.from({ length: ITEMS }, (_, i) => node(i)) })],
  ["empty byte strings up to the item budget", () => manifest({ nodes: Array.from({ length: ITEMS }, () => new Uint8Array(0)) })],
  ["a set of distinct nodes up to the item budget", () => manifest({ nodes: [], fields: new Set(Array.from({ length: ITEMS }, (_, i) => node(i))) })],
  ["a list for a set-typed argument (de-duplicated) up to the item budget", () => manifest({ nodes: [], fields: Array.from({ length: ITEMS }, (_, i) => node(i)) })],
  ["a map of distinct keys up to the item budget", () => encodeRequestBody([{ name: "manifestdata", args: new Map(Array.from({ length: ITEMS / 2 }, (_, i) => [node(i), 0])) as CborMap }], ["identity"])],
];

describe("a request's memory before any access check", () => {
  it.each(worst)("stays under the bound for %s", async (_name, build) => {
    const body = build();
    expect(body.length).toBeLessThanOrEqual(maxRequestBytes);
    const { grown, outcome } = await measure(body);
    console.log(`request memory: ${_name}: body ${body.length} bytes, heap + buffers grew ${(grown / 1048576).toFixed(1)} MiB (${outcome})`);
    expect(grown).toBeLessThan(REQUEST_MEMORY_BOUND_BYTES);
  });

  it("refuses what costs more: empty byte strings past the item budget (issue 15 sent a million in 1 MiB)", async () => {
    const body = manifest({ nodes: Array.from({ length: 300_000 }, () => new Uint8Array(0)) });
    expect(body.length).toBeLessThan(maxRequestBytes);
    const { grown, outcome } = await measure(body);
    expect(outcome).toMatch(/more than 131072 CBOR items in one request/);
    expect(grown).toBeLessThan(REQUEST_MEMORY_BOUND_BYTES);
  });
});
