/**
 * cborutil.bufferingdecoder over the SansIoDecoder: for input that arrives in pieces cut anywhere
 * (frames), holding back only the unfinished item.
 */
import { concatBytes } from "../frames.ts";
import { SansIoDecoder, type DecodeResult } from "./decode.ts";
import type { DecodeLimits } from "./limits.ts";
import type { CborValue } from "./values.ts";

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
