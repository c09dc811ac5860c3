/**
 * A push scanner for bundle2 streams (mercurial/bundle2.py, "the Binary format"): fed the
 * decompressed bytes of a bundle in chunks split anywhere, it checks the framing, refuses error
 * parts and interruptions, counts the changesets of the changegroup part and says whether the
 * stream reached its end-of-stream marker. It never holds more than one part header: payload
 * bytes are looked at and dropped, so a bundle of any size scans in constant memory.
 *
 * Layout, all integers big-endian:
 *
 *     "HG20"  int32 params-size  params            stream level parameters
 *     int32 header-size  header                    a part (header-size 0: end of stream)
 *       header: u8 type-size, type, u32 part id, u8 mandatory-count, u8 advisory-count,
 *               (u8 key-size, u8 value-size) per parameter, then keys and values
 *     int32 chunk-size  chunk ... int32 0          the part's payload (-1: an interruption)
 *
 * Inside a `changegroup` part (changegroup.py, cg2/cg3 packers) the changelog comes first, as
 * chunks `int32 length-including-itself, delta header, delta`; a length of 0 ends the group.
 * Each chunk of that first group is one changeset.
 */
import { Bundle2Error } from "./errors.ts";
import { concatBytes } from "./frames.ts";
import { StreamV2Counter, streamV2Params, type StreamV2Params } from "./streamclone.ts";
import { pythonQuote } from "./v1.ts";

export const BUNDLE2_MAGIC = "HG20";
/** Part headers and stream parameters are a few hundred bytes; a larger one is not a bundle. */
export const MAX_BUNDLE2_HEADER_BYTES = 64 * 1024;
/** bundle2.py `flaginterrupt`: an out-of-band part follows, sent when the producer failed. */
const FLAG_INTERRUPT = -1;

export interface Bundle2Part {
  /** The part type as written (upper case letters make it mandatory). */
  type: string;
  /** Mandatory then advisory parameters, in order. */
  params: Map<string, string>;
}

export interface Bundle2Summary {
  /** Stream level parameters, e.g. `Compression=BZ` (decoded). */
  streamParams: string[];
  parts: Bundle2Part[];
  /** Changesets counted so far in the changegroup part's changelog group. */
  changesets: number;
  /** `nbchanges` of the changegroup part, when its producer announced the count. */
  announcedChangesets?: number;
  /** The `stream2` part's announced files, bytes and store requirements (a stream clone bundle). */
  stream?: StreamV2Params;
  /** The end-of-stream marker was read: the bundle is whole. */
  complete: boolean;
  /** Bytes scanned. */
  size: number;
}

type State =
  | { at: "magic" }
  | { at: "params-size" }
  | { at: "params"; size: number }
  | { at: "header-size" }
  | { at: "header"; size: number }
  | { at: "chunk-size" }
  | { at: "chunk"; left: number }
  | { at: "end" };

/** Counts the changelog chunks of a changegroup payload, fed in pieces. */
class ChangelogCounter {
  count = 0;
  private lengthBytes: number[] = [];
  private skip = 0;
  private done = false;

  feed(bytes: Uint8Array, offset: number): void {
    let i = 0;
    while (i < bytes.length && !this.done) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, bytes.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      this.lengthBytes.push(bytes[i++] as number);
      if (this.lengthBytes.length < 4) continue;
      const [a, b, c, d] = this.lengthBytes as [number, number, number, number];
      this.lengthBytes = [];
      const length = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
      // changegroup.py getchunk: "if l <= 4: if l: raise Abort(invalid chunk length)".
      if (length === 0) this.done = true;
      else if (length <= 4 || length > 0x7fffffff) throw new Bundle2Error(`invalid changegroup chunk length ${length}`, offset + i);
      else {
        this.count++;
        this.skip = length - 4;
      }
    }
  }
}

export class Bundle2Scanner {
  private state: State = { at: "magic" };
  /** Bytes of the field being read (magic, a size, a header). */
  private pending: Uint8Array[] = [];
  private pendingLength = 0;
  private offset = 0;
  private readonly streamParams: string[] = [];
  private readonly parts: Bundle2Part[] = [];
  private changelog: ChangelogCounter | undefined;
  /** The part whose payload is being read feeds the changelog counter. */
  private countingPart = false;
  private announced: number | undefined;
  /** The stream2 part's payload checker, while its payload is read. */
  private streamClone: StreamV2Counter | undefined;
  private streamParams_: StreamV2Params | undefined;

  get summary(): Bundle2Summary {
    const summary: Bundle2Summary = {
      streamParams: [...this.streamParams],
      parts: this.parts.map((p) => ({ type: p.type, params: new Map(p.params) })),
      changesets: this.changelog?.count ?? 0,
      complete: this.state.at === "end",
      size: this.offset,
    };
    if (this.announced !== undefined) summary.announcedChangesets = this.announced;
    if (this.streamParams_) summary.stream = { ...this.streamParams_ };
    return summary;
  }

  /** Scans more bytes; throws Bundle2Error at the first thing that is not a sound bundle2 stream. */
  push(bytes: Uint8Array): void {
    let i = 0;
    while (i < bytes.length) {
      const state = this.state;
      if (state.at === "end") throw new Bundle2Error("data after the end-of-stream marker", this.offset + i);
      if (state.at === "chunk") {
        const n = Math.min(state.left, bytes.length - i);
        if (this.countingPart) this.changelog?.feed(bytes.subarray(i, i + n), this.offset + i);
        this.streamClone?.feed(bytes.subarray(i, i + n), this.offset + i);
        i += n;
        state.left -= n;
        if (state.left === 0) this.state = { at: "chunk-size" };
        continue;
      }
      const need = this.fieldSize(state) - this.pendingLength;
      const n = Math.min(need, bytes.length - i);
      this.pending.push(bytes.subarray(i, i + n));
      this.pendingLength += n;
      i += n;
      if (n === need) this.fieldRead(this.takePending(), this.offset + i);
    }
    this.offset += bytes.length;
  }

  /** The summary of a whole stream; throws when it ended before its end-of-stream marker. */
  finish(): Bundle2Summary {
    if (this.state.at !== "end") throw new Bundle2Error(`the bundle ends in the middle (${this.state.at}) after ${this.offset} bytes`, this.offset);
    return this.summary;
  }

  private fieldSize(state: Exclude<State, { at: "chunk" } | { at: "end" }>): number {
    switch (state.at) {
      case "magic":
      case "params-size":
      case "header-size":
      case "chunk-size":
        return 4;
      case "params":
      case "header":
        return state.size;
    }
  }

  private fieldRead(field: Uint8Array, end: number): void {
    const state = this.state;
    switch (state.at) {
      case "magic": {
        const magic = latin1(field);
        if (magic !== BUNDLE2_MAGIC) throw new Bundle2Error(`not a bundle2 stream: it starts with ${JSON.stringify(magic)}, not "HG20"`, 0);
        this.state = { at: "params-size" };
        return;
      }
      case "params-size": {
        const size = int32(field);
        if (size < 0 || size > MAX_BUNDLE2_HEADER_BYTES) throw new Bundle2Error(`stream parameters of ${size} bytes`, end - 4);
        this.state = size === 0 ? { at: "header-size" } : { at: "params", size };
        return;
      }
      case "params":
        for (const param of latin1(field).split(" ").filter(Boolean)) this.streamParams.push(unquote(param));
        this.state = { at: "header-size" };
        return;
      case "header-size": {
        const size = int32(field);
        if (size === 0) this.state = { at: "end" };
        else if (size < 0 || size > MAX_BUNDLE2_HEADER_BYTES) throw new Bundle2Error(`part header of ${size} bytes`, end - 4);
        else this.state = { at: "header", size };
        return;
      }
      case "header":
        this.partHeader(field, end);
        this.state = { at: "chunk-size" };
        return;
      case "chunk-size": {
        const size = int32(field);
        if (size === 0) {
          this.countingPart = false;
          this.streamClone?.finish(end);
          this.streamClone = undefined;
          this.state = { at: "header-size" };
        } else if (size === FLAG_INTERRUPT) {
          // The producer failed mid-part and sends an out-of-band part (usually error:abort).
          throw new Bundle2Error("the producer interrupted a part: the bundle is incomplete", end - 4);
        } else if (size < 0) throw new Bundle2Error(`negative payload chunk size ${size}`, end - 4);
        else this.state = { at: "chunk", left: size };
        return;
      }
    }
  }

  private partHeader(header: Uint8Array, end: number): void {
    const start = end - header.length;
    const fail = (what: string): never => {
      throw new Bundle2Error(`malformed part header: ${what}`, start);
    };
    const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
    let at = 0;
    const need = (n: number) => {
      if (at + n > header.length) fail("it is shorter than its fields");
    };
    need(1);
    const typeSize = view.getUint8(at++);
    need(typeSize + 4 + 2);
    const type = latin1(header.subarray(at, at + typeSize));
    at += typeSize + 4; // the part id
    const count = view.getUint8(at) + view.getUint8(at + 1);
    at += 2;
    need(2 * count);
    const sizes = Array.from({ length: count }, (_, k) => [view.getUint8(at + 2 * k), view.getUint8(at + 2 * k + 1)] as const);
    at += 2 * count;
    const params = new Map<string, string>();
    for (const [keySize, valueSize] of sizes) {
      need(keySize + valueSize);
      params.set(latin1(header.subarray(at, at + keySize)), latin1(header.subarray(at + keySize, at + keySize + valueSize)));
      at += keySize + valueSize;
    }
    if (at !== header.length) fail(`${header.length - at} bytes after its parameters`);
    if (!/^[A-Za-z0-9_:-]+$/.test(type)) fail(`part type ${JSON.stringify(type)}`);
    const kind = type.toLowerCase();
    if (kind.startsWith("error:")) {
      const message = params.get("message") ?? params.get("reason") ?? "";
      throw new Bundle2Error(`the producer sent an ${kind} part${message ? `: ${message}` : ""}`, start);
    }
    this.parts.push({ type, params });
    if (kind === "changegroup" && !this.changelog) {
      this.changelog = new ChangelogCounter();
      this.countingPart = true;
      const announced = Number(params.get("nbchanges"));
      if (params.has("nbchanges") && Number.isSafeInteger(announced) && announced >= 0) this.announced = announced;
    }
    if (kind === "stream2") {
      if (this.streamParams_) throw new Bundle2Error("a second stream2 part", start);
      this.streamParams_ = streamV2Params(params, start);
      this.streamClone = new StreamV2Counter(this.streamParams_);
    }
  }

  private takePending(): Uint8Array {
    const parts = this.pending;
    this.pending = [];
    this.pendingLength = 0;
    return concatBytes(parts);
  }

}

function int32(b: Uint8Array): number {
  return new DataView(b.buffer, b.byteOffset, 4).getInt32(0);
}

function latin1(b: Uint8Array): string {
  let s = "";
  for (const byte of b) s += String.fromCharCode(byte);
  return s;
}

function unquote(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * The bundlespec (`hg help bundlespec`) of an uncompressed bundle2 stream, as
 * `hg debugbundle --spec` prints it (exchange.getbundlespec): a changegroup of version 02 is
 * `none-v2`; a stream clone is `none-v2;stream=v2;requirements%3D<store requirements>`, the
 * requirements sorted and URL-quoted once more (bundle2._formatrequirementsparams), so that a
 * client lacking one skips the manifest entry before it downloads anything. A stream parameter
 * `Compression=…` would make it another spec; hgedge takes only streams without one.
 */
export function bundleSpecOf(summary: Bundle2Summary): string {
  if (summary.streamParams.some((p) => p.toLowerCase().startsWith("compression="))) {
    throw new Bundle2Error(`compressed bundle2 streams are not stored (${summary.streamParams.join(" ")})`);
  }
  if (summary.stream) {
    const requirements = summary.stream.requirements.split(/\s+/).filter((r) => r !== "" && r !== "shared").sort();
    return `none-v2;stream=v2;${pythonQuote("requirements=")}${pythonQuote(requirements.join(","))}`;
  }
  const changegroup = summary.parts.find((p) => p.type.toLowerCase() === "changegroup");
  if (!changegroup) throw new Bundle2Error("the bundle has no changegroup part: the repository has no changesets to bundle");
  const version = changegroup.params.get("version") ?? "01";
  if (version !== "02") throw new Bundle2Error(`changegroup version ${version}: hgedge asks for, and lists, 02 only (bundlespec none-v2)`);
  return "none-v2";
}

/** Bundle2 compression names (bundle2 stream parameter `Compression`) of the engines hgedge writes. */
export const BUNDLE2_COMPRESSION = { zstd: "ZS", gzip: "GZ" } as const;

/**
 * The first bytes of a compressed bundle2 stream (bundle20.getchunks): the magic, then the one
 * stream parameter `Compression=<name>`; every byte after it (parts and end-of-stream marker) is
 * the engine's compressed stream. `hg debugbundle --spec` calls such a bundle `zstd-v2` or
 * `gzip-v2`.
 */
export function compressedBundle2Header(compression: (typeof BUNDLE2_COMPRESSION)[keyof typeof BUNDLE2_COMPRESSION]): Uint8Array {
  const params = `Compression=${compression}`;
  const out = new Uint8Array(8 + params.length);
  out.set(new TextEncoder().encode(BUNDLE2_MAGIC), 0);
  new DataView(out.buffer).setInt32(4, params.length);
  out.set(new TextEncoder().encode(params), 8);
  return out;
}

/** Bytes an uncompressed bundle2 stream without stream parameters starts with: "HG20" and a zero size. */
export const PLAIN_BUNDLE2_HEADER_BYTES = 8;
