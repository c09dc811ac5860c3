/**
 * The pure parts of clone bundles: the bundle2 scanner, wire protocol v1 bits (capabilities,
 * arguments in headers, compressed streaming answers) and the manifest format.
 */
import { deflate } from "pako";
import { describe, expect, it } from "vitest";
import { Bundle2Scanner, bundleSpecOf, compressedBundle2Header } from "../../src/protocol/bundle2.ts";
import { manifestLine, parseManifest, prependEntries, requiresSni } from "../../src/protocol/clonebundles.ts";
import { Bundle2Error, V1ResponseError, StreamEncodingError } from "../../src/protocol/errors.ts";
import { argumentHeaders, bundle2Caps, decodeBundle2Caps, parseCapabilities, parseNodeList, streamCloneOffer, V1StreamDecoder, withCapabilities } from "../../src/protocol/v1.ts";
import { bundle2, concat } from "../support/bundle2.ts";
import { stream2Bundle, uvarint } from "../support/stream2.ts";

function scan(bytes: Uint8Array, step = bytes.length) {
  const scanner = new Bundle2Scanner();
  for (let at = 0; at < bytes.length; at += step) scanner.push(bytes.subarray(at, at + step));
  return scanner.finish();
}

describe("bundle2 scanner", () => {
  it("counts the changelog entries and sees the end, whatever the chunk boundaries", () => {
    const bytes = bundle2({ changesets: 7, deltaBytes: 5000 });
    for (const step of [1, 3, 4, 5, 100, 4096, bytes.length]) {
      const summary = scan(bytes, step);
      expect(summary).toMatchObject({ changesets: 7, announcedChangesets: 7, complete: true, size: bytes.length });
      expect(summary.parts.map((p) => p.type)).toEqual(["CHANGEGROUP", "PHASE-HEADS"]);
      expect(bundleSpecOf(summary)).toBe("none-v2");
    }
  });

  it("counts without an announced count", () => {
    expect(scan(bundle2({ changesets: 3, unannounced: true }))).toMatchObject({ changesets: 3, complete: true });
    expect(scan(bundle2({ changesets: 3, unannounced: true })).announcedChangesets).toBeUndefined();
  });

  it("refuses a stream that is not bundle2", () => {
    expect(() => scan(new TextEncoder().encode("HG10UN...."))).toThrow(/not a bundle2 stream/);
  });

  it("refuses a truncated stream at finish, wherever it is cut", () => {
    const bytes = bundle2({ changesets: 4 });
    for (const cut of [2, 4, 8, 20, bytes.length - 30, bytes.length - 1]) {
      expect(() => scan(bytes.subarray(0, cut))).toThrow(Bundle2Error);
    }
  });

  it("refuses error parts, with their message", () => {
    expect(() => scan(bundle2({ changesets: 2, abortMessage: "repository is locked" }))).toThrow(/error:abort part: repository is locked/);
  });

  it("refuses an interrupted part", () => {
    expect(() => scan(bundle2({ changesets: 2, interrupt: true }))).toThrow(/interrupted/);
  });

  it("refuses data after the end-of-stream marker", () => {
    expect(() => scan(concat([bundle2({ changesets: 1 }), new Uint8Array([0])]))).toThrow(/after the end-of-stream/);
  });

  it("names only uncompressed changegroup-02 bundles none-v2", () => {
    expect(() => bundleSpecOf(scan(bundle2({ changesets: 1, streamParams: ["Compression=BZ"] })))).toThrow(/compressed/);
    expect(() => bundleSpecOf(scan(bundle2({ changesets: 1, version: "03" })))).toThrow(/version 03/);
    expect(() => bundleSpecOf(scan(bundle2({ changesets: 0 })))).toThrow(/no changegroup/);
  });
});

describe("stream clone bundles (stream2 parts)", () => {
  const files = [
    { name: "00changelog.i", data: new Uint8Array(300).fill(1) },
    { name: "data/a.txt.i", data: new Uint8Array(70_000).fill(2) },
    { name: "phaseroots", data: new Uint8Array(0) },
    { name: "branch2-served", data: new Uint8Array(5).fill(3), destination: "c" },
  ];

  it("checks every entry against the announced files and bytes, whatever the chunk boundaries", () => {
    const bytes = stream2Bundle({ files, requirements: ["revlogv1", "generaldelta", "sparserevlog", "revlog-compression-zstd"] });
    for (const step of [1, 2, 7, 4096, bytes.length]) {
      const summary = scan(bytes, step);
      expect(summary.stream).toEqual({ files: 4, bytes: 70_305, requirements: "generaldelta,revlog-compression-zstd,revlogv1,sparserevlog" });
      expect(summary.parts.map((p) => p.type)).toEqual(["stream2"]);
    }
  });

  it("names it as hg debugbundle --spec does: the store requirements sorted and quoted", () => {
    // Mercurial 7.0.1's `hg debugbundle --spec` of a stream bundle of a default 7.0 repository.
    const summary = scan(stream2Bundle({ files, requirements: ["sparserevlog", "revlogv1", "revlog-compression-zstd", "generaldelta"] }));
    expect(bundleSpecOf(summary)).toBe("none-v2;stream=v2;requirements%3Dgeneraldelta%2Crevlog-compression-zstd%2Crevlogv1%2Csparserevlog");
  });

  it.each([
    ["fewer files than announced", { announcedFiles: 5 }, /announced 5 files/],
    ["more bytes announced", { announcedBytes: 70_306 }, /of 70306 bytes but holds/],
    ["a payload cut inside an entry", { cutPayloadAt: 400 }, /ends inside an entry/],
  ])("refuses %s", (_, options, message) => {
    expect(() => scan(stream2Bundle({ files, ...options }))).toThrow(message);
  });

  it("refuses unknown destinations, empty names and overlong sizes", () => {
    expect(() => scan(stream2Bundle({ files: [{ name: "x", data: new Uint8Array(1), destination: "z" }] }))).toThrow(/destination byte/);
    const entry = (sizes: number[]) => concat([new TextEncoder().encode("s"), new Uint8Array(sizes)]);
    expect(() => scan(stream2Bundle({ files: [], payload: entry(new Array(11).fill(0x80)) }))).toThrow(/overlong size/);
    expect(() => scan(stream2Bundle({ files: [], payload: entry([0, 1]) }))).toThrow(/name of 0 bytes/);
    expect(uvarint(300)).toEqual(new Uint8Array([0xac, 0x02]));
  });
});

describe("wire protocol v1", () => {
  it("reads whether a server offers stream clones over bundle2", () => {
    // Mercurial 7.0.1 hg serve of a default repository (bundle2 capability abridged).
    const offering = parseCapabilities("bundle2=HG20%0Achangegroup%3D01%2C02%2C03%0Aphases%3Dheads%0Astream%3Dv2 getbundle streamreqs=generaldelta,revlog-compression-zstd,revlogv1,sparserevlog");
    expect(decodeBundle2Caps(offering.get("bundle2")!).get("stream")).toEqual(["v2"]);
    expect(streamCloneOffer(offering)).toEqual({ offered: true });
    // server.uncompressed=false (or secret changesets): neither `stream` nor `streamreqs`.
    expect(streamCloneOffer(parseCapabilities("bundle2=HG20%0Astream%3Dv2 getbundle"))).toMatchObject({ offered: false, reason: expect.stringMatching(/server.uncompressed=false/) });
    expect(streamCloneOffer(parseCapabilities("bundle2=HG20%0Achangegroup%3D02 getbundle stream"))).toMatchObject({ offered: false, reason: expect.stringMatching(/stream=v2/) });
  });

  it("writes a compressed bundle2 stream's header as bundle20.getchunks does", () => {
    expect(new TextDecoder().decode(compressedBundle2Header("ZS"))).toBe("HG20\0\0\0\x0eCompression=ZS");
  });

  it("adds a capability in Mercurial's sorted order, and leaves an answer that has it alone", () => {
    const text = "batch branchmap bundle2=HG20%0Achangegroup%3D01%2C02 getbundle known lookup unbundle=HG10GZ,HG10BZ,HG10UN";
    const added = withCapabilities(text, ["clonebundles"]);
    expect(added.split(" ")).toEqual([...text.split(" "), "clonebundles"].sort());
    expect(parseCapabilities(added).get("bundle2")).toBe("HG20%0Achangegroup%3D01%2C02");
    expect(withCapabilities(added, ["clonebundles"])).toBe(added);
  });

  it("encodes arguments as httppeer does, split over X-HgArg-N within the header limit", () => {
    const heads = Array.from({ length: 60 }, (_, i) => i.toString(16).padStart(40, "a")).join(" ");
    const headers = argumentHeaders({ heads, cg: "1", common: "0".repeat(40) }, 1024);
    const names = Object.keys(headers);
    expect(names[0]).toBe("X-HgArg-1");
    expect(names.length).toBeGreaterThan(2);
    for (const [name, value] of Object.entries(headers)) expect(`${name}: ${value}\r\n`.length).toBeLessThanOrEqual(1024);
    const joined = Object.values(headers).join("");
    expect(joined.startsWith("cg=1&common=0000")).toBe(true);
    expect(new URLSearchParams(joined).get("heads")).toBe(heads);
  });

  it("writes bundlecaps as bundle2.encodecaps and httppeer do", () => {
    // As a Mercurial 6.3 client sends it (hg serve's access log), for the same capabilities.
    expect(bundle2Caps({ HG20: [], changegroup: ["01", "02"], phases: ["heads"] })).toBe("HG20,bundle2=HG20%0Achangegroup%3D01%2C02%0Aphases%3Dheads");
  });

  it("reads node lists and refuses anything else", () => {
    expect(parseNodeList(`${"a".repeat(40)} ${"b".repeat(40)}\n`)).toEqual(["a".repeat(40), "b".repeat(40)]);
    expect(() => parseNodeList("0\nerror")).toThrow(V1ResponseError);
  });

  const bundle = bundle2({ changesets: 5, deltaBytes: 3000 });
  const decodeAll = (decoder: V1StreamDecoder, body: Uint8Array, step: number) => {
    const out: Uint8Array[] = [];
    for (let at = 0; at < body.length; at += step) out.push(decoder.decode(body.subarray(at, at + step)));
    return concat(out);
  };
  const header = (name: string) => concat([new Uint8Array([name.length]), new TextEncoder().encode(name)]);

  it.each([1, 7, 1 << 20])("takes zlib off a 0.1 answer and the engine header off 0.2 answers (steps of %i)", (step) => {
    expect(decodeAll(new V1StreamDecoder("application/mercurial-0.1"), deflate(bundle), step)).toEqual(bundle);
    expect(decodeAll(new V1StreamDecoder("application/mercurial-0.2"), concat([header("zlib"), deflate(bundle)]), step)).toEqual(bundle);
    const none = new V1StreamDecoder("application/mercurial-0.2");
    expect(decodeAll(none, concat([header("none"), bundle]), step)).toEqual(bundle);
    expect(none.engine).toBe("none");
  });

  it("refuses engines it did not offer, other media types and corrupt data", () => {
    expect(() => new V1StreamDecoder("application/mercurial-0.2").decode(concat([header("bzip2"), bundle]))).toThrow(/did not offer/);
    expect(() => new V1StreamDecoder("text/html")).toThrow(V1ResponseError);
    expect(() => new V1StreamDecoder("application/mercurial-0.1").decode(bundle)).toThrow(StreamEncodingError);
  });
});

describe("clone bundles manifest", () => {
  it("lists our entry first and keeps the origin's bytes as they were", () => {
    const origin = new TextEncoder().encode("https://cdn.example/full.hg BUNDLESPEC=zstd-v2 REQUIRESNI=true\n");
    const url = "https://edge.example/.hgedge/objects/.bundles/.root/20260702T101500Z-0123456789abcdef.hg?expires=1&sig=ab";
    const manifest = prependEntries(origin, [{ url, attributes: { BUNDLESPEC: "none-v2", REQUIRESNI: "true" } }]);
    expect(manifest.subarray(manifest.length - origin.length)).toEqual(origin);
    expect(parseManifest(new TextDecoder().decode(manifest))).toEqual([
      { url, attributes: { BUNDLESPEC: "none-v2", REQUIRESNI: "true" } },
      { url: "https://cdn.example/full.hg", attributes: { BUNDLESPEC: "zstd-v2", REQUIRESNI: "true" } },
    ]);
  });

  it("writes a stream bundlespec as hg debugbundle --spec prints it, which the client unquotes once", () => {
    const spec = "none-v2;stream=v2;requirements%3Dgeneraldelta%2Crevlogv1";
    const line = manifestLine({ url: "http://e/b.hg", attributes: { BUNDLESPEC: spec } });
    expect(line).toBe(`http://e/b.hg BUNDLESPEC=${spec}`);
    // What bundlecaches.parsebundlespec then splits at ";" and "=": requirements=generaldelta,revlogv1.
    expect(parseManifest(line)[0]!.attributes.BUNDLESPEC).toBe("none-v2;stream=v2;requirements=generaldelta,revlogv1");
  });

  it("refuses URLs and values with whitespace", () => {
    expect(() => manifestLine({ url: "http://e/a b.hg", attributes: {} })).toThrow(/whitespace/);
    expect(() => manifestLine({ url: "http://e/a.hg", attributes: { BUNDLESPEC: "none-v2 x" } })).toThrow(/whitespace/);
  });

  it("asks for SNI on https only", () => {
    expect(requiresSni("https://e/x.hg")).toBe(true);
    expect(requiresSni("http://127.0.0.1:8788/x.hg")).toBe(false);
  });
});
