import { describe, expect, it } from "vitest";
import { StreamEncodingError } from "../../src/protocol/errors.ts";
import { concatBytes } from "../../src/protocol/frames.ts";
import { createStreamDecoder, createStreamEncoder, negotiateEncoding } from "../../src/protocol/streams.ts";

const textBytes = (n: number) => new TextEncoder().encode("line of text that compresses well\n".repeat(n));

describe("stream encodings", () => {
  it("picks the server's preference among the client's offer, ignoring the client's order", () => {
    expect(negotiateEncoding(["identity", "zlib"])).toBe("zlib");
    expect(negotiateEncoding(["zstd-8mb", "zlib", "identity"], ["zstd-8mb", "zlib", "identity"])).toBe("zstd-8mb");
    expect(negotiateEncoding(["zstd-8mb", "identity"], ["zlib", "identity"])).toBe("identity");
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
    expect(() => createStreamEncoder("bzip2")).toThrow(StreamEncodingError);
  });

  it("zstd-8mb: the decompressor refuses windows over 8 MiB at the frame header, and accepts 8 MiB", () => {
    // Frame header: magic, descriptor 0x00 (no single segment), window descriptor 2^(10+n).
    const header = (log: number) => new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0x00, (log - 10) << 3]);
    expect(() => createStreamDecoder("zstd-8mb").decode(header(24))).toThrow(/window over zstd-8mb's 8 MiB/);
    expect(createStreamDecoder("zstd-8mb").decode(header(23))).toEqual(new Uint8Array(0));
    // The refusal is sticky: the stream cannot go on.
    const decoder = createStreamDecoder("zstd-8mb");
    expect(() => decoder.decode(header(27))).toThrow(StreamEncodingError);
    expect(() => decoder.decode(new Uint8Array([1]))).toThrow(StreamEncodingError);
  });

  it("zstd-8mb: a flushed block comes out as soon as it is whole, however short the stream", () => {
    // Mercurial's encoder after encode(01020304) and flush(): frame header and one raw block, 13 bytes.
    const frame = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58, 0x20, 0x00, 0x00, 1, 2, 3, 4]);
    expect([...createStreamDecoder("zstd-8mb").decode(frame)]).toEqual([1, 2, 3, 4]);
    // Split inside the frame header, then inside the block: every byte comes out once it can.
    const split = createStreamDecoder("zstd-8mb");
    expect([...split.decode(frame.subarray(0, 7))]).toEqual([]);
    expect([...split.decode(frame.subarray(7, 11))]).toEqual([1, 2]);
    expect([...split.decode(frame.subarray(11))]).toEqual([3, 4]);
  });

  it("zstd-8mb: our encoder's flushes decode completely at every flush, with a window of at most 8 MiB", () => {
    const encoder = createStreamEncoder("zstd-8mb");
    const decoder = createStreamDecoder("zstd-8mb");
    // Over 1 MiB at once: workerd's one-shot zstdCompressSync fails there, the streaming context must not.
    const parts = [textBytes(10), new Uint8Array(3 << 20).map((_, i) => (i * 7919) % 251), textBytes(40_000)];
    let first = true;
    for (const part of parts) {
      const encoded = concatBytes([encoder.encode(part), encoder.flush()]);
      if (first) {
        const windowDescriptor = encoded[5] as number;
        expect((encoded[4] as number) & 0x20).toBe(0); // not single-segment: the window byte is there
        expect(10 + (windowDescriptor >> 3)).toBeLessThanOrEqual(23);
        first = false;
      }
      const decoded = decoder.decode(encoded);
      // toEqual on megabytes compares element by element with a diff: far too slow in workerd.
      expect(decoded.length).toBe(part.length);
      expect(decoded.every((byte, i) => byte === part[i])).toBe(true);
    }
  });

  it("zlib: a stream that continues after its end marker is refused", () => {
    const finished = new Uint8Array([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]); // zlib.compress(b"")
    const decoder = createStreamDecoder("zlib");
    expect(decoder.decode(finished)).toEqual(new Uint8Array(0));
    expect(() => decoder.decode(new Uint8Array([1, 2]))).toThrow(/after its end marker/);
  });
});
