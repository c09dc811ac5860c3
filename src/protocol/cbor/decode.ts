/**
 * The decoder (cborutil.sansiodecoder): turns a sequence of top-level values into CborValues item
 * by item, enforcing Mercurial's subset and the DecodeLimits, with decodeAll/decodeOne for inputs
 * that are complete. BufferingDecoder (buffering.ts) feeds it input split anywhere.
 */
import { CborDecodeError } from "../errors.ts";
import { Special, decodeItem, type Item } from "./item.ts";
import { DEFAULT_DECODE_LIMITS, type DecodeLimits } from "./limits.ts";
import { ByteStringChunk, type CborMap, type CborScalar, type CborSet, type CborValue } from "./values.ts";

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

