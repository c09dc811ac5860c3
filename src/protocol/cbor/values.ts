/**
 * The values of Mercurial's CBOR subset as this project holds them in memory, and the small
 * helpers every user of them needs: byte strings from and to text, lookups by content, byte order.
 */

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

/** Plain byte order (Python's ordering of bytes): negative, zero or positive like a comparator. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
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
