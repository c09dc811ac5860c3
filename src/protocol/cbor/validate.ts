/**
 * CborValidator: the decoder's rules (decode.ts) checked without building values, so that bytes
 * which only need to be right, not read, pass in constant memory. Keep the two in step: the fuzz
 * tests feed both the same bytes and expect the same verdict.
 */
import { CborDecodeError } from "../errors.ts";
import {
  INDEFINITE,
  MAJOR_ARRAY,
  MAJOR_BYTES,
  MAJOR_MAP,
  MAJOR_NEGINT,
  MAJOR_SPECIAL,
  MAJOR_STRING,
  MAJOR_TAG,
  MAJOR_UINT,
  TAG_FINITE_SET,
  argumentSize,
  argumentValue,
} from "./item.ts";
import { DEFAULT_DECODE_LIMITS, type DecodeLimits } from "./limits.ts";

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
    const size = argumentSize(info, this.offset);
    while (this.headerLength < 1 + size && at < b.length) this.header[this.headerLength++] = b[at++] as number;
    if (this.headerLength < 1 + size) return at;
    const start = this.offset;
    this.offset += this.headerLength;
    // Past 2^53 the exact value no longer matters: it only meets limits far below that.
    const argument = info < 24 ? info : info === INDEFINITE ? -1 : Number(argumentValue(this.header, 1, size));
    this.headerLength = 0;
    this.interpret(initial >> 5, info, argument, start);
    return at;
  }

  private interpret(major: number, info: number, argument: number, at: number): void {
    if (this.inIndefinite) {
      if (major === MAJOR_BYTES && info !== INDEFINITE) return this.startBytes(argument, true, at);
      if (major === MAJOR_SPECIAL && info === INDEFINITE) {
        this.inIndefinite = false;
        return this.itemDone();
      }
      return failAt(at, "unexpected special value when expecting bytestring chunk");
    }
    if (this.afterSetTag && major !== MAJOR_ARRAY) failAt(at, "expected array after finite set semantic tag");
    const parent = this.stack[this.stack.length - 1];
    const isKey = parent?.kind === "map" && parent.seen % 2 === 0;
    switch (major) {
      case MAJOR_UINT:
      case MAJOR_NEGINT:
        if (info === INDEFINITE) failAt(at, "indefinite length uint not allowed here");
        return this.itemDone();
      case MAJOR_BYTES:
        if (info !== INDEFINITE) return this.startBytes(argument, false, at);
        if (parent) failAt(at, "indefinite length bytestrings not allowed inside collections");
        this.inIndefinite = true;
        return;
      case MAJOR_STRING:
        return failAt(at, "string major type not supported");
      case MAJOR_ARRAY:
      case MAJOR_MAP: {
        if (info === INDEFINITE) failAt(at, "indefinite length uint not allowed here");
        if (parent?.kind === "set") failAt(at, "collections not allowed as set values");
        if (isKey) failAt(at, "collections not supported as map keys");
        if (this.stack.length >= this.limits.maxDepth) failAt(at, `nesting deeper than ${this.limits.maxDepth} levels`);
        if (argument > this.limits.maxCollectionSize) failAt(at, `collection of ${argument} items exceeds the limit of ${this.limits.maxCollectionSize}`);
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
        if (argument !== TAG_FINITE_SET) failAt(at, `semantic tag ${argument} not allowed`);
        if (parent?.kind === "set") failAt(at, "collections not allowed as set values");
        if (isKey) failAt(at, "collections not supported as map keys");
        this.afterSetTag = true;
        return;
      default:
        if (info === 20 || info === 21 || info === 22) return this.itemDone();
        if (info === INDEFINITE) failAt(at, "unhandled special state: 5");
        return failAt(at, `special type ${info} not allowed`);
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

/**
 * Throws the validator's error for the item at `at`. A function of its own, not a closure made per
 * item: validation runs once per CBOR item of every stored byte, and a bundler that keeps function
 * names (esbuild's keepNames, as wrangler builds) would wrap each new closure in a naming call.
 */
function failAt(at: number, message: string): never {
  throw new CborDecodeError(message, at);
}
