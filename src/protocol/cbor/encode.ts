/**
 * The encoder (cborutil.streamencode): deterministic output in Mercurial's subset. Map entries and
 * set elements are sorted by Mercurial's key (type name, then Python ordering, which is plain byte
 * order for byte strings — not RFC 7049 length-first order); lengths are definite and integers take
 * their shortest form.
 */
import { CborEncodeError } from "../errors.ts";
import { MAJOR_ARRAY, MAJOR_BYTES, MAJOR_MAP, MAJOR_NEGINT, MAJOR_TAG, MAJOR_UINT, TAG_FINITE_SET } from "./item.ts";
import { ByteStringChunk, compareBytes, type CborScalar, type CborValue } from "./values.ts";

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
