import { describe, expect, it } from "vitest";
import { StreamEncodingError } from "../../src/protocol/errors.ts";
import { concatBytes } from "../../src/protocol/frames.ts";
import { createStreamDecoder, createStreamEncoder, negotiateEncoding } from "../../src/protocol/streams.ts";

const textBytes = (n: number) => new TextEncoder().encode("line of text that compresses well\n".repeat(n));

describe("stream encodings", () => {
  it("picks the server's preference among the client's offer, ignoring the client's order", () => {
    expect(negotiateEncoding(["identity", "zlib"])).toBe("zlib");
    expect(negotiateEncoding(["zstd-8mb", "zlib", "identity"], ["zstd-8mb", "zlib", "identity"])).toBe("zstd-8mb");
    expect(negotiateEncoding(["zstd-8mb", "identity"])).toBe("identity");
    expect(negotiateEncoding(["brotli"])).toBeUndefined();
  });

  it("zlib: each flush yields everything written so far, ending in 00 00 ff ff", () => {
    const encoder = createStreamEncoder("zlib");
    const decoder = createStreamDecoder("zlib");
    const parts = [textBytes(10), textBytes(1000), new Uint8Array(5000).map((_, i) => (i * 7919) % 251)];
    for (const part of parts) {
      const encoded = concatBytes([encoder.encode(part), encoder.flush()]);
      expect([...encoded.subarray(-4)]).toEqual([0, 0, 0xff, 0xff]);
      expect(decoder.decode(encoded)).toEqual(part);
    }
  });

  it("zlib: frames split anywhere decode to the same bytes", () => {
    const encoder = createStreamEncoder("zlib");
    const data = textBytes(3000);
    const encoded = concatBytes([encoder.encode(data), encoder.flush()]);
    const decoder = createStreamDecoder("zlib");
    const out: Uint8Array[] = [];
    for (let at = 0; at < encoded.length; at += 37) out.push(decoder.decode(encoded.subarray(at, at + 37)));
    expect(concatBytes(out)).toEqual(data);
  });

  it("refuses corrupt data, unknown profiles and settings with typed errors", () => {
    expect(() => createStreamDecoder("zlib").decode(new Uint8Array([1, 2, 3, 4]))).toThrow(StreamEncodingError);
    expect(() => createStreamDecoder("zstd-8mb").decode(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0, 0xff, 1, 2]))).toThrow(StreamEncodingError);
    expect(() => createStreamDecoder("brotli")).toThrow(/unknown stream encoding/);
    expect(() => createStreamDecoder("identity", [1])).toThrow(/no settings/);
    expect(() => createStreamEncoder("zstd-8mb")).toThrow(StreamEncodingError);
  });

  it("zstd-8mb: refuses windows over 8 MiB", () => {
    // Frame header: magic, descriptor 0x00 (no single segment), window descriptor for 16 MiB.
    const header = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0x00, (14 << 3) | 0, 0, 0, 0]);
    expect(() => createStreamDecoder("zstd-8mb").decode(header)).toThrow(/8 MiB/);
  });
});
