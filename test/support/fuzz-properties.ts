/**
 * Property-based fuzzing of the pure protocol codec (src/protocol), shared by
 * test/protocol/fuzz.test.ts (inside workerd, with the app properties; the long mode) and
 * test/node/fuzz-codec.test.ts (the same codec properties in Node, where process.memoryUsage is
 * real, so that allocations are checked too). Nothing here touches Workers APIs or the file
 * system: the caller hands in the recorded exchanges.
 *
 * Inputs are random bytes, structured random frames/CBOR/requests/responses, and the recorded
 * fixture bodies, each optionally mutated (bit flips, interesting bytes, 24-bit length fields,
 * insertions, deletions, truncation, self-duplication, splices from another input). Every input
 * is at most MAX_INPUT bytes. The properties:
 *
 *  - only ProtocolError subclasses ever escape (a TypeError, RangeError, ... is a bug);
 *  - results do not depend on how the input is split into chunks (one piece, random pieces, one
 *    byte at a time), and agree with an independent reference where there is one;
 *  - the CBOR decoders (decodeAll, BufferingDecoder, CborValidator) accept exactly the same byte
 *    sequences, and what they accept round-trips through `encode`;
 *  - a response validated in constant memory (the cache fill's mode) is accepted exactly when
 *    a full decode (the client's view) accepts it, and the bytes it would store decode to the
 *    objects the client sees;
 *  - bounded work and memory: held-back bytes never exceed what was fed, no case takes longer
 *    than CASE_BUDGET_MS, and (in Node, where process.memoryUsage is real) none allocates more
 *    than MEMORY_BUDGET_BYTES of buffers.
 *
 * Defects found this way are listed in FIXED_DEFECTS and kept as regression tests in
 * test/protocol/fuzz.test.ts. One still open would go in a KNOWN_DEFECTS list, steered around
 * here and pinned by an `it.fails` test there, until fixed.
 *
 * Seeds and counts: HGEDGE_FUZZ_SEED (default DEFAULT_SEED) and HGEDGE_FUZZ_RUNS (total cases
 * over all properties; default: each property's small `defaultRuns`). Inside workerd the host's
 * environment is not visible; Vite forwards VITE_-prefixed variables, so there set
 * VITE_HGEDGE_FUZZ_SEED / VITE_HGEDGE_FUZZ_RUNS. fast-check prints the seed and the shrunk
 * counterexample (with the input's hex) on failure; replay with the same seed.
 */
import fc from "fast-check";
import {
  BufferingDecoder,
  ByteStringChunk,
  CborValidator,
  DEFAULT_DECODE_LIMITS,
  bytes,
  cborMap,
  decodeAll,
  encode,
  encodeIndefiniteByteString,
  type CborMap,
  type CborScalar,
  type CborValue,
  type DecodeLimits,
} from "../../src/protocol/cbor.ts";
import { FrameError, ProtocolError } from "../../src/protocol/errors.ts";
import { FRAME_HEADER_SIZE, FrameParser, MAX_FRAME_PAYLOAD, concatBytes, encodeFrame, type Frame } from "../../src/protocol/frames.ts";
import { toHex } from "../../src/protocol/hex.ts";
import { DEFAULT_REQUEST_LIMITS, encodeRequestBody, parseRequestBody, type RequestLimits } from "../../src/protocol/requests.ts";
import {
  ResponseReader,
  collectResponses,
  encodeCommandError,
  encodeErrorResponseFrame,
  encodeOkResponse,
  encodeRedirectResponse,
  type ResponseEvent,
  type ResponseReaderOptions,
} from "../../src/protocol/responses.ts";
import { ZSTD_MAX_WINDOW } from "../../src/protocol/streams.ts";

/** Largest input any property builds. */
export const MAX_INPUT = 64 * 1024;
/** The seed CI uses. */
export const DEFAULT_SEED = 20_260_702;
/** A single case slower than this is reported as a hang or super-linear work. */
export const CASE_BUDGET_MS = 2_000;

// ---------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------

function envVar(name: string): string | undefined {
  const fromProcess = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name];
  if (fromProcess) return fromProcess;
  const viteEnv = (import.meta as unknown as { env?: Record<string, string | undefined> }).env;
  return viteEnv?.[name] || viteEnv?.[`VITE_${name}`] || undefined;
}

export interface FuzzSettings {
  seed: number;
  /** Total cases over all properties (long mode), or undefined for each property's default. */
  totalRuns: number | undefined;
}

export function fuzzSettings(): FuzzSettings {
  const seedText = envVar("HGEDGE_FUZZ_SEED");
  const runsText = envVar("HGEDGE_FUZZ_RUNS");
  const seed = seedText === undefined ? DEFAULT_SEED : Number(seedText);
  const totalRuns = runsText === undefined ? undefined : Number(runsText.replace(/_/g, ""));
  if (!Number.isInteger(seed)) throw new Error(`HGEDGE_FUZZ_SEED must be an integer, got ${seedText}`);
  if (totalRuns !== undefined && !(Number.isInteger(totalRuns) && totalRuns > 0)) {
    throw new Error(`HGEDGE_FUZZ_RUNS must be a positive integer, got ${runsText}`);
  }
  return { seed, totalRuns };
}

export interface FuzzProperty {
  name: string;
  /** Cases in the default (CI) run. */
  defaultRuns: number;
  /** Share of HGEDGE_FUZZ_RUNS in the long mode (relative to the other properties' weights). */
  weight: number;
  /** Each property has its own tuple of inputs. */
  property: fc.IRawProperty<any>;
}

/** Cases per property: the defaults, or `total` spread by weight. */
export function planRuns(properties: readonly { name: string; weight: number; defaultRuns: number }[], total: number | undefined): Map<string, number> {
  const plan = new Map<string, number>();
  const weights = properties.reduce((sum, p) => sum + p.weight, 0);
  for (const p of properties) plan.set(p.name, total === undefined ? p.defaultRuns : Math.max(1, Math.round((total * p.weight) / weights)));
  return plan;
}

/**
 * Runs one property with its own seed, derived from the global one (HGEDGE_FUZZ_SEED) and its
 * name. Replaying a failure: the same HGEDGE_FUZZ_SEED and HGEDGE_FUZZ_RUNS, or the hex of the
 * printed counterexample.
 */
export async function runProperty(p: FuzzProperty, runs: number, seed: number): Promise<void> {
  // The report names the property's own seed and path, the shrunk input (with its hex) and the error.
  const params: fc.Parameters<unknown[]> = { seed: seedFor(seed, p.name), numRuns: runs, includeErrorInReport: true };
  if (p.property.isAsync()) await fc.assert(p.property as fc.IAsyncProperty<unknown[]>, params);
  else fc.assert(p.property as fc.IProperty<unknown[]>, params);
}

/** A per-property seed, so that changing one property's case count does not reshuffle another. */
export function seedFor(seed: number, name: string): number {
  let h = seed | 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x9e3779b1) | 0;
  return h;
}

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

/** An input with a readable description for fast-check's counterexample report. */
export class FuzzInput {
  constructor(
    readonly bytes: Uint8Array,
    readonly recipe: string,
  ) {}

  [fc.toStringMethod](): string {
    const shown = this.bytes.length <= 4096 ? toHex(this.bytes) : `${toHex(this.bytes.subarray(0, 256))}…`;
    return `FuzzInput(${this.bytes.length} bytes: ${this.recipe}; hex ${shown})`;
  }

  toString(): string {
    return this[fc.toStringMethod]();
  }
}

export interface CorpusEntry {
  label: string;
  bytes: Uint8Array;
}

/** What the properties are built from: the recorded bodies and the CBOR inside them. */
export interface Corpus {
  /** Framed request bodies. */
  requests: CorpusEntry[];
  /** Framed response bodies (larger ones cut at the last frame boundary before MAX_INPUT). */
  responses: CorpusEntry[];
  /** CBOR sequences: handshake answers, request maps, response streams (after stream decoding). */
  cbor: CorpusEntry[];
  /** Everything above, for splicing. */
  all: CorpusEntry[];
}

/** The parts of a recorded exchange the corpus needs (test/support/fixtures.ts `Exchange`). */
export interface CorpusExchange {
  scenario: string;
  seq: string;
  meta: { content_type?: string | null; request_content_type?: string | null };
  request?: Uint8Array;
  response: Uint8Array;
}

const FRAMING = "application/mercurial-exp-framing";

export function buildCorpus(exchanges: readonly CorpusExchange[]): Corpus {
  const requests = new Dedup();
  const responses = new Dedup();
  const cbor = new Dedup();
  for (const x of exchanges) {
    const label = `${x.scenario}/${x.seq}`;
    if (x.request && (x.meta.request_content_type ?? "").startsWith(FRAMING)) {
      requests.add(`${label}-request`, x.request.subarray(0, MAX_INPUT));
      try {
        const parsed = parseRequestBody(x.request);
        for (const c of parsed.commands) cbor.add(`${label}-request:${c.requestId}`, encodeValues([c.map]));
        for (const f of parsed.frames) if (f.payload.length > 0) cbor.add(`${label}-request@${f.offset}`, f.payload);
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
      }
    }
    const type = x.meta.content_type ?? "";
    if (type.startsWith(FRAMING)) {
      responses.add(`${label}-response`, cutAtFrameBoundary(x.response));
      for (const [i, piece] of responseCbor(x.response).entries()) cbor.add(`${label}-response#${i}`, piece);
    } else if (type === "application/mercurial-cbor") {
      cbor.add(`${label}-response`, x.response.subarray(0, MAX_INPUT));
    }
  }
  const corpus = { requests: requests.entries, responses: responses.entries, cbor: cbor.entries };
  for (const [name, list] of Object.entries(corpus)) if (list.length === 0) throw new Error(`fuzz corpus: no ${name} in the fixtures`);
  return { ...corpus, all: [...corpus.requests, ...corpus.responses, ...corpus.cbor] };
}

class Dedup {
  readonly entries: CorpusEntry[] = [];
  private readonly seen = new Set<string>();
  add(label: string, bytes: Uint8Array): void {
    const id = `${bytes.length}:${fnv(bytes)}`;
    if (this.seen.has(id)) return;
    this.seen.add(id);
    this.entries.push({ label, bytes });
  }
}

function fnv(b: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ (b[i] as number), 0x01000193);
  return h >>> 0;
}

function cutAtFrameBoundary(body: Uint8Array): Uint8Array {
  if (body.length <= MAX_INPUT) return body;
  let at = 0;
  while (at + FRAME_HEADER_SIZE <= body.length) {
    const length = (body[at] as number) | ((body[at + 1] as number) << 8) | ((body[at + 2] as number) << 16);
    const next = at + FRAME_HEADER_SIZE + length;
    if (next > MAX_INPUT) break;
    at = next;
  }
  return body.subarray(0, at > 0 ? at : MAX_INPUT);
}

/** Each request's decoded values of a framed response, re-encoded in pieces of ≤ 16 KiB. */
function responseCbor(body: Uint8Array): Uint8Array[] {
  let results: ReturnType<typeof collectResponses>;
  try {
    results = collectResponses(body);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    return [];
  }
  const pieces: Uint8Array[] = [];
  for (const r of results.values()) {
    const values: CborValue[] = r.statusMap ? [r.statusMap, ...r.objects] : r.objects;
    let group: Uint8Array[] = [];
    let size = 0;
    for (const item of groupItems(values)) {
      const encoded = encodeItem(item);
      if (encoded.length > MAX_INPUT) continue;
      if (size + encoded.length > 16 * 1024 && group.length > 0) {
        pieces.push(concatBytes(group));
        group = [];
        size = 0;
      }
      group.push(encoded);
      size += encoded.length;
    }
    if (group.length > 0) pieces.push(concatBytes(group));
  }
  return pieces;
}

// --- CBOR sequences with indefinite byte strings -----------------------------------------------

type Item = { kind: "value"; value: CborValue } | { kind: "indefinite"; chunks: Uint8Array[] };

/** Groups decoded values so that each top-level indefinite byte string is one item. */
function groupItems(values: readonly CborValue[]): Item[] {
  const items: Item[] = [];
  let open: Uint8Array[] | undefined;
  for (const v of values) {
    if (v instanceof ByteStringChunk) {
      if (v.isFirst) open = [];
      if (!open) throw new Error("a byte string chunk without a first chunk");
      if (v.isLast) {
        if (v.bytes.length > 0) throw new Error("a last byte string chunk with bytes");
        items.push({ kind: "indefinite", chunks: open });
        open = undefined;
      } else {
        open.push(v.bytes);
      }
    } else {
      if (open) throw new Error("a value inside an indefinite byte string");
      items.push({ kind: "value", value: v });
    }
  }
  if (open) throw new Error("an indefinite byte string without its last chunk");
  return items;
}

function encodeItem(item: Item): Uint8Array {
  return item.kind === "value" ? encode(item.value) : encodeIndefiniteByteString(item.chunks);
}

/** Whether a decoded value holds an integer as an unsafe JS number (FIXED_DEFECTS.unsafeInteger). */
export function hasUnsafeInteger(value: CborValue): boolean {
  if (typeof value === "number") return !Number.isSafeInteger(value);
  if (Array.isArray(value)) return value.some(hasUnsafeInteger);
  if (value instanceof Map) return [...value].some(([k, v]) => hasUnsafeInteger(k) || hasUnsafeInteger(v));
  if (value instanceof Set) return [...value].some(hasUnsafeInteger);
  return false;
}

/** Encodes a decoded sequence back (canonically), indefinite byte strings included. */
export function encodeValues(values: readonly CborValue[]): Uint8Array {
  return concatBytes(groupItems(values).map(encodeItem));
}

// --- Arbitraries -------------------------------------------------------------------------------

/** Fast pseudo-random bytes (xorshift32), for large random inputs that fast-check would generate byte by byte. */
function prngBytes(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 0 || 0x2545f491;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const INTERESTING_BYTES = [
  0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x08, 0x09, 0x0f, 0x10, 0x11, 0x12, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1f, 0x20, 0x31,
  0x32, 0x37, 0x38, 0x3b, 0x3f, 0x40, 0x41, 0x57, 0x58, 0x5b, 0x5f, 0x60, 0x7f, 0x80, 0x81, 0x92, 0x98, 0x9b, 0x9f, 0xa0, 0xa1,
  0xb8, 0xbb, 0xbf, 0xc0, 0xd9, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xff,
];
const INTERESTING_LENGTHS = [0, 1, 7, 8, 9, 0xff, 0x100, 0x7fff, 0x8000, 0x8001, 0xffff, 0x10000, 0x10001, 0xfffff, 0xffffff];

export type Mutation =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "set"; at: number; value: number }
  | { kind: "u24"; at: number; value: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "delete"; at: number; length: number }
  | { kind: "truncate"; at: number }
  | { kind: "copy"; at: number; from: number; length: number }
  | { kind: "splice"; at: number; donor: number; from: number; length: number };

function mutationArb(donors: number): fc.Arbitrary<Mutation> {
  const at = fc.nat({ max: MAX_INPUT });
  const length = fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: MAX_INPUT }));
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constant("flip" as const), at, bit: fc.integer({ min: 0, max: 7 }) }) },
    {
      weight: 4,
      arbitrary: fc.record({ kind: fc.constant("set" as const), at, value: fc.oneof(fc.constantFrom(...INTERESTING_BYTES), fc.integer({ min: 0, max: 255 })) }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ kind: fc.constant("u24" as const), at, value: fc.oneof(fc.constantFrom(...INTERESTING_LENGTHS), fc.integer({ min: 0, max: 0xffffff })) }),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("insert" as const), at, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("delete" as const), at, length }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("truncate" as const), at }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("copy" as const), at, from: at, length }) },
    {
      weight: donors > 0 ? 2 : 0,
      arbitrary: fc.record({ kind: fc.constant("splice" as const), at, donor: fc.nat({ max: Math.max(0, donors - 1) }), from: at, length }),
    },
  );
}

/** Applies mutations in order; positions wrap around the current length; never above `limit` bytes. */
export function applyMutations(input: Uint8Array, mutations: readonly Mutation[], donors: readonly CorpusEntry[], limit = MAX_INPUT): Uint8Array {
  let b = input;
  for (const m of mutations) {
    const at = m.at % (b.length + 1);
    switch (m.kind) {
      case "flip":
      case "set":
        if (b.length === 0) break;
        b = b.slice();
        b[at % b.length] = m.kind === "flip" ? (b[at % b.length] as number) ^ (1 << m.bit) : m.value;
        break;
      case "u24": {
        if (b.length < 3) break;
        const p = at % (b.length - 2);
        b = b.slice();
        b[p] = m.value & 0xff;
        b[p + 1] = (m.value >> 8) & 0xff;
        b[p + 2] = m.value >> 16;
        break;
      }
      case "insert":
        b = concatBytes([b.subarray(0, at), m.bytes, b.subarray(at)]);
        break;
      case "delete":
        b = concatBytes([b.subarray(0, at), b.subarray(at + m.length)]);
        break;
      case "truncate":
        b = b.subarray(0, at);
        break;
      case "copy": {
        const from = m.from % (b.length + 1);
        b = concatBytes([b.subarray(0, at), b.subarray(from, from + m.length), b.subarray(at)]);
        break;
      }
      case "splice": {
        const donor = donors[m.donor % donors.length]?.bytes ?? new Uint8Array(0);
        const from = m.from % (donor.length + 1);
        b = concatBytes([b.subarray(0, at), donor.subarray(from, from + m.length), b.subarray(at)]);
        break;
      }
    }
    if (b.length > limit) b = b.subarray(0, limit);
  }
  return b;
}

function describeMutations(mutations: readonly Mutation[]): string {
  if (mutations.length === 0) return "unmutated";
  return mutations
    .map((m) => {
      const { kind, ...rest } = m;
      const args = Object.entries(rest).map(([k, v]) => `${k}=${v instanceof Uint8Array ? toHex(v) : String(v)}`);
      return `${kind}(${args.join(",")})`;
    })
    .join(" ");
}

/** A corpus entry (or a generated input) with up to `maxMutations` mutations. */
function mutate(base: fc.Arbitrary<FuzzInput>, donors: readonly CorpusEntry[], maxMutations = 6): fc.Arbitrary<FuzzInput> {
  return fc
    .tuple(base, fc.array(mutationArb(donors.length), { maxLength: maxMutations }))
    .map(([input, mutations]) => new FuzzInput(applyMutations(input.bytes, mutations, donors), `${input.recipe} then ${describeMutations(mutations)}`));
}

function fromCorpus(entries: readonly CorpusEntry[]): fc.Arbitrary<FuzzInput> {
  return fc.nat({ max: entries.length - 1 }).map((i) => {
    const e = entries[i] as CorpusEntry;
    return new FuzzInput(e.bytes, `corpus ${e.label}`);
  });
}

export const randomBytes: fc.Arbitrary<FuzzInput> = fc.oneof(
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 512 }).map((b) => new FuzzInput(b, "random")) },
  {
    weight: 1,
    arbitrary: fc
      .record({ seed: fc.integer(), length: fc.integer({ min: 0, max: MAX_INPUT }) })
      .map(({ seed, length }) => new FuzzInput(prngBytes(seed, length), `xorshift32(seed=${seed}, length=${length})`)),
  },
);

/** Map keys / set elements identified by content, ints by value, bools apart. */
function scalarKey(value: CborScalar): string {
  if (value instanceof Uint8Array) return `b${toHex(value)}`;
  if (typeof value === "number" || typeof value === "bigint") return `i${BigInt(value)}`;
  return `s${String(value)}`;
}

const scalarArb: fc.Arbitrary<CborScalar> = fc.oneof(
  { weight: 4, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.bigInt({ min: -(1n << 64n), max: (1n << 64n) - 1n }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER, -1, -24, -25, -257, Number.MIN_SAFE_INTEGER) },
  { weight: 1, arbitrary: fc.constantFrom<CborScalar>(true, false, null) },
);

const { value: valueArb } = fc.letrec<{ value: CborValue; array: CborValue[]; map: CborMap; set: Set<CborScalar> }>((tie) => ({
  value: fc.oneof({ depthSize: "small", withCrossShrink: true }, scalarArb, tie("array"), tie("map"), tie("set")),
  array: fc.array(tie("value"), { maxLength: 6 }),
  map: fc
    .uniqueArray(fc.tuple(scalarArb, tie("value")), { maxLength: 6, selector: ([k]) => scalarKey(k) })
    .map((entries) => new Map(entries)),
  set: fc.uniqueArray(scalarArb, { maxLength: 6, selector: scalarKey }).map((elements) => new Set(elements)),
}));

/** A sequence of top-level items: values, and now and then an indefinite byte string. */
const itemsArb: fc.Arbitrary<Item[]> = fc.array(
  fc.oneof(
    { weight: 6, arbitrary: valueArb.map((value): Item => ({ kind: "value", value })) },
    { weight: 1, arbitrary: fc.array(fc.uint8Array({ maxLength: 24 }), { maxLength: 4 }).map((chunks): Item => ({ kind: "indefinite", chunks })) },
  ),
  { maxLength: 5 },
);

export const cborSequence: fc.Arbitrary<FuzzInput> = itemsArb.map(
  (items) => new FuzzInput(concatBytes(items.map(encodeItem)), `generated CBOR sequence of ${items.length}`),
);

function rawFrame(f: { requestId: number; streamId: number; streamFlags: number; typeId: number; flags: number; payload: Uint8Array }): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_SIZE + f.payload.length);
  const n = f.payload.length;
  out.set([n & 0xff, (n >> 8) & 0xff, n >> 16, f.requestId & 0xff, f.requestId >> 8, f.streamId, f.streamFlags, (f.typeId << 4) | f.flags]);
  out.set(f.payload, FRAME_HEADER_SIZE);
  return out;
}

/** Frames with plausible-to-random headers and CBOR or random payloads. */
export const randomFrames: fc.Arbitrary<FuzzInput> = fc
  .array(
    fc.record({
      requestId: fc.oneof(fc.constantFrom(1, 3, 0, 2), fc.integer({ min: 0, max: 0xffff })),
      streamId: fc.oneof(fc.constantFrom(1, 2, 0, 3, 4), fc.integer({ min: 0, max: 0xff })),
      streamFlags: fc.oneof(fc.constantFrom(0, 1, 2, 4, 5), fc.integer({ min: 0, max: 0xff })),
      typeId: fc.integer({ min: 0, max: 15 }),
      flags: fc.integer({ min: 0, max: 15 }),
      payload: fc.oneof(cborSequence.map((i) => i.bytes), fc.uint8Array({ maxLength: 64 })),
    }),
    { maxLength: 8 },
  )
  .map((frames) => new FuzzInput(concatBytes(frames.map(rawFrame)), `${frames.length} random frames`));

const COMMANDS = ["heads", "known", "manifestdata", "filesdata", "filedata", "changesetdata", "capabilities", "lookup", "listkeys", "branchmap", "pushkey", "rawstorefiledata"];
const ARG_NAMES = ["nodes", "tree", "fields", "haveparents", "revisions", "path", "pathfilter", "key", "namespace", "publiconly", "files", "bogus"];

const argsArb: fc.Arbitrary<CborMap> = fc
  .uniqueArray(fc.tuple(fc.constantFrom(...ARG_NAMES), valueArb), { maxLength: 4, selector: ([k]) => k })
  .map((entries) => cborMap(entries.map(([k, v]) => [k, v] as [string, CborValue])));

/** Request bodies as a stock client would build them, from random commands and arguments. */
export const generatedRequests: fc.Arbitrary<FuzzInput> = fc
  .record({
    commands: fc.array(
      fc.record({
        name: fc.constantFrom(...COMMANDS),
        args: argsArb,
        redirect: fc.option(fc.record({ targets: fc.array(fc.constantFrom("hgedge", "other", ""), { maxLength: 2 }), hashes: fc.constant<string[]>(["sha256", "sha1"]) }), { nil: undefined }),
      }),
      { minLength: 1, maxLength: 3 },
    ),
    encodings: fc.option(fc.array(fc.constantFrom("identity", "zlib", "zstd-8mb", "bogus"), { maxLength: 3 }), { nil: undefined }),
  })
  .map(({ commands, encodings }) => {
    const body = encodeRequestBody(
      commands.map((c) => ({ name: c.name, args: c.args, ...(c.redirect ? { redirect: c.redirect } : {}) })),
      encodings,
    );
    return new FuzzInput(body.subarray(0, MAX_INPUT), `generated request ${commands.map((c) => c.name).join("+")}`);
  });

/**
 * A Zstandard frame holding `content` in raw blocks (fzstd is a decoder only; raw blocks need no
 * compressor), with the header variants the format allows. Window and content size stay within
 * zstd-8mb's 8 MiB, so that the decoder gets to decode them (larger ones are refused:
 * FIXED_DEFECTS.zstdWindow).
 */
function zstdFrame(content: Uint8Array, h: { singleSegment: boolean; fcsFlag: number; windowExponent: number; windowMantissa: number; checksum: boolean; extraSize: number; blockSize: number }): Uint8Array {
  const parts: number[] = [0x28, 0xb5, 0x2f, 0xfd];
  let fcsFlag = h.fcsFlag;
  let size = content.length + h.extraSize;
  if (h.singleSegment) {
    size = Math.min(size, ZSTD_MAX_WINDOW);
    if (fcsFlag === 0 && size > 255) fcsFlag = 1;
    if (fcsFlag === 1 && (size < 256 || size > 65791)) fcsFlag = size < 256 ? 0 : 2;
  }
  parts.push((fcsFlag << 6) | ((h.singleSegment ? 1 : 0) << 5) | ((h.checksum ? 1 : 0) << 2));
  const window = h.singleSegment ? size : 2 ** (10 + h.windowExponent) * (1 + h.windowMantissa / 8);
  if (!h.singleSegment) parts.push((h.windowExponent << 3) | h.windowMantissa);
  const fcsBytes = fcsFlag === 0 ? (h.singleSegment ? 1 : 0) : 1 << fcsFlag;
  const fcsValue = fcsFlag === 1 ? size - 256 : size;
  for (let i = 0; i < fcsBytes; i++) parts.push(i < 6 ? Math.floor(fcsValue / 2 ** (8 * i)) & 0xff : 0);
  const maxBlock = Math.max(1, Math.min(h.blockSize, 128 * 1024, window));
  let at = 0;
  do {
    const n = Math.min(maxBlock, content.length - at);
    const last = at + n >= content.length ? 1 : 0;
    const header = (n << 3) | last; // raw block
    parts.push(header & 0xff, (header >> 8) & 0xff, header >> 16);
    for (let i = 0; i < n; i++) parts.push(content[at + i] as number);
    at += n;
  } while (at < content.length);
  if (h.checksum) parts.push(0x12, 0x34, 0x56, 0x78); // fzstd does not verify it
  return Uint8Array.from(parts);
}

/** A zstd-8mb response: stream settings, the encoded stream cut into frames anywhere, an eos frame. */
const zstdResponses: fc.Arbitrary<FuzzInput> = fc
  .record({
    body: cborSequence,
    header: fc.record({
      singleSegment: fc.boolean(),
      fcsFlag: fc.integer({ min: 0, max: 3 }),
      windowExponent: fc.integer({ min: 0, max: 13 }), // up to 8 MiB
      windowMantissa: fc.constant(0),
      checksum: fc.boolean(),
      extraSize: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 4096 })),
      blockSize: fc.integer({ min: 1, max: 1 << 17 }),
    }),
    /** Now and then the body goes in two zstd frames, back to back in the stream. */
    cut: fc.option(fc.nat(), { nil: undefined, freq: 3 }),
    frames: fc.array(fc.nat(), { maxLength: 4 }),
    requestId: fc.constantFrom(1, 3),
  })
  .map(({ body, header, cut, frames, requestId }) => {
    const content = concatBytes([encode(cborMap({ status: bytes("ok") })), body.bytes]);
    const at = cut === undefined ? content.length : cut % (content.length + 1);
    const stream = at === content.length ? zstdFrame(content, header) : concatBytes([zstdFrame(content.subarray(0, at), header), zstdFrame(content.subarray(at), header)]);
    const pieces = chunksOf(stream, frames);
    const out = [encodeFrame({ requestId, streamId: 2, streamFlags: 1, typeId: 9, flags: 2, payload: encode(bytes("zstd-8mb")) })];
    for (const piece of pieces) out.push(rawFrame({ requestId, streamId: 2, streamFlags: 4, typeId: 3, flags: 1, payload: piece }));
    out.push(rawFrame({ requestId, streamId: 2, streamFlags: 0, typeId: 3, flags: 2, payload: new Uint8Array(0) }));
    return new FuzzInput(concatBytes(out), `generated zstd-8mb response (${JSON.stringify(header)}) of ${body.recipe}`);
  });

/** Responses as a server would emit them: ok (identity, zlib or zstd-8mb), errors, redirects. */
export const generatedResponses: fc.Arbitrary<FuzzInput> = fc
  .oneof(
    fc.record({ kind: fc.constant("ok" as const), body: cborSequence, encoding: fc.constantFrom("identity" as const, "zlib" as const) }),
    fc.record({ kind: fc.constant("error" as const), message: fc.string({ maxLength: 20 }) }),
    fc.record({ kind: fc.constant("error-response" as const), message: fc.string({ maxLength: 20 }) }),
    fc.record({ kind: fc.constant("redirect" as const), size: fc.nat() }),
    fc.record({ kind: fc.constant("zstd" as const), response: zstdResponses }),
  )
  .chain((r) => fc.constantFrom(1, 3).map((requestId) => ({ ...r, requestId })))
  .map((r) => {
    switch (r.kind) {
      case "ok":
        return new FuzzInput(encodeOkResponse(r.requestId, r.body.bytes, r.encoding), `generated ok response (${r.encoding}) of ${r.body.recipe}`);
      case "error":
        return new FuzzInput(encodeCommandError(r.requestId, r.message, ["x"]), "generated command error");
      case "error-response":
        return new FuzzInput(encodeErrorResponseFrame(r.requestId, "server", r.message), "generated error-response frame");
      case "redirect":
        return new FuzzInput(
          encodeRedirectResponse(r.requestId, { url: "https://edge.test/o", mediatype: "application/mercurial-cbor", size: r.size }),
          "generated redirect response",
        );
      case "zstd":
        return r.response;
    }
  });

export type Split = "bytewise" | number[];

export const splitArb: fc.Arbitrary<Split> = fc.oneof(
  { weight: 1, arbitrary: fc.constant("bytewise" as const) },
  { weight: 4, arbitrary: fc.array(fc.nat({ max: MAX_INPUT }), { maxLength: 12 }) },
);

/**
 * Byte-at-a-time feeding is limited to inputs up to this size; larger ones are cut at every
 * BYTEWISE_STRIDE-th byte instead, to keep the default run short.
 */
export const BYTEWISE_MAX = 8 * 1024;
const BYTEWISE_STRIDE = 997;

/** The input cut into chunks: one byte each, or at the given points (wrapped into range). */
export function chunksOf(b: Uint8Array, split: Split): Uint8Array[] {
  if (split === "bytewise") {
    const step = b.length <= BYTEWISE_MAX ? 1 : BYTEWISE_STRIDE;
    return Array.from({ length: Math.ceil(b.length / step) }, (_, i) => b.subarray(i * step, (i + 1) * step));
  }
  const cuts = [...new Set(split.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
  const chunks: Uint8Array[] = [];
  let at = 0;
  for (const cut of [...cuts, b.length]) {
    chunks.push(b.subarray(at, cut)); // empty chunks included on purpose
    at = cut;
  }
  return chunks;
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

type Outcome<T> = { ok: true; value: T } | { ok: false; error: ProtocolError };

/** Runs `fn`; a ProtocolError is an outcome, anything else is a failure of the property. */
export function attempt<T>(what: string, fn: () => T): Outcome<T> {
  try {
    return { ok: true, value: fn() };
  } catch (error) {
    if (error instanceof ProtocolError) return { ok: false, error };
    throw escaped(what, error);
  }
}

/** The error a property reports when something other than a ProtocolError escaped. */
export function escaped(what: string, error: unknown): Error {
  const e = error as Error;
  return new Error(`${what}: a non-ProtocolError escaped: ${e?.name ?? typeof error}: ${e?.message ?? String(error)}\n${e?.stack ?? ""}`);
}

/** Counts of case outcomes per property (accepted/rejected, ...), to show what the inputs reach. */
export const outcomes = new Map<string, number>();

function note(key: string): void {
  outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
}

function check(condition: boolean, message: () => string): void {
  if (!condition) throw new Error(message());
}

/** Memory (ArrayBuffer bytes) one case may add; only measurable in Node (process.memoryUsage). */
export const MEMORY_BUDGET_BYTES = 256 * 1024 * 1024;

function arrayBufferBytes(): (() => number) | undefined {
  const usage = (globalThis as { process?: { memoryUsage?: () => { arrayBuffers?: number } } }).process?.memoryUsage;
  if (typeof usage !== "function") return undefined;
  try {
    const probe = () => usage().arrayBuffers ?? 0;
    return probe() > 0 ? probe : undefined;
  } catch {
    return undefined;
  }
}
const memoryProbe = arrayBufferBytes();

/**
 * Runs a case and fails it if it took longer than CASE_BUDGET_MS or allocated more than
 * MEMORY_BUDGET_BYTES of buffers (where those are measurable).
 */
export function timed(fn: () => void): void {
  const before = memoryProbe?.() ?? 0;
  const start = performance.now();
  fn();
  const elapsed = performance.now() - start;
  check(elapsed <= CASE_BUDGET_MS, () => `one case took ${elapsed.toFixed(0)} ms (budget ${CASE_BUDGET_MS} ms): a hang or super-linear work`);
  const grown = (memoryProbe?.() ?? 0) - before;
  check(grown <= MEMORY_BUDGET_BYTES, () => `one case allocated ${(grown / 2 ** 20).toFixed(0)} MiB of buffers for at most ${MAX_INPUT / 1024} KiB of input`);
}

/** Defects of src/ found by this fuzzing and fixed; each is a regression test in test/protocol/fuzz.test.ts. */
export const FIXED_DEFECTS = {
  zstdWindow:
    "zstd-8mb accepted frames that declare more than 8 MiB of window: checkZstdWindow only looked at a payload that began with a " +
    "whole frame header and skipped single-segment frames, and fzstd allocates the declared size (up to 2 GiB) at the header",
  frameParserQuadratic:
    "FrameParser re-joined everything held back of an incomplete frame on every push: a frame fed in k pieces cost O(k × frame size)",
  unsafeInteger:
    "the CBOR decoder returned the integer -2^53 (3b 00 1f ff ff ff ff ff ff) as the JS number -9007199254740992, which encode refuses " +
    "with a CborEncodeError; the app encodes request arguments (cache key, filesdata retry) outside any try, so such a request " +
    "made app.fetch reject",
  zstdLaterFrame:
    "zstd-8mb checked the window of the stream's first zstd frame only: a second frame in the same stream could declare up to 2 GiB, " +
    "and fzstd allocated it",
} as const;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// --- Frames ------------------------------------------------------------------------------------

interface RefFrames {
  frames: Frame[];
  error?: { code: "frame" | "truncated"; offset: number };
}

/** An independent reading of the frame layout (protocol.md §2.1): the oracle for FrameParser. */
export function referenceFrames(b: Uint8Array, maxPayload: number): RefFrames {
  const frames: Frame[] = [];
  let at = 0;
  while (at < b.length) {
    if (b.length - at < FRAME_HEADER_SIZE) return { frames, error: { code: "truncated", offset: at } };
    const length = (b[at] as number) + (b[at + 1] as number) * 256 + (b[at + 2] as number) * 65536;
    if (length > maxPayload) return { frames, error: { code: "frame", offset: at } };
    if (at + FRAME_HEADER_SIZE + length > b.length) return { frames, error: { code: "truncated", offset: at } };
    frames.push({
      length,
      requestId: (b[at + 3] as number) + (b[at + 4] as number) * 256,
      streamId: b[at + 5] as number,
      streamFlags: b[at + 6] as number,
      typeId: (b[at + 7] as number) >> 4,
      flags: (b[at + 7] as number) & 15,
      payload: b.subarray(at + FRAME_HEADER_SIZE, at + FRAME_HEADER_SIZE + length),
      offset: at,
    });
    at += FRAME_HEADER_SIZE + length;
  }
  return { frames };
}

function frameKey(f: Frame): string {
  return `${f.offset}:${f.length}:${f.requestId}:${f.streamId}:${f.streamFlags}:${f.typeId}:${f.flags}:${f.payload.length}:${fnv(f.payload)}`;
}

/** Feeds chunks to a FrameParser: the frames it returned before failing, and the failure. */
function parseSplit(chunks: readonly Uint8Array[], maxPayload: number | undefined): { frames: Frame[]; error?: ProtocolError; parser: FrameParser; fed: number } {
  const parser = maxPayload === undefined ? new FrameParser() : new FrameParser(maxPayload);
  const frames: Frame[] = [];
  let fed = 0;
  for (const chunk of chunks) {
    fed += chunk.length;
    const r = attempt("FrameParser.push", () => parser.push(chunk));
    if (!r.ok) return { frames, error: r.error, parser, fed };
    frames.push(...r.value);
    check(parser.buffered === fed - parser.offset, () => `FrameParser holds ${parser.buffered} bytes, fed ${fed}, parsed ${parser.offset}`);
    check(parser.buffered < FRAME_HEADER_SIZE + (maxPayload ?? MAX_FRAME_PAYLOAD), () => `FrameParser holds ${parser.buffered} bytes, more than one frame`);
  }
  const end = attempt("FrameParser.finish", () => parser.finish());
  return end.ok ? { frames, parser, fed } : { frames, error: end.error, parser, fed };
}

function framesProperty(corpus: Corpus): FuzzProperty {
  const input = fc.oneof(
    { weight: 2, arbitrary: randomBytes },
    { weight: 2, arbitrary: mutate(randomFrames, corpus.all, 3) },
    { weight: 3, arbitrary: mutate(fromCorpus([...corpus.requests, ...corpus.responses]), corpus.all) },
  );
  const maxPayload = fc.constantFrom<number | undefined>(undefined, 0x10000, 0x8000, 64, 1, 0);
  return {
    name: "FrameParser: frames or a FrameError, the same however the input is split",
    defaultRuns: 2000,
    weight: 3,
    property: fc.property(input, splitArb, maxPayload, (input, split, max) =>
      timed(() => {
        const b = input.bytes;
        const ref = referenceFrames(b, max ?? MAX_FRAME_PAYLOAD);
        note(`frames: ${ref.error ? `${ref.error.code} error` : "whole frames"}`);
        for (const [how, chunks] of [["whole", [b]], ["split", chunksOf(b, split)]] as const) {
          const got = parseSplit(chunks, max);
          if (got.error) {
            check(got.error instanceof FrameError, () => `${how}: ${got.error?.name} instead of a FrameError: ${got.error?.message}`);
            check(ref.error !== undefined, () => `${how}: FrameError "${got.error?.message}" on input the reference reads as ${ref.frames.length} whole frames`);
            check(got.error.code === ref.error?.code && got.error.offset === ref.error.offset, () => `${how}: ${got.error?.code} at ${got.error?.offset}, reference says ${ref.error?.code} at ${ref.error?.offset}`);
            // Frames of the chunk that failed are dropped (the error is sticky): a prefix.
            check(got.frames.length <= ref.frames.length, () => `${how}: more frames than the reference`);
            const again = attempt("FrameParser.push after an error", () => got.parser.push(new Uint8Array(1)));
            check(!again.ok && again.error === got.error, () => `${how}: the parser did not stay failed`);
          } else {
            check(ref.error === undefined, () => `${how}: no error, but the reference finds ${ref.error?.code} at ${ref.error?.offset}`);
            check(got.frames.length === ref.frames.length, () => `${how}: ${got.frames.length} frames, reference ${ref.frames.length}`);
            check(got.parser.offset === b.length, () => `${how}: offset ${got.parser.offset} after ${b.length} bytes`);
            check(sameBytes(concatBytes(got.frames.map(rawFrame)), b), () => `${how}: the frames do not re-encode to the input`);
          }
          got.frames.forEach((f, i) => {
            const r = ref.frames[i] as Frame;
            check(frameKey(f) === frameKey(r) && sameBytes(f.payload, r.payload), () => `${how}: frame ${i} is ${frameKey(f)}, reference ${frameKey(r)}`);
          });
        }
      }),
    ),
  };
}

// --- CBOR --------------------------------------------------------------------------------------

const TIGHT_LIMITS: DecodeLimits = { maxDepth: 3, maxCollectionSize: 5, maxByteStringLength: 24 };
const limitsArb = fc.constantFrom<DecodeLimits>(DEFAULT_DECODE_LIMITS, DEFAULT_REQUEST_LIMITS, TIGHT_LIMITS);

function limitsName(l: DecodeLimits): string {
  return `limits(depth ${l.maxDepth}, items ${l.maxCollectionSize}, bytes ${l.maxByteStringLength})`;
}

/** Top-level values as CborValidator counts them (an indefinite byte string once). */
function countTopLevel(values: readonly CborValue[]): number {
  return values.filter((v) => !(v instanceof ByteStringChunk) || v.isLast).length;
}

interface CborVerdicts {
  decodeAll: Outcome<CborValue[]>;
  accepted: boolean;
}

/** Every decoder on the same bytes; fails the case unless they all agree. */
function checkCborDecoders(b: Uint8Array, split: Split, limits: DecodeLimits): CborVerdicts {
  const whole = attempt("decodeAll", () => decodeAll(b, limits));

  const validatorVerdict = (chunks: readonly Uint8Array[], how: string) => {
    const v = new CborValidator(limits);
    const r = attempt(`CborValidator.push (${how})`, () => {
      for (const c of chunks) v.push(c);
    });
    return { accepted: r.ok && v.atValueBoundary, values: v.values, error: r.ok ? undefined : r.error };
  };
  const vWhole = validatorVerdict([b], "whole");
  const vSplit = validatorVerdict(chunksOf(b, split), "split");
  const vBytewise = split === "bytewise" ? vSplit : validatorVerdict(chunksOf(b, "bytewise"), "bytewise");

  const buffering = new BufferingDecoder(limits);
  const streamed: CborValue[] = [];
  let fed = 0;
  const bRun = attempt("BufferingDecoder.decode", () => {
    for (const c of chunksOf(b, split)) {
      fed += c.length;
      buffering.decode(c);
      streamed.push(...buffering.takeAvailable());
      check(buffering.buffered <= fed, () => `BufferingDecoder holds ${buffering.buffered} bytes after ${fed} were fed`);
    }
  });
  const bAccepted = bRun.ok && buffering.atValueBoundary;

  const verdicts = { decodeAll: whole.ok, "CborValidator whole": vWhole.accepted, "CborValidator split": vSplit.accepted, "CborValidator bytewise": vBytewise.accepted, "BufferingDecoder split": bAccepted };
  const agree = new Set(Object.values(verdicts)).size === 1;
  check(agree, () => {
    const reasons = [whole, { ok: vWhole.error === undefined, error: vWhole.error }, { ok: bRun.ok, error: bRun.ok ? undefined : bRun.error }]
      .map((o) => (o.ok ? "ok" : (o as { error?: Error }).error?.message))
      .join(" | ");
    return `the CBOR decoders disagree on ${limitsName(limits)}: ${JSON.stringify(verdicts)} (decodeAll | validator | buffering: ${reasons})`;
  });
  if (whole.ok) {
    const values = whole.value;
    const canonical = encodeValues(values);
    check(sameBytes(encodeValues(streamed), canonical), () => "BufferingDecoder fed in chunks decoded other values than decodeAll");
    for (const v of [vWhole, vSplit, vBytewise]) {
      check(v.values === countTopLevel(values), () => `CborValidator counted ${v.values} values, decodeAll found ${countTopLevel(values)}`);
    }
  }
  return { decodeAll: whole, accepted: whole.ok };
}

/** What decodeAll accepted re-encodes canonically, and that encoding decodes to the same values. */
function checkRoundTrip(values: CborValue[]): void {
  check(!values.some(hasUnsafeInteger), () => "decodeAll returned an integer as an unsafe JS number (FIXED_DEFECTS.unsafeInteger)");
  const encoded = attempt("encode of decoded values", () => values.forEach((v) => v instanceof ByteStringChunk || encode(v)));
  check(encoded.ok, () => `encode refuses a value decodeAll produced: ${encoded.ok ? "" : encoded.error.message}`);
  const canonical = encodeValues(values);
  const again = attempt("decodeAll of a canonical encoding", () => decodeAll(canonical));
  check(again.ok, () => `decodeAll refuses the canonical re-encoding ${toHex(canonical)} of what it accepted: ${again.ok ? "" : again.error.message}`);
  if (again.ok) check(sameBytes(encodeValues(again.value), canonical), () => `re-encoding is not stable: ${toHex(canonical)}`);
}

function cborProperty(corpus: Corpus): FuzzProperty {
  const input = fc.oneof(
    { weight: 2, arbitrary: randomBytes },
    { weight: 2, arbitrary: mutate(cborSequence, corpus.cbor, 3) },
    { weight: 3, arbitrary: mutate(fromCorpus(corpus.cbor), corpus.all) },
  );
  return {
    name: "CBOR decoders: only CborDecodeErrors, all agree, accepted input round-trips",
    defaultRuns: 2000,
    weight: 3,
    property: fc.property(input, splitArb, limitsArb, (input, split, limits) =>
      timed(() => {
        const { decodeAll: whole } = checkCborDecoders(input.bytes, split, limits);
        note(`cbor: ${whole.ok ? "accepted" : `rejected (${whole.error.name})`}`);
        if (whole.ok) checkRoundTrip(whole.value);
      }),
    ),
  };
}

function cborValuesProperty(): FuzzProperty {
  return {
    name: "CBOR values: encode then decode gives the value back, in any split",
    defaultRuns: 1000,
    weight: 1,
    property: fc.property(itemsArb, splitArb, (items, split) =>
      timed(() => {
        const encoded = concatBytes(items.map(encodeItem));
        const { decodeAll: whole } = checkCborDecoders(encoded, split, DEFAULT_DECODE_LIMITS);
        check(whole.ok, () => `decodeAll refuses what encode produced: ${toHex(encoded)}: ${whole.ok ? "" : whole.error.message}`);
        if (whole.ok) check(sameBytes(encodeValues(whole.value), encoded), () => `decode(encode(v)) re-encodes differently: ${toHex(encoded)}`);
      }),
    ),
  };
}

// --- Requests ----------------------------------------------------------------------------------

const TIGHT_REQUEST_LIMITS: RequestLimits = { ...TIGHT_LIMITS, maxFrames: 3, maxRequestBytes: 200 };

function requestsProperty(corpus: Corpus): FuzzProperty {
  const input = fc.oneof(
    { weight: 1, arbitrary: randomBytes },
    { weight: 1, arbitrary: mutate(randomFrames, corpus.all, 3) },
    { weight: 2, arbitrary: mutate(generatedRequests, corpus.all, 4) },
    { weight: 4, arbitrary: mutate(fromCorpus(corpus.requests), corpus.all) },
  );
  const limits = fc.constantFrom(DEFAULT_REQUEST_LIMITS, TIGHT_REQUEST_LIMITS);
  return {
    name: "parseRequestBody: commands or a ProtocolError",
    defaultRuns: 2000,
    weight: 2,
    property: fc.property(input, limits, (input, limits) =>
      timed(() => {
        const b = input.bytes;
        const r = attempt("parseRequestBody", () => parseRequestBody(b, limits));
        note(`requests: ${r.ok ? `accepted (${r.value.commands.length} commands)` : `rejected (${r.error.name})`}`);
        if (!r.ok) return;
        const parsed = r.value;
        check(sameBytes(concatBytes(parsed.frames.map(rawFrame)), b), () => "the request's frames do not re-encode to the body");
        check(parsed.frames.length <= limits.maxFrames, () => `${parsed.frames.length} frames accepted over the limit of ${limits.maxFrames}`);
        check(b.length <= limits.maxRequestBytes, () => `a ${b.length}-byte request accepted over the limit`);
        for (const c of parsed.commands) {
          check(typeof c.name === "string" && c.args instanceof Map && c.map instanceof Map, () => "a command without a name or args map");
          check(encodeValues([c.map]).length > 0, () => "a command map that does not encode");
        }
      }),
    ),
  };
}

// --- Responses ---------------------------------------------------------------------------------

function normalizeEvent(e: ResponseEvent): string {
  switch (e.type) {
    case "status":
      return `status ${e.requestId} ${e.status} ${toHex(encodeValues([e.map]))}`;
    case "objects":
      // Values one by one: an indefinite byte string's chunks may be spread over several events.
      return `objects ${e.requestId} ${e.values.map((v) => (v instanceof ByteStringChunk ? `chunk(${v.isFirst},${v.isLast},${toHex(v.bytes)})` : toHex(encodeValues([v])))).join(" ")}`;
    case "body":
      return `body ${e.requestId} ${toHex(e.bytes)}`;
    case "end":
      return `end ${e.requestId} ${e.clean}`;
    case "error-response":
      return `error-response ${e.requestId} ${e.errorType} ${JSON.stringify(e.message)}`;
    case "stream-settings":
      return `stream-settings ${e.streamId} ${e.encoding}`;
  }
}

/** Events as comparable strings (their grouping depends on frame boundaries only, never on chunks). */
function summarize(events: readonly ResponseEvent[]): string[] {
  return events.map(normalizeEvent);
}

interface ReadResult {
  events: ResponseEvent[];
  error?: ProtocolError;
}

function readSplit(chunks: readonly Uint8Array[], options: ResponseReaderOptions): ReadResult {
  const reader = new ResponseReader(options);
  const events: ResponseEvent[] = [];
  for (const c of chunks) {
    const r = attempt("ResponseReader.push", () => reader.push(c));
    if (!r.ok) return { events, error: r.error };
    events.push(...r.value);
  }
  const end = attempt("ResponseReader.finish", () => reader.finish());
  return end.ok ? { events } : { events, error: end.error };
}

/** Reference: one push per whole frame (as the reference frame reading cuts them), then the rest. */
function readByFrame(b: Uint8Array, options: ResponseReaderOptions): ReadResult {
  const ref = referenceFrames(b, MAX_FRAME_PAYLOAD);
  const chunks = ref.frames.map((f) => b.subarray(f.offset, f.offset + FRAME_HEADER_SIZE + f.length));
  const parsed = ref.frames.reduce((n, f) => n + FRAME_HEADER_SIZE + f.length, 0);
  if (parsed < b.length) chunks.push(b.subarray(parsed));
  return readSplit(chunks, options);
}

/** What a response amounts to per request: status, clean end, error frame. */
function verdictOf(r: ReadResult): string {
  if (r.error) return "rejected";
  const parts = r.events
    .filter((e) => e.type === "status" || e.type === "end" || e.type === "error-response")
    .map((e) => (e.type === "status" ? `status ${e.requestId} ${e.status}` : e.type === "end" ? `end ${e.requestId} ${e.clean}` : `error-response ${e.requestId}`));
  return parts.join(", ");
}

function responsesProperty(corpus: Corpus): FuzzProperty {
  const input = fc.oneof(
    { weight: 1, arbitrary: randomBytes },
    { weight: 1, arbitrary: mutate(randomFrames, corpus.all, 3) },
    { weight: 2, arbitrary: mutate(generatedResponses, corpus.all, 4) },
    { weight: 4, arbitrary: mutate(fromCorpus(corpus.responses), corpus.all) },
  );
  const FULL: ResponseReaderOptions = {};
  const FILL: ResponseReaderOptions = { emitBody: true, decodeObjects: false };
  return {
    name: "ResponseReader/collectResponses: events or a ProtocolError; split-independent; fill mode agrees with a full decode",
    defaultRuns: 1000,
    weight: 3,
    property: fc.property(input, splitArb, (input, split) => {
      timed(() => {
        const b = input.bytes;
        attempt("collectResponses", () => collectResponses(b));
        for (const [mode, options] of [["full", FULL], ["fill", FILL]] as const) {
          const reference = readByFrame(b, options);
          const got = readSplit(chunksOf(b, split), options);
          const refEvents = summarize(reference.events);
          const gotEvents = summarize(got.events);
          check((got.error === undefined) === (reference.error === undefined), () => `${mode}: split read ${got.error ? `failed: ${got.error.message}` : "succeeded"}, frame-by-frame read ${reference.error ? `failed: ${reference.error.message}` : "succeeded"}`);
          if (got.error && reference.error) {
            check(got.error.message === reference.error.message, () => `${mode}: split read failed with "${got.error?.message}", frame by frame with "${reference.error?.message}"`);
          }
          // A chunk whose frames fail loses its events (push throws): the split read is a prefix.
          const comparable = got.error ? refEvents.slice(0, gotEvents.length) : refEvents;
          check(gotEvents.length === comparable.length && gotEvents.every((e, i) => e === comparable[i]), () => `${mode}: the events depend on the split:\n  split: ${gotEvents.join("\n         ")}\n  frames: ${refEvents.join("\n          ")}`);
        }
        // The cache stores what the fill mode accepts: the client must accept the same.
        const full = readByFrame(b, FULL);
        const fill = readByFrame(b, FILL);
        note(`responses: ${full.error ? `rejected (${full.error.name})` : verdictOf(full).includes("end 1 true") && verdictOf(full).includes("status 1 ok") ? "complete ok for request 1" : "accepted, other"}`);
        check(verdictOf(full) === verdictOf(fill), () => `fill mode says "${verdictOf(fill)}" (${fill.error?.message ?? "no error"}), a full decode says "${verdictOf(full)}" (${full.error?.message ?? "no error"})`);
        if (!full.error) {
          const ids = new Set(full.events.filter((e) => e.type === "status" && e.status === "ok").map((e) => (e as { requestId: number }).requestId));
          for (const id of ids) {
            const cleanEnd = full.events.some((e) => e.type === "end" && e.requestId === id && e.clean);
            if (!cleanEnd) continue;
            const objects = full.events.flatMap((e) => (e.type === "objects" && e.requestId === id ? e.values : []));
            const stored = concatBytes(fill.events.flatMap((e) => (e.type === "body" && e.requestId === id ? [e.bytes] : [])));
            const decoded = attempt("decodeAll of the stored body", () => decodeAll(stored));
            check(decoded.ok, () => `request ${id}: the body the fill would store does not decode: ${decoded.ok ? "" : decoded.error.message}`);
            if (decoded.ok) check(sameBytes(encodeValues(decoded.value), encodeValues(objects)), () => `request ${id}: the stored body decodes to other objects than the client sees`);
          }
        }
      });
    }),
  };
}

/** The codec properties, in the order they run. */
export function codecProperties(corpus: Corpus): FuzzProperty[] {
  return [framesProperty(corpus), cborProperty(corpus), cborValuesProperty(), requestsProperty(corpus), responsesProperty(corpus)];
}


/** The input generators, for tests of the generators themselves. */
export const generators = { randomBytes, cborSequence, randomFrames, generatedRequests, generatedResponses, zstdResponses };
