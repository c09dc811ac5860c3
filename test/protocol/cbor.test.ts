import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { fromHex, toHex } from "../../src/protocol/hex.ts";
import {
  BufferingDecoder,
  ByteStringChunk,
  bytes,
  cborMap,
  decodeAll,
  decodeOne,
  encode,
  encodeIndefiniteByteString,
  mapGet,
  type CborValue,
} from "../../src/protocol/cbor.ts";
import { CborDecodeError, CborEncodeError, ProtocolError } from "../../src/protocol/errors.ts";

const hex = fromHex;
const sha1 = (b: Uint8Array) => createHash("sha1").update(b).digest("hex");

/** protocol.md §5.2: the cache key material of test-wireproto-caching.t, without `repo`. */
function keyMaterial(fields: CborValue, nodes: string[]) {
  return cborMap({
    args: cborMap({ fields, haveparents: false, nodes: nodes.map(hex), tree: new Uint8Array(0) }),
    command: bytes("manifestdata"),
    globalversion: 1,
    localversion: 1,
    mediatype: bytes("application/mercurial-exp-framing-0006"),
    version: bytes("exp-http-v2-0003"),
  });
}

describe("encoder: Mercurial's deterministic CBOR", () => {
  it("reproduces the cache keys Mercurial's own tests log", () => {
    const node1 = "992f4779029a3df8d0666d00bb924f69634e2641";
    const node2 = "a988fb43583e871d1ed5750ee074c6d840bbbfc8";
    expect(sha1(encode(keyMaterial(new Set([bytes("parents")]), [node1])))).toBe("47abb8efa5f01b8964d74917793ad2464db0fa2c");
    expect(sha1(encode(keyMaterial([bytes("parents")], [node1])))).toBe("ee94caf16b86167048bd3b9fc0ff4fcb411a4a02");
    expect(sha1(encode(keyMaterial(new Set([bytes("parents")]), [node1, node2])))).toBe("37326a83e9843f15161fce9d1e92d06b795d5e8e");
    expect(sha1(encode(keyMaterial(new Set([bytes("parents")]), ["aa".repeat(20)])))).toBe("2cba2a7d0d1575fea2fe68f597e97a7c2ac2f705");
  });

  it("sorts map keys bytewise (not RFC length-first) whatever the insertion order", () => {
    const map = cborMap([["version", 1], ["args", 2], ["repo", 3], ["command", 4]]);
    expect(toHex(encode(map))).toBe("a4446172677302" + "47636f6d6d616e6404" + "447265706f03" + "4776657273696f6e01");
  });

  it("sorts set elements and tags sets with 258", () => {
    expect(toHex(encode(new Set([bytes("revision"), bytes("parents")])))).toBe("d9010282477061726" + "56e74734872657669" + "73696f6e");
  });

  it("uses shortest integer forms at every width and bigints past 2^53", () => {
    const cases: [CborValue, string][] = [
      [0, "00"], [23, "17"], [24, "1818"], [255, "18ff"], [256, "190100"], [65535, "19ffff"], [65536, "1a00010000"],
      [2 ** 32, "1b0000000100000000"], [-1, "20"], [-25, "3818"], [2n ** 64n - 1n, "1bffffffffffffffff"], [-(2n ** 64n), "3bffffffffffffffff"],
      [true, "f5"], [false, "f4"], [null, "f6"], [new Uint8Array(0), "40"], [[], "80"],
    ];
    for (const [value, expected] of cases) {
      expect(toHex(encode(value)), String(value)).toBe(expected);
      expect(decodeOne(hex(expected))).toEqual(value);
    }
  });

  it("decodes -2^53 (and below) as a bigint that re-encodes, never as an unsafe number", () => {
    const value = decodeOne(hex("3b001fffffffffffff"));
    expect(value).toBe(-(2n ** 53n));
    expect(toHex(encode(value))).toBe("3b001fffffffffffff");
    expect(decodeOne(hex("3b001ffffffffffffe"))).toBe(-(2 ** 53) + 1);
  });

  it("refuses what Mercurial cannot encode", () => {
    expect(() => encode("text" as unknown as CborValue)).toThrow(CborEncodeError);
    expect(() => encode(1.5)).toThrow(CborEncodeError);
    expect(() => encode(2n ** 64n)).toThrow(CborEncodeError);
    expect(() => encode(new Set([[1]] as unknown as CborValue[]) as unknown as CborValue)).toThrow(CborEncodeError);
  });

  it("encodes indefinite byte strings as Mercurial streams them", () => {
    expect(toHex(encodeIndefiniteByteString([bytes("ab"), bytes("c")]))).toBe("5f426162416" + "3ff");
  });
});

describe("decoder: cborutil's subset", () => {
  it("decodes maps with byte-string keys, looked up by content", () => {
    const value = decodeOne(encode(cborMap({ name: bytes("heads"), args: cborMap({}) }))) as Map<Uint8Array, CborValue>;
    expect(mapGet(value, "name")).toEqual(bytes("heads"));
  });

  it.each([
    ["text string", "6161"],
    ["float", "f93c00"],
    ["undefined", "f7"],
    ["simple value", "f820"],
    ["tag other than 258", "c11a00000000"],
    ["tag 258 not on an array", "d9010201"],
    ["indefinite array", "9f01ff"],
    ["indefinite map", "bf0101ff"],
    ["indefinite byte string in an array", "815f4161ff"],
    ["collection as a map key", "a18000"],
    ["collection in a set", "d9010281" + "80"],
    ["break at top level", "ff"],
    ["reserved additional info", "1c"],
  ])("rejects a %s with a typed error", (_name, bytesHex) => {
    let error: unknown;
    try {
      decodeAll(hex(bytesHex));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CborDecodeError);
    expect(error).toBeInstanceOf(ProtocolError);
  });

  it("refuses incomplete input in decodeAll", () => {
    expect(() => decodeAll(hex("8201"))).toThrow(/not complete/);
    expect(() => decodeAll(hex("43616263"))).not.toThrow();
    expect(() => decodeAll(hex("4361626"))).toThrow(CborDecodeError);
  });

  it("surfaces top-level indefinite byte strings as chunks, like bytestringchunk", () => {
    const values = decodeAll(hex("5f426162416" + "3ff" + "5fff"));
    expect(values).toEqual([
      new ByteStringChunk(bytes("ab"), true, false),
      new ByteStringChunk(bytes("c"), false, false),
      new ByteStringChunk(new Uint8Array(0), false, true),
      new ByteStringChunk(new Uint8Array(0), true, true),
    ]);
  });

  it("decodes a sequence incrementally, 0..n values per chunk, whatever the split", () => {
    const sequence = [cborMap({ status: bytes("ok") }), cborMap({ totalitems: 2 }), new Uint8Array(70000).fill(7), [1, [2, new Set([3])]], null];
    const encoded = new Uint8Array([...sequence.flatMap((v) => [...encode(v)])]);
    for (const step of [1, 2, 3, 7, 1000, 32768, encoded.length]) {
      const decoder = new BufferingDecoder();
      const out: CborValue[] = [];
      for (let at = 0; at < encoded.length; at += step) {
        decoder.decode(encoded.subarray(at, at + step));
        out.push(...decoder.takeAvailable());
      }
      expect(out, `step ${step}`).toEqual(sequence);
      expect(decoder.atValueBoundary).toBe(true);
    }
  });

  it("asks for exactly the bytes an item still needs, as cborutil's `wanted`", () => {
    const decoder = new BufferingDecoder();
    const big = encode(new Uint8Array(1000));
    expect(decoder.decode(big.subarray(0, 100)).wanted).toBe(big.length - 100);
    expect(decoder.decode(big.subarray(100, 200)).wanted).toBe(big.length - 200);
    expect(decoder.decode(big.subarray(200)).available).toBe(true);
  });

  it("enforces nesting, collection and byte string limits", () => {
    const limits = { maxDepth: 3, maxCollectionSize: 10, maxByteStringLength: 100 };
    expect(() => decodeAll(hex("81818181" + "01"), limits)).toThrow(/nesting/);
    expect(() => decodeAll(hex("8b" + "01".repeat(11)), limits)).toThrow(/collection/);
    expect(() => decodeAll(encode(new Uint8Array(101)), limits)).toThrow(/byte string/);
    // A huge announced length is refused before anything is buffered.
    expect(() => new BufferingDecoder(limits).decode(hex("5a7fffffff"))).toThrow(/limit/);
  });

  it("lets duplicate keys overwrite, as a Python dict does", () => {
    const map = decodeOne(hex("a2416101416102")) as Map<Uint8Array, CborValue>;
    expect(map.size).toBe(1);
    expect(mapGet(map, "a")).toBe(2);
  });
});
