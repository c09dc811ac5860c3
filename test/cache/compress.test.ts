/**
 * The clone bundles' streaming compressors on workerd's native node:zlib: whatever the data and
 * however it is pushed, the output decompresses (with independent decoders: fzstd, pako) to the
 * input. Incompressible data matters: workerd's zstd compressor fails once one write's output
 * fills its output buffer, which compressible test data never does.
 */
import { decompress as zstdDecompress } from "fzstd";
import { inflate } from "pako";
import { describe, expect, it } from "vitest";
import { createCompressor, type BundleCompression } from "../../src/cache/compress.ts";

/** Incompressible bytes (the random source gives at most 64 KiB per call). */
function randomBytes(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) out.set(crypto.getRandomValues(new Uint8Array(Math.min(65536, size - at))), at);
  return out;
}

async function digest(bytes: Uint8Array): Promise<string> {
  return Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

describe("streaming bundle compression", () => {
  const cases: [BundleCompression, string, number, number][] = [
    ["zstd", "small pushes of a small input", 1000, 100],
    ["zstd", "64 KiB pushes of incompressible data", 3_000_000, 65_536],
    ["zstd", "pushes of megabytes", 6_000_000, 4_000_000],
    ["gzip", "64 KiB pushes of incompressible data", 3_000_000, 65_536],
    ["gzip", "pushes of megabytes", 6_000_000, 4_000_000],
  ];
  it.each(cases)("%s: %s round-trips", async (engine, _, size, step) => {
    const input = randomBytes(size);
    const compressor = createCompressor(engine);
    const out: Uint8Array[] = [];
    for (let at = 0; at < size; at += step) out.push(...(await compressor.push(input.subarray(at, at + step))));
    out.push(...(await compressor.finish()));
    const joined = new Uint8Array(out.reduce((n, b) => n + b.length, 0));
    out.reduce((at, b) => (joined.set(b, at), at + b.length), 0);
    const restored = engine === "zstd" ? zstdDecompress(joined) : inflate(joined);
    expect(restored.length).toBe(size);
    expect(await digest(restored)).toBe(await digest(input));
  });
});
