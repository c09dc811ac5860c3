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
 *
 * What is where (this module only re-exports; inside src/protocol import the part itself):
 * - cbor/values.ts    the value types, ByteStringChunk, bytes/text, mapGet, cborMap, byte comparison;
 * - cbor/item.ts      one item on the wire: major types, the head and its argument, decodeitem;
 * - cbor/limits.ts    DecodeLimits and the per-request DecodeBudget;
 * - cbor/decode.ts    SansIoDecoder, decodeAll, decodeOne;
 * - cbor/buffering.ts BufferingDecoder, for input split anywhere;
 * - cbor/validate.ts  CborValidator, the decoder's rules without building values;
 * - cbor/encode.ts    encode, encodeSequence, encodeIndefiniteByteString.
 */
export { BufferingDecoder } from "./cbor/buffering.ts";
export { SansIoDecoder, decodeAll, decodeOne, type DecodeResult } from "./cbor/decode.ts";
export { encode, encodeIndefiniteByteString, encodeSequence } from "./cbor/encode.ts";
export { DEFAULT_DECODE_LIMITS, DecodeBudget, type DecodeLimits } from "./cbor/limits.ts";
export { CborValidator } from "./cbor/validate.ts";
export {
  ByteStringChunk,
  bytes,
  bytesEqual,
  cborMap,
  compareBytes,
  mapGet,
  text,
  type CborMap,
  type CborScalar,
  type CborSet,
  type CborValue,
} from "./cbor/values.ts";
