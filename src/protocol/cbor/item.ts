/**
 * One CBOR item on the wire: the major types and tag Mercurial uses, the item head (initial byte
 * and argument, read once here for the decoder and the validator both), and cborutil.decodeitem,
 * which reads one item from a buffer for the decoder.
 */
import { CborDecodeError } from "../errors.ts";
import type { CborScalar } from "./values.ts";

export const MAJOR_UINT = 0;
export const MAJOR_NEGINT = 1;
export const MAJOR_BYTES = 2;
export const MAJOR_STRING = 3;
export const MAJOR_ARRAY = 4;
export const MAJOR_MAP = 5;
export const MAJOR_TAG = 6;
export const MAJOR_SPECIAL = 7;
export const TAG_FINITE_SET = 258;
/** Additional info 31: an indefinite length, or (major type 7) the break that ends one. */
export const INDEFINITE = 31;

/**
 * Bytes of argument after an initial byte whose low five bits are `info`: 0 when the argument is
 * `info` itself (< 24) or for the indefinite marker, else 1, 2, 4 or 8. `offset` (the item's)
 * only serves the error for the reserved values 28-30.
 */
export function argumentSize(info: number, offset: number): number {
  if (info < 24 || info === INDEFINITE) return 0;
  if (info >= 28) throw new CborDecodeError(`unsupported subtype on integer type: ${info}`, offset);
  return 1 << (info - 24);
}

/** The big-endian argument of `size` bytes at `at`; a bigint only past Number.MAX_SAFE_INTEGER. */
export function argumentValue(b: Uint8Array, at: number, size: number): number | bigint {
  switch (size) {
    case 1:
      return b[at] as number;
    case 2:
      return ((b[at] as number) << 8) | (b[at + 1] as number);
    case 4:
      return (b[at] as number) * 0x1000000 + (((b[at + 1] as number) << 16) | ((b[at + 2] as number) << 8) | (b[at + 3] as number));
    default: {
      const big = new DataView(b.buffer, b.byteOffset + at, 8).getBigUint64(0);
      return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
    }
  }
}

/** What cborutil.decodeitem calls SPECIAL_*: how an item relates to the structure around it. */
export const enum Special {
  None,
  StartIndefiniteBytes,
  StartArray,
  StartMap,
  StartSet,
  Break,
}

/** Result of reading one item: complete with its size, or incomplete needing `wanted` more bytes. */
export interface Item {
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
  if (info === INDEFINITE) {
    if (allowIndefinite) return { complete: true, value: null, count: 0 };
    throw new CborDecodeError("indefinite length uint not allowed here", offsetBase + at - 1);
  }
  const size = argumentSize(info, offsetBase + at - 1);
  if (b.length - at < size) return { complete: false, value: null, count: size - (b.length - at) };
  return { complete: true, value: argumentValue(b, at, size), count: size };
}

function asLength(value: number | bigint, what: string, offset: number): number {
  if (typeof value === "bigint" || value > Number.MAX_SAFE_INTEGER) {
    throw new CborDecodeError(`${what} of ${value} is too large`, offset);
  }
  return value;
}

/** cborutil.decodeitem: one item at `at` of `b`. `offsetBase` only serves error offsets. */
export function decodeItem(b: Uint8Array, at: number, offsetBase: number): Item {
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
      if (info === INDEFINITE) return { complete: true, value: null, count: 1, special: Special.Break };
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
