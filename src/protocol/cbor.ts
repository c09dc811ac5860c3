/**
 * The CBOR subset Mercurial speaks (mercurial/utils/cborutil.py), with its semantics:
 *
 * - byte strings everywhere, map keys included; text strings are rejected;
 * - tag 258 ("mathematical finite set") around a definite array, decoded as a Set;
 * - no floats, no other tags, no undefined or simple values, no indefinite arrays or maps;
 * - an indefinite-length byte string only at the top level, surfaced as a series of
 *   ByteStringChunk values (first chunk `isFirst`, a final empty chunk `isLast`);
 * - encoding is deterministic: map entries and set elements sorted by Mercurial's key
 *   (type name, then Python ordering, which is plain byte order for byte strings — not RFC 7049
 *   length-first order), definite lengths, shortest integer forms.
 *
 * Both directions are hand-written rather than done by cbor-x, which we tried first and which does
 * not fit this subset:
 * - decoding: cbor-x cannot decode indefinite-length byte strings (rawstorefiledata emits them),
 *   it accepts much that cborutil rejects (text, floats, other tags), and a response is a
 *   *sequence* of top-level values arriving in frames split anywhere, which needs an incremental
 *   decoder that returns 0..n values per chunk and keeps only the unfinished item;
 * - encoding: cbor-x writes integers from 2^32 up as floats, negative integers below -2^63 as
 *   bignum tags, and maps in insertion order; Mercurial wants shortest-form integers up to ±2^64
 *   and bytewise-sorted keys. A direct writer is shorter than the workarounds.
 */
import { CborDecodeError, CborEncodeError } from "./errors.ts";
import { concatBytes } from "./frames.ts";

/** One chunk of a top-level indefinite-length byte string (cborutil.bytestringchunk). */
export class ByteStringChunk {
  constructor(
    readonly bytes: Uint8Array,
    readonly isFirst = false,
    readonly isLast = false,
  ) {}
}

export type CborScalar = Uint8Array | number | bigint | boolean | null;
export type CborValue = CborScalar | CborValue[] | CborMap | CborSet | ByteStringChunk;
/** Map keys are byte arrays compared by identity in JS: look them up with `mapGet`. */
export type CborMap = Map<CborScalar, CborValue>;
export type CborSet = Set<CborScalar>;

const MAJOR_UINT = 0;
const MAJOR_NEGINT = 1;
const MAJOR_BYTES = 2;
const MAJOR_STRING = 3;
const MAJOR_ARRAY = 4;
const MAJOR_MAP = 5;
const MAJOR_TAG = 6;
const MAJOR_SPECIAL = 7;
const TAG_FINITE_SET = 258;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/** ASCII/UTF-8 text to the byte string Mercurial would use for it. */
export function bytes(text: string): Uint8Array {
  return textEncoder.encode(text);
}

/** A byte string as text (for names, messages and other ASCII protocol atoms). */
export function text(value: Uint8Array): string {
  return textDecoder.decode(value);
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Looks a key up by content (byte-string keys are distinct objects). */
export function mapGet(map: CborMap, key: string | CborScalar): CborValue | undefined {
  const wanted = typeof key === "string" ? bytes(key) : key;
  for (const [k, v] of map) if (scalarEquals(k, wanted)) return v;
  return undefined;
}

/** Builds a map with byte-string keys from an object; handy for encoders and tests. */
export function cborMap(entries: Record<string, CborValue> | [CborScalar | string, CborValue][]): CborMap {
  const list = Array.isArray(entries) ? entries : Object.entries(entries);
  return new Map(list.map(([k, v]) => [typeof k === "string" ? bytes(k) : k, v]));
}

function scalarEquals(a: CborScalar, b: CborScalar): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array) return bytesEqual(a, b);
  // Mercurial compares ints by value whatever their width.
  if ((typeof a === "number" || typeof a === "bigint") && (typeof b === "number" || typeof b === "bigint")) {
    return BigInt(a) === BigInt(b);
  }
  return a === b;
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/** What cborutil.decodeitem calls SPECIAL_*: how an item relates to the structure around it. */
const enum Special {
  None,
  StartIndefiniteBytes,
  StartArray,
  StartMap,
  StartSet,
  Break,
}

/** Result of reading one item: complete with its size, or incomplete needing `wanted` more bytes. */
interface Item {
  complete: boolean;
  value: CborScalar;
  /** Bytes read when complete; bytes still needed when not. */
  count: number;
  special: Special;
}

const INCOMPLETE = (wanted: number): Item => ({ complete: false, value: null, count: wanted, special: Special.None });

/** Reads an item's argument (cborutil.decodeuint); `null` for the indefinite marker. */
function readArgument(
  b: Uint8Array,
  at: number,
  info: number,
  allowIndefinite: boolean,
  offsetBase: number,
): { complete: boolean; value: number | bigint | null; count: number } {
  if (info < 24) return { complete: true, value: info, count: 0 };
  if (info === 31) {
    if (allowIndefinite) return { complete: true, value: null, count: 0 };
    throw new CborDecodeError("indefinite length uint not allowed here", offsetBase + at - 1);
  }
  if (info >= 28) throw new CborDecodeError(`unsupported subtype on integer type: ${info}`, offsetBase + at - 1);
  const size = 1 << (info - 24);
  if (b.length - at < size) return { complete: false, value: null, count: size - (b.length - at) };
  let value: number | bigint;
  switch (size) {
    case 1:
      value = b[at] as number;
      break;
    case 2:
      value = ((b[at] as number) << 8) | (b[at + 1] as number);
      break;
    case 4:
      value = ((b[at] as number) * 0x1000000 + (((b[at + 1] as number) << 16) | ((b[at + 2] as number) << 8) | (b[at + 3] as number)));
      break;
    default: {
      const view = new DataView(b.buffer, b.byteOffset + at, 8);
      const big = view.getBigUint64(0);
      value = big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
    }
  }
  return { complete: true, value, count: size };
}

function asLength(value: number | bigint, what: string, offset: number): number {
  if (typeof value === "bigint" || value > Number.MAX_SAFE_INTEGER) {
    throw new CborDecodeError(`${what} of ${value} is too large`, offset);
  }
  return value;
}

/** cborutil.decodeitem: one item at `at` of `b`. `offsetBase` only serves error offsets. */
function decodeItem(b: Uint8Array, at: number, offsetBase: number): Item {
  const initial = b[at] as number;
  const major = initial >> 5;
  const info = initial & 0x1f;
  const start = at;
  at += 1;
  switch (major) {
    case MAJOR_UINT:
    case MAJOR_NEGINT: {
      const arg = readArgument(b, at, info, false, offsetBase);
      if (!arg.complete) return INCOMPLETE(arg.count);
      const v = arg.value as number | bigint;
      const value = major === MAJOR_UINT ? v : negate(v);
      return { complete: true, value, count: arg.count + 1, special: Special.None };
    }
    case MAJOR_BYTES: {
      const arg = readArgument(b, at, info, true, offsetBase);
      if (!arg.complete) return INCOMPLETE(arg.count);
      if (arg.value === null) return { complete: true, value: null, count: 1, special: Special.StartIndefiniteBytes };
      const size = asLength(arg.value, "byte string length", offsetBase + start);
      const begin = at + arg.count;
      if (b.length - begin < size) return INCOMPLETE(size - (b.length - begin));
      // A view of the input, not a copy: revisions are never copied twice, and profiling showed
      // copies cost a third of decoding time. No caller in this project reuses its buffers.
      return { complete: true, value: b.subarray(begin, begin + size), count: 1 + arg.count + size, special: Special.None };
    }
    case MAJOR_STRING:
      throw new CborDecodeError("string major type not supported", offsetBase + start);
    case MAJOR_ARRAY:
    case MAJOR_MAP: {
      const arg = readArgument(b, at, info, false, offsetBase);
      if (!arg.complete) return INCOMPLETE(arg.count);
      const size = asLength(arg.value as number | bigint, "collection size", offsetBase + start);
      return { complete: true, value: size, count: arg.count + 1, special: major === MAJOR_ARRAY ? Special.StartArray : Special.StartMap };
    }
    case MAJOR_TAG: {
      const arg = readArgument(b, at, info, false, offsetBase);
      if (!arg.complete) return INCOMPLETE(arg.count);
      if (arg.value !== TAG_FINITE_SET) {
        throw new CborDecodeError(`semantic tag ${arg.value} not allowed`, offsetBase + start);
      }
      const next = at + arg.count;
      if (next >= b.length) return INCOMPLETE(1);
      const inner = decodeItem(b, next, offsetBase);
      if (!inner.complete) return inner;
      if (inner.special !== Special.StartArray) {
        throw new CborDecodeError("expected array after finite set semantic tag", offsetBase + next);
      }
      return { complete: true, value: inner.value, count: 1 + arg.count + inner.count, special: Special.StartSet };
    }
    default: {
      // MAJOR_SPECIAL
      if (info === 20) return { complete: true, value: false, count: 1, special: Special.None };
      if (info === 21) return { complete: true, value: true, count: 1, special: Special.None };
      if (info === 22) return { complete: true, value: null, count: 1, special: Special.None };
      if (info === 31) return { complete: true, value: null, count: 1, special: Special.Break };
      throw new CborDecodeError(`special type ${info} not allowed`, offsetBase + start);
    }
  }
}

function negate(v: number | bigint): number | bigint {
  // -v - 1 leaves the safe range at v = 2^53 - 1: such values become bigints, like larger ones.
  if (typeof v === "number") return v < Number.MAX_SAFE_INTEGER ? -v - 1 : -BigInt(v) - 1n;
  const n = -v - 1n;
  return n >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(n) : n;
}

const enum State {
  None,
  WantMapKey,
  WantMapValue,
  WantArrayValue,
  WantSetValue,
  WantByteStringChunkFirst,
  WantByteStringChunkSubsequent,
}

interface OpenCollection {
  remaining: number;
  value: CborValue[] | CborMap | CborSet;
  state: State.WantArrayValue | State.WantMapKey | State.WantSetValue;
  /** Map keys / set elements by content, so duplicates are found in O(1). */
  seen?: Map<string, CborScalar>;
}

export interface DecodeLimits {
  /** Deepest nesting of arrays/maps/sets accepted. */
  maxDepth: number;
  /** Largest element count a single array/map/set may announce. */
  maxCollectionSize: number;
  /** Largest byte string (or byte string chunk) accepted. */
  maxByteStringLength: number;
  /**
   * What all the decoders of one request may still produce together (items and byte-string
   * bytes). Every decoded item costs memory whatever its size (an empty byte string is one
   * 1-byte item but a ~100-byte object), so the count is what bounds a request's memory.
   */
  budget?: DecodeBudget;
}

/** Items and byte-string bytes left for the values of one request, shared by its decoders. */
export class DecodeBudget {
  private itemsLeft: number;
  private bytesLeft: number;

  constructor(
    readonly maxItems: number,
    readonly maxBytes: number,
  ) {
    this.itemsLeft = maxItems;
    this.bytesLeft = maxBytes;
  }

  /** Takes one item of `bytes` byte-string bytes, or throws when the request is past its budget. */
  spend(bytes: number, at: number): void {
    this.itemsLeft -= 1;
    this.bytesLeft -= bytes;
    if (this.itemsLeft < 0) throw new CborDecodeError(`more than ${this.maxItems} CBOR items in one request`, at);
    if (this.bytesLeft < 0) throw new CborDecodeError(`more than ${this.maxBytes} bytes of byte strings in one request`, at);
  }
}

export const DEFAULT_DECODE_LIMITS: DecodeLimits = {
  maxDepth: 64,
  maxCollectionSize: 1 << 24,
  maxByteStringLength: 1 << 30,
};

export interface DecodeResult {
  /** Whether values are waiting in `takeAvailable()`. */
  available: boolean;
  /** Bytes of this input consumed into items. */
  readCount: number;
  /** Bytes still needed to finish the item in progress (0: none known). */
  wanted: number;
}

/**
 * cborutil.sansiodecoder: decodes a sequence of top-level values item by item. An item that is
 * not complete in the input is not consumed: the caller passes its bytes again with more data
 * (BufferingDecoder does that). Collections are emitted once complete.
 */
export class SansIoDecoder {
  /** Total bytes consumed into items so far. */
  decodedByteCount = 0;
  private state: State = State.None;
  private stack: OpenCollection[] = [];
  private mapKey: CborScalar = null;
  private values: CborValue[] = [];
  /** For each value in `values`, `decodedByteCount` right after its last byte. */
  private ends: number[] = [];

  constructor(private readonly limits: DecodeLimits = DEFAULT_DECODE_LIMITS) {}

  /** Whether a value has been partially decoded. */
  get inProgress(): boolean {
    return this.state !== State.None;
  }

  decode(b: Uint8Array, offset = 0): DecodeResult {
    const initial = offset;
    while (offset < b.length) {
      const item = decodeItem(b, offset, this.decodedByteCount - offset);
      if (!item.complete) {
        this.checkWanted(item.count);
        return { available: this.values.length > 0, readCount: offset - initial, wanted: item.count };
      }
      this.checkItemLimits(item, this.decodedByteCount);
      offset += item.count;
      this.decodedByteCount += item.count;
      this.accept(item, this.decodedByteCount - item.count);
      this.closeFinishedCollections();
    }
    return { available: this.values.length > 0, readCount: offset - initial, wanted: 0 };
  }

  /** Returns the complete values decoded so far and forgets them. */
  takeAvailable(): CborValue[] {
    const values = this.values;
    this.values = [];
    this.ends = [];
    return values;
  }

  /** Like takeAvailable, with each value's end offset in the decoded byte stream. */
  takeAvailableWithEnds(): { values: CborValue[]; ends: number[] } {
    const ends = this.ends;
    return { values: this.takeAvailable(), ends };
  }

  private emit(value: CborValue): void {
    this.values.push(value);
    this.ends.push(this.decodedByteCount);
  }

  /** Refuses to wait for (and so buffer) an item larger than any limit allows. */
  private checkWanted(wanted: number): void {
    if (wanted > this.limits.maxByteStringLength + 9) {
      throw new CborDecodeError(
        `an item needs ${wanted} more bytes, over the byte string limit of ${this.limits.maxByteStringLength}`,
        this.decodedByteCount,
      );
    }
  }

  private checkItemLimits(item: Item, at: number): void {
    this.limits.budget?.spend(item.value instanceof Uint8Array ? item.value.length : 0, at);
    if (item.special === Special.StartArray || item.special === Special.StartMap || item.special === Special.StartSet) {
      if ((item.value as number) > this.limits.maxCollectionSize) {
        throw new CborDecodeError(
          `collection of ${item.value} items exceeds the limit of ${this.limits.maxCollectionSize}`,
          at,
        );
      }
      if (this.stack.length >= this.limits.maxDepth) {
        throw new CborDecodeError(`nesting deeper than ${this.limits.maxDepth} levels`, at);
      }
    } else if (item.value instanceof Uint8Array && item.value.length > this.limits.maxByteStringLength) {
      throw new CborDecodeError(
        `byte string of ${item.value.length} bytes exceeds the limit of ${this.limits.maxByteStringLength}`,
        at,
      );
    }
  }

  private accept(item: Item, at: number): void {
    switch (this.state) {
      case State.None:
        return this.acceptTopLevel(item, at);
      case State.WantArrayValue:
        return this.acceptArrayValue(item, at);
      case State.WantMapKey:
        return this.acceptMapKey(item, at);
      case State.WantMapValue:
        return this.acceptMapValue(item, at);
      case State.WantSetValue:
        return this.acceptSetValue(item, at);
      case State.WantByteStringChunkFirst:
      case State.WantByteStringChunkSubsequent:
        return this.acceptByteStringChunk(item, at);
    }
  }

  private acceptTopLevel(item: Item, at: number): void {
    switch (item.special) {
      case Special.None:
        return this.emit(item.value);
      case Special.StartIndefiniteBytes:
        this.state = State.WantByteStringChunkFirst;
        return;
      case Special.Break:
        throw new CborDecodeError("unhandled special state: 5", at);
      default:
        return this.open(item);
    }
  }

  private open(item: Item): void {
    const remaining = item.value as number;
    if (item.special === Special.StartArray) {
      this.stack.push({ remaining, value: [], state: State.WantArrayValue });
      this.state = State.WantArrayValue;
    } else if (item.special === Special.StartMap) {
      this.stack.push({ remaining, value: new Map(), state: State.WantMapKey, seen: new Map() });
      this.state = State.WantMapKey;
    } else {
      this.stack.push({ remaining, value: new Set(), state: State.WantSetValue, seen: new Map() });
      this.state = State.WantSetValue;
    }
  }

  /** Adds a nested collection to its parent and makes it the current one. */
  private openNested(item: Item, attach: (value: CborValue) => void): void {
    this.open(item);
    attach((this.stack[this.stack.length - 1] as OpenCollection).value);
  }

  private top(): OpenCollection {
    return this.stack[this.stack.length - 1] as OpenCollection;
  }

  private acceptArrayValue(item: Item, at: number): void {
    const parent = this.top();
    const list = parent.value as CborValue[];
    parent.remaining -= 1;
    switch (item.special) {
      case Special.None:
        list.push(item.value);
        return;
      case Special.StartArray:
      case Special.StartMap:
      case Special.StartSet:
        return this.openNested(item, (v) => list.push(v));
      case Special.StartIndefiniteBytes:
        throw new CborDecodeError("indefinite length bytestrings not allowed as array values", at);
      default:
        throw new CborDecodeError(`unhandled special item when expecting array value: ${item.special}`, at);
    }
  }

  private acceptMapKey(item: Item, at: number): void {
    switch (item.special) {
      case Special.None:
        this.mapKey = item.value;
        this.state = State.WantMapValue;
        return;
      case Special.StartIndefiniteBytes:
        throw new CborDecodeError("indefinite length bytestrings not allowed as map keys", at);
      case Special.StartArray:
      case Special.StartMap:
      case Special.StartSet:
        throw new CborDecodeError("collections not supported as map keys", at);
      default:
        throw new CborDecodeError(`unhandled special item when expecting map key: ${item.special}`, at);
    }
  }

  private acceptMapValue(item: Item, at: number): void {
    const parent = this.top();
    const key = this.mapKey;
    parent.remaining -= 1;
    this.state = State.WantMapKey;
    switch (item.special) {
      case Special.None:
        setByContent(parent, key, item.value);
        return;
      case Special.StartArray:
      case Special.StartMap:
      case Special.StartSet:
        return this.openNested(item, (v) => setByContent(parent, key, v));
      case Special.StartIndefiniteBytes:
        throw new CborDecodeError("indefinite length bytestrings not allowed as map values", at);
      default:
        throw new CborDecodeError(`unhandled special item when expecting map value: ${item.special}`, at);
    }
  }

  private acceptSetValue(item: Item, at: number): void {
    const parent = this.top();
    parent.remaining -= 1;
    switch (item.special) {
      case Special.None:
        addByContent(parent, item.value);
        return;
      case Special.StartIndefiniteBytes:
        throw new CborDecodeError("indefinite length bytestrings not allowed as set values", at);
      case Special.StartArray:
      case Special.StartMap:
      case Special.StartSet:
        throw new CborDecodeError("collections not allowed as set values", at);
      default:
        throw new CborDecodeError(`unhandled special item when expecting set value: ${item.special}`, at);
    }
  }

  private acceptByteStringChunk(item: Item, at: number): void {
    const first = this.state === State.WantByteStringChunkFirst;
    if (item.special === Special.None && item.value instanceof Uint8Array) {
      this.emit(new ByteStringChunk(item.value.slice(), first, false));
      this.state = State.WantByteStringChunkSubsequent;
    } else if (item.special === Special.Break) {
      this.emit(new ByteStringChunk(new Uint8Array(0), first, true));
      this.state = State.None;
    } else {
      throw new CborDecodeError(`unexpected special value when expecting bytestring chunk: ${item.special}`, at);
    }
  }

  /** Emits every collection at the top of the stack whose last element just arrived. */
  private closeFinishedCollections(): void {
    while (
      (this.state === State.WantArrayValue || this.state === State.WantMapKey || this.state === State.WantSetValue) &&
      this.top().remaining === 0
    ) {
      const done = this.stack.pop() as OpenCollection;
      if (this.stack.length > 0) {
        this.state = this.top().state;
      } else {
        this.emit(done.value);
        this.state = State.None;
      }
    }
  }
}

/** Duplicate keys overwrite, as in a Python dict; keys compare by content. */
function setByContent(map: OpenCollection, key: CborScalar, value: CborValue): void {
  const id = scalarId(key);
  const existing = map.seen?.get(id);
  if (existing === undefined) map.seen?.set(id, key);
  (map.value as CborMap).set(existing === undefined ? key : existing, value);
}

function addByContent(set: OpenCollection, value: CborScalar): void {
  const id = scalarId(value);
  if (set.seen?.has(id)) return;
  set.seen?.set(id, value);
  (set.value as CborSet).add(value);
}

/** A string that identifies a scalar by content (ints by value, whatever their JS type). */
function scalarId(value: CborScalar): string {
  if (value instanceof Uint8Array) {
    let s = "b";
    for (let i = 0; i < value.length; i++) s += String.fromCharCode(value[i] as number);
    return s;
  }
  if (typeof value === "number" || typeof value === "bigint") return `i${value}`;
  return `s${value}`;
}

/**
 * cborutil.bufferingdecoder: keeps input that did not complete an item and concatenates it with
 * later input once enough has arrived (as announced by `wanted`), so a large byte string split
 * over many frames is copied once, not once per frame.
 */
export class BufferingDecoder {
  private readonly decoder: SansIoDecoder;
  private chunks: Uint8Array[] = [];
  private chunksLength = 0;
  private wanted = 0;

  constructor(limits?: DecodeLimits) {
    this.decoder = new SansIoDecoder(limits);
  }

  /** Bytes held back, waiting for the rest of an item. */
  get buffered(): number {
    return this.chunksLength;
  }

  /** Whether input ended cleanly so far (no partial item or collection pending). */
  get atValueBoundary(): boolean {
    return this.chunksLength === 0 && !this.decoder.inProgress;
  }

  /** Total bytes consumed into items. */
  get decodedByteCount(): number {
    return this.decoder.decodedByteCount;
  }

  decode(input: Uint8Array): DecodeResult {
    let data = input;
    let oldLength = 0;
    if (this.chunksLength > 0) {
      if (input.length < this.wanted) {
        this.chunks.push(input);
        this.chunksLength += input.length;
        this.wanted -= input.length;
        return { available: false, readCount: 0, wanted: this.wanted };
      }
      this.chunks.push(input);
      data = concatBytes(this.chunks);
      oldLength = this.chunksLength;
      this.chunks = [];
      this.chunksLength = 0;
    }
    const result = this.decoder.decode(data);
    this.wanted = result.wanted;
    if (result.readCount < data.length) {
      // Keep our own copy: the caller may reuse its buffer.
      const rest = data.slice(result.readCount);
      this.chunks.push(rest);
      this.chunksLength = rest.length;
    }
    return { ...result, readCount: result.readCount - oldLength };
  }

  takeAvailable(): CborValue[] {
    return this.decoder.takeAvailable();
  }

  takeAvailableWithEnds(): { values: CborValue[]; ends: number[] } {
    return this.decoder.takeAvailableWithEnds();
  }
}

/**
 * cborutil.decodeall: the input must be a whole number of complete values.
 */
export function decodeAll(input: Uint8Array, limits?: DecodeLimits): CborValue[] {
  if (input.length === 0) return [];
  const decoder = new SansIoDecoder(limits);
  const result = decoder.decode(input);
  if (result.readCount !== input.length) {
    throw new CborDecodeError("input data not fully consumed", result.readCount);
  }
  if (decoder.inProgress) throw new CborDecodeError("input data not complete", input.length);
  return decoder.takeAvailable();
}

/** Decodes exactly one value. */
export function decodeOne(input: Uint8Array, limits?: DecodeLimits): CborValue {
  const values = decodeAll(input, limits);
  if (values.length !== 1) throw new CborDecodeError(`expected exactly one CBOR value, found ${values.length}`);
  return values[0] as CborValue;
}

// ---------------------------------------------------------------------------------------------
// Validating without decoding
// ---------------------------------------------------------------------------------------------

interface OpenStructure {
  /** Items still expected (a map counts keys and values). */
  remaining: number;
  kind: "array" | "map" | "set";
  /** For maps: items seen so far (even = next is a key). */
  seen: number;
}

/**
 * Checks that bytes form a sequence of values in cborutil's subset — the same rules as
 * SansIoDecoder — without materialising them: byte-string contents are counted, not kept, so a
 * 1 GB revision passes through in constant memory. Used where the bytes only need to be
 * *right* (a response being stored), not read.
 */
export class CborValidator {
  private readonly header = new Uint8Array(9);
  private headerLength = 0;
  /** Bytes of byte-string content still to pass over. */
  private skip = 0;
  private skipIsChunk = false;
  private readonly stack: OpenStructure[] = [];
  private inIndefinite = false;
  private afterSetTag = false;
  private offset = 0;

  /** Complete top-level values seen so far (an indefinite byte string counts once). */
  values = 0;

  constructor(private readonly limits: DecodeLimits = DEFAULT_DECODE_LIMITS) {}

  /** Whether the input so far ends exactly after a complete value. */
  get atValueBoundary(): boolean {
    return this.skip === 0 && this.headerLength === 0 && this.stack.length === 0 && !this.inIndefinite && !this.afterSetTag;
  }

  push(b: Uint8Array): void {
    let at = 0;
    while (at < b.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, b.length - at);
        this.skip -= n;
        at += n;
        this.offset += n;
        if (this.skip === 0 && !this.skipIsChunk) this.itemDone();
        continue;
      }
      at = this.readHeader(b, at);
    }
  }

  /** Accumulates one item header (initial byte + argument), then interprets it. */
  private readHeader(b: Uint8Array, at: number): number {
    if (this.headerLength === 0) this.header[this.headerLength++] = b[at++] as number;
    const initial = this.header[0] as number;
    const info = initial & 0x1f;
    const argumentSize = info < 24 || info === 31 ? 0 : info <= 27 ? 1 << (info - 24) : -1;
    if (argumentSize < 0) throw new CborDecodeError(`unsupported subtype on integer type: ${info}`, this.offset);
    while (this.headerLength < 1 + argumentSize && at < b.length) this.header[this.headerLength++] = b[at++] as number;
    if (this.headerLength < 1 + argumentSize) return at;
    const start = this.offset;
    this.offset += this.headerLength;
    const argument = info < 24 ? info : info === 31 ? -1 : this.argumentValue(argumentSize);
    this.headerLength = 0;
    this.interpret(initial >> 5, info, argument, start);
    return at;
  }

  private argumentValue(size: number): number {
    let value = 0;
    for (let i = 1; i <= size; i++) value = value * 256 + (this.header[i] as number);
    return value;
  }

  private interpret(major: number, info: number, argument: number, at: number): void {
    const fail = (message: string): never => {
      throw new CborDecodeError(message, at);
    };
    if (this.inIndefinite) {
      if (major === MAJOR_BYTES && info !== 31) return this.startBytes(argument, true, at);
      if (major === MAJOR_SPECIAL && info === 31) {
        this.inIndefinite = false;
        return this.itemDone();
      }
      return fail("unexpected special value when expecting bytestring chunk");
    }
    if (this.afterSetTag && major !== MAJOR_ARRAY) fail("expected array after finite set semantic tag");
    const parent = this.stack[this.stack.length - 1];
    const isKey = parent?.kind === "map" && parent.seen % 2 === 0;
    switch (major) {
      case MAJOR_UINT:
      case MAJOR_NEGINT:
        if (info === 31) fail("indefinite length uint not allowed here");
        return this.itemDone();
      case MAJOR_BYTES:
        if (info !== 31) return this.startBytes(argument, false, at);
        if (parent) fail("indefinite length bytestrings not allowed inside collections");
        this.inIndefinite = true;
        return;
      case MAJOR_STRING:
        return fail("string major type not supported");
      case MAJOR_ARRAY:
      case MAJOR_MAP: {
        if (info === 31) fail("indefinite length uint not allowed here");
        if (parent?.kind === "set") fail("collections not allowed as set values");
        if (isKey) fail("collections not supported as map keys");
        if (this.stack.length >= this.limits.maxDepth) fail(`nesting deeper than ${this.limits.maxDepth} levels`);
        if (argument > this.limits.maxCollectionSize) fail(`collection of ${argument} items exceeds the limit of ${this.limits.maxCollectionSize}`);
        const kind = major === MAJOR_MAP ? "map" : this.afterSetTag ? "set" : "array";
        this.afterSetTag = false;
        this.stack.push({ remaining: kind === "map" ? argument * 2 : argument, kind, seen: 0 });
        if (argument === 0) {
          this.stack.pop();
          this.itemDone();
        }
        return;
      }
      case MAJOR_TAG:
        if (argument !== TAG_FINITE_SET) fail(`semantic tag ${argument} not allowed`);
        if (parent?.kind === "set") fail("collections not allowed as set values");
        if (isKey) fail("collections not supported as map keys");
        this.afterSetTag = true;
        return;
      default:
        if (info === 20 || info === 21 || info === 22) return this.itemDone();
        if (info === 31) fail("unhandled special state: 5");
        return fail(`special type ${info} not allowed`);
    }
  }

  private startBytes(length: number, chunk: boolean, at: number): void {
    if (length > this.limits.maxByteStringLength) {
      throw new CborDecodeError(`byte string of ${length} bytes exceeds the limit of ${this.limits.maxByteStringLength}`, at);
    }
    this.skip = length;
    this.skipIsChunk = chunk;
    if (length === 0 && !chunk) this.itemDone();
  }

  /** An item ended: count it in its collection, closing every collection it completes. */
  private itemDone(): void {
    for (;;) {
      const top = this.stack[this.stack.length - 1];
      if (!top) {
        this.values += 1;
        return;
      }
      top.remaining -= 1;
      top.seen += 1;
      if (top.remaining > 0) return;
      this.stack.pop();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/** A growable output buffer. */
class ByteWriter {
  private buffer = new Uint8Array(256);
  private length = 0;

  private reserve(extra: number): void {
    if (this.length + extra <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.length + extra) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
  }

  byte(b: number): void {
    this.reserve(1);
    this.buffer[this.length++] = b;
  }

  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buffer.set(b, this.length);
    this.length += b.length;
  }

  /** A major type with its argument in the shortest form (cborutil.encodelength). */
  head(major: number, argument: number | bigint): void {
    const n = BigInt(argument);
    const m = major << 5;
    if (n < 24n) return this.byte(m | Number(n));
    const size = n <= 0xffn ? 1 : n <= 0xffffn ? 2 : n <= 0xffffffffn ? 4 : 8;
    this.byte(m | (24 + Math.log2(size)));
    for (let i = size - 1; i >= 0; i--) this.byte(Number((n >> BigInt(8 * i)) & 0xffn));
  }

  result(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }
}

/** Encodes a value as Mercurial's cborutil.streamencode would. */
export function encode(value: CborValue): Uint8Array {
  const writer = new ByteWriter();
  writeValue(writer, value, 0);
  return writer.result();
}

/** Encodes a sequence of top-level values back to back. */
export function encodeSequence(values: readonly CborValue[]): Uint8Array {
  const writer = new ByteWriter();
  for (const value of values) writeValue(writer, value, 0);
  return writer.result();
}

/**
 * An indefinite-length byte string (cborutil.streamencodebytestringfromiter): `5f`, one definite
 * byte string per chunk, `ff`.
 */
export function encodeIndefiniteByteString(chunks: readonly Uint8Array[]): Uint8Array {
  const writer = new ByteWriter();
  writer.byte(0x5f);
  for (const chunk of chunks) writeValue(writer, chunk, 0);
  writer.byte(0xff);
  return writer.result();
}

const MAX_UINT64 = (1n << 64n) - 1n;
const TRUE = 0xf5;
const FALSE = 0xf4;
const NULL = 0xf6;

function writeValue(writer: ByteWriter, value: CborValue, depth: number): void {
  if (depth > 256) throw new CborEncodeError("value nests deeper than 256 levels");
  if (value === null) return writer.byte(NULL);
  if (value === true) return writer.byte(TRUE);
  if (value === false) return writer.byte(FALSE);
  if (value instanceof Uint8Array) {
    writer.head(MAJOR_BYTES, value.length);
    return writer.bytes(value);
  }
  if (typeof value === "number" || typeof value === "bigint") return writeInteger(writer, value);
  if (Array.isArray(value)) {
    writer.head(MAJOR_ARRAY, value.length);
    for (const item of value) writeValue(writer, item, depth + 1);
    return;
  }
  if (value instanceof Map) {
    const entries = [...value.entries()].map(([k, v]) => [checkScalar(k), v] as const);
    entries.sort((a, b) => compareMercurial(a[0], b[0]));
    writer.head(MAJOR_MAP, entries.length);
    for (const [k, v] of entries) {
      writeValue(writer, k, depth + 1);
      writeValue(writer, v, depth + 1);
    }
    return;
  }
  if (value instanceof Set) {
    const elements = [...value].map(checkScalar).sort(compareMercurial);
    writer.head(MAJOR_TAG, TAG_FINITE_SET);
    writer.head(MAJOR_ARRAY, elements.length);
    for (const element of elements) writeValue(writer, element, depth + 1);
    return;
  }
  if (value instanceof ByteStringChunk) {
    throw new CborEncodeError("a ByteStringChunk is a streaming artefact: use encodeIndefiniteByteString");
  }
  const kind = typeof value === "string" ? "text string" : typeof value;
  throw new CborEncodeError(`do not know how to encode a ${kind}: Mercurial's CBOR has byte strings only`);
}

/** cborutil.streamencodeint: -2^64 <= v < 2^64, negatives as major type 1 of -v-1. */
function writeInteger(writer: ByteWriter, value: number | bigint): void {
  if (typeof value === "number" && !Number.isSafeInteger(value)) {
    throw new CborEncodeError(`cannot encode ${value}: Mercurial's CBOR has integers only (no floats)`);
  }
  const n = BigInt(value);
  if (n > MAX_UINT64 || n < -MAX_UINT64 - 1n) throw new CborEncodeError(`integer ${value} does not fit 64 bits`);
  if (n >= 0n) writer.head(MAJOR_UINT, n);
  else writer.head(MAJOR_NEGINT, -n - 1n);
}

function checkScalar(value: CborValue): CborScalar {
  if (value instanceof Map || value instanceof Set || Array.isArray(value) || value instanceof ByteStringChunk) {
    throw new CborEncodeError("collections cannot be map keys or set elements in Mercurial's CBOR");
  }
  return value;
}

/**
 * Mercurial sorts with key (type(v).__name__, v): values group by Python type name
 * (bool < bytes < int < NoneType), then compare by Python ordering.
 */
function compareMercurial(a: unknown, b: unknown): number {
  const ta = pythonTypeName(a);
  const tb = pythonTypeName(b);
  if (ta !== tb) return ta < tb ? -1 : 1;
  if (a instanceof Uint8Array && b instanceof Uint8Array) return compareBytes(a, b);
  if (ta === "int" || ta === "bool") {
    const x = toBigInt(a as number | bigint | boolean);
    const y = toBigInt(b as number | bigint | boolean);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return 0;
}

function toBigInt(v: number | bigint | boolean): bigint {
  return typeof v === "boolean" ? (v ? 1n : 0n) : BigInt(v);
}

function pythonTypeName(v: unknown): string {
  if (v instanceof Uint8Array) return "bytes";
  if (typeof v === "boolean") return "bool";
  if (typeof v === "number" || typeof v === "bigint") return "int";
  return "NoneType";
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}
