/**
 * How much one decoder (or validator) accepts, and the budget all the decoders of one request
 * share: what keeps a hostile or broken peer from making us build unbounded values.
 */
import { CborDecodeError } from "../errors.ts";

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
