/**
 * Renders an exchange exactly as scripts/fixtures/dumpframes.py does with Mercurial's own modules,
 * but with OUR codec (frame parser, stream decoders, CBOR decoder) instead of Mercurial's.
 * Comparing the text with the recorded NNN-frames.txt checks every frame header, every
 * stream-decoded payload, every CBOR value and the decoder's item-level buffering against the
 * Mercurial that wrote the dump (Debian's 5.6.1).
 *
 * Formatting follows Mercurial's stringutil.pprint(bprefix=True, indent=2) and Python's repr.
 * Pure (runs in workerd and Node); sha1 comes from node:crypto (nodejs_compat in workerd).
 */
import { createHash } from "node:crypto";
import { BufferingDecoder, ByteStringChunk, decodeAll, type CborValue } from "../../src/protocol/cbor.ts";
import { ProtocolError } from "../../src/protocol/errors.ts";
import {
  FRAME_TYPES,
  FRAME_TYPE_FLAGS,
  FrameParser,
  STREAM_FLAGS,
  flagNames,
  frameTypeName,
  type Frame,
} from "../../src/protocol/frames.ts";
import { createStreamDecoder, type StreamDecoder } from "../../src/protocol/streams.ts";

export interface ExchangeMeta {
  seq: number;
  method: string;
  target: string;
  status: number;
  reason: string;
  request_content_type?: string | null;
  content_type?: string | null;
  response_body_framing?: string | null;
  response_chunk_sizes?: number[] | null;
}

const FRAMING = "application/mercurial-exp-framing";
const MAXBYTES = 256;

export function dumpExchange(meta: ExchangeMeta, request: Uint8Array | undefined, response: Uint8Array): string {
  const out: string[] = [];
  const seq = String(meta.seq).padStart(3, "0");
  out.push(`# exchange ${seq}: ${meta.method} ${meta.target} -> ${meta.status} ${meta.reason}\n`);
  out.push(
    `# request content-type: ${pyStr(meta.request_content_type)}, body ${request?.length ?? 0} bytes; ` +
      `response content-type: ${pyStr(meta.content_type)}, body ${response.length} bytes ` +
      `(${pyStr(meta.response_body_framing)}, chunks ${pyList(meta.response_chunk_sizes)})\n\n`,
  );
  const rct = meta.request_content_type ?? "";
  if (request && request.length > 0) {
    if (rct.startsWith(FRAMING)) dumpFrames(request, out, "request");
    else out.push(`== request body (${rct}) ==\n${rawRepr(request)}\n\n`);
  }
  const ct = meta.content_type ?? "";
  if (ct.startsWith(FRAMING)) {
    dumpFrames(response, out, "response");
  } else if (ct === "application/mercurial-cbor") {
    out.push(`== response CBOR (${response.length} bytes) ==\n`);
    try {
      decodeAll(response).forEach((value, i) => out.push(`[${i}] ${itemType(value)}:\n${indent(pp(value), 2)}\n`));
    } catch (error) {
      out.push(`!! CBOR decode error: ${errorText(error)}\n`);
    }
  } else {
    out.push(`== response body (${ct}, ${response.length} bytes, not framed) ==\n${rawRepr(response)}\n`);
  }
  return out.join("");
}

/** Lines that say *why* a frame failed to parse are Mercurial's wording; ours differs. */
export function isParseErrorLine(line: string): boolean {
  return line.startsWith("!! frame parse error at offset ");
}

function dumpFrames(body: Uint8Array, out: string[], label: string): void {
  out.push(`== ${label} frames (${body.length} bytes) ==\n`);
  const streams = new Map<number, { decoder?: StreamDecoder }>();
  const decoders = new Map<string, BufferingDecoder>();
  const summary: string[] = [];
  const { frames, error } = parseAll(body);
  frames.forEach((f, n) => {
    const tname = frameTypeName(f.typeId);
    const fflags = humanFlags(FRAME_TYPE_FLAGS[f.typeId] ?? {}, f.flags);
    out.push(
      `\nframe ${n} @${f.offset}: request_id=${f.requestId} stream_id=${f.streamId} ` +
        `stream_flags=0x${hex2(f.streamFlags)} (${humanFlags(STREAM_FLAGS, f.streamFlags)}) ` +
        `type=0x${f.typeId.toString(16)} (${tname}) flags=0x${f.flags.toString(16)} (${fflags}) ` +
        `payload_len=${f.payload.length}\n`,
    );
    summary.push(`${f.requestId}/${f.streamId}/${tname}/${fflags}`);
    out.push(`  payload: ${rawRepr(f.payload)}\n`);
    dumpFramePayload(f, out, streams, decoders);
  });
  if (error) {
    const offset = error.offset ?? 0;
    out.push(`!! frame parse error at offset ${offset}: ${error.reason}\n`);
    const rest = body.subarray(offset);
    out.push(`   remaining ${rest.length} bytes: ${rawRepr(rest)}\n`);
    summary.push(`parse-error@${offset}`);
  }
  out.push(`\n-- ${frames.length} frame(s): ${summary.join(" ")}\n\n`);
}

function parseAll(body: Uint8Array): { frames: Frame[]; error?: ProtocolError } {
  const parser = new FrameParser();
  const frames = parser.push(body);
  try {
    parser.finish();
    return { frames };
  } catch (error) {
    if (error instanceof ProtocolError) return { frames, error };
    throw error;
  }
}

function dumpFramePayload(
  f: Frame,
  out: string[],
  streams: Map<number, { decoder?: StreamDecoder }>,
  decoders: Map<string, BufferingDecoder>,
): void {
  let stream = streams.get(f.streamId);
  if (!stream) streams.set(f.streamId, (stream = {}));
  let payload = f.payload;
  if (f.streamFlags & STREAM_FLAGS.encoded) {
    try {
      payload = stream.decoder ? stream.decoder.decode(payload) : payload;
    } catch (error) {
      out.push(`  !! stream decode failed: ${errorText(error)}\n`);
      return;
    }
    if (equalBytes(payload, f.payload)) out.push("  stream-decoded: unchanged (identity)\n");
    else out.push(`  stream-decoded: ${f.payload.length} -> ${payload.length} bytes: ${rawRepr(payload)}\n`);
  }
  if (f.typeId === FRAME_TYPES["command-data"]) {
    out.push("  (command data: raw bytes, not CBOR)\n");
    return;
  }
  const isSettings = f.typeId === FRAME_TYPES["stream-settings"] || f.typeId === FRAME_TYPES["sender-protocol-settings"];
  const key = isSettings ? `settings/${f.typeId}/${f.streamId}` : `${decoderGroup(f.typeId)}/${f.requestId}`;
  let decoder = decoders.get(key);
  if (!decoder) decoders.set(key, (decoder = new BufferingDecoder()));
  let wanted: number;
  try {
    wanted = decoder.decode(payload).wanted;
  } catch (error) {
    out.push(`  !! CBOR decode error: ${errorText(error)}\n`);
    return;
  }
  const items = decoder.takeAvailable();
  if (items.length > 0) {
    out.push(`  cbor (${items.length} value(s) completed by this frame):\n`);
    items.forEach((o, i) => out.push(`    [${i}] ${itemType(o)}:\n${indent(pp(o), 6)}\n`));
  }
  if (wanted) out.push(`  cbor: partial value pending, decoder wants ${wanted} more byte(s)\n`);
  if (f.typeId === FRAME_TYPES["stream-settings"] && f.flags & 0x2) {
    const [name, ...rest] = items;
    if (name !== undefined) {
      try {
        stream.decoder = decoderAsRecorded(name instanceof Uint8Array ? new TextDecoder().decode(name) : String(name), rest);
        out.push(`  -> stream ${f.streamId} decoder set to ${pyRepr(name as Uint8Array)}\n`);
      } catch (error) {
        out.push(`  !! cannot set stream decoder ${pyRepr(name as Uint8Array)}: ${errorText(error)}\n`);
      }
    }
    decoders.delete(key);
  }
  if (f.streamFlags & STREAM_FLAGS["stream-end"]) streams.delete(f.streamId);
}

function decoderGroup(typeId: number): string {
  if (typeId === FRAME_TYPES["command-request"]) return "req";
  if (typeId === FRAME_TYPES["error-response"] || typeId === FRAME_TYPES["text-output"] || typeId === FRAME_TYPES.progress) {
    return frameTypeName(typeId);
  }
  return "resp";
}

/** Mercurial's CBORDecodeError carries a bytes message, which str() shows as b'...'. */
function errorText(error: unknown): string {
  if (error instanceof ProtocolError) return `b'${error.reason}'`;
  throw error;
}

function humanFlags(mapping: Record<string, number>, value: number): string {
  return flagNames(mapping, value).join("|") || "-";
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sha1Hex(b: Uint8Array): string {
  return createHash("sha1").update(b).digest("hex");
}

function pyStr(value: string | null | undefined): string {
  return value === null || value === undefined ? "None" : value;
}

function pyList(value: number[] | null | undefined): string {
  return value === null || value === undefined ? "None" : `[${value.join(", ")}]`;
}

/** Python's repr() of bytes: b'...' or b"..." when that avoids escaping a single quote. */
export function pyRepr(b: Uint8Array): string {
  const hasSingle = b.includes(0x27);
  const quote = hasSingle && !b.includes(0x22) ? '"' : "'";
  return `b${quote}${escapeBytes(b, quote)}${quote}`;
}

/** codecs.escape_encode: always for a single-quoted literal. */
function escapeBytes(b: Uint8Array, quote: string): string {
  let s = "";
  for (const byte of b) {
    if (byte === 0x5c) s += "\\\\";
    else if (byte === 0x09) s += "\\t";
    else if (byte === 0x0a) s += "\\n";
    else if (byte === 0x0d) s += "\\r";
    else if (String.fromCharCode(byte) === quote) s += `\\${quote}`;
    else if (byte >= 0x20 && byte < 0x7f) s += String.fromCharCode(byte);
    else s += `\\x${hex2(byte)}`;
  }
  return s;
}

function rawRepr(b: Uint8Array): string {
  if (b.length > MAXBYTES) {
    return `${pyRepr(b.subarray(0, MAXBYTES))} ... (${b.length} bytes total, sha1 ${sha1Hex(b)})`;
  }
  return pyRepr(b);
}

function itemType(o: CborValue): string {
  if (o instanceof ByteStringChunk) {
    return `bytestringchunk(first=${o.isFirst ? "True" : "False"},last=${o.isLast ? "True" : "False"})`;
  }
  if (o instanceof Uint8Array) return "bytes";
  if (o instanceof Map) return "dict";
  if (o instanceof Set) return "set";
  if (Array.isArray(o)) return "list";
  if (o === null) return "NoneType";
  if (typeof o === "boolean") return "bool";
  return "int";
}

/**
 * dumpframes.py's Shortened: long byte strings (chunks of indefinite ones too) shown by length,
 * sha1 and head; the kind always reads "bytes".
 */
function truncated(b: Uint8Array): string {
  return `<bytes len=${b.length} sha1=${sha1Hex(b)} head=${pyRepr(b.subarray(0, 32))}>`;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  return a.length - b.length;
}

/** stringutil.pprint(shorten(o), bprefix=True, indent=2). */
function pp(o: CborValue, level = 0, indentBy = 2): string {
  if (o instanceof ByteStringChunk) {
    return o.bytes.length > MAXBYTES ? truncated(o.bytes) : `b'${escapeBytes(o.bytes, "'")}'`;
  }
  if (o instanceof Uint8Array) return o.length > MAXBYTES ? truncated(o) : `b'${escapeBytes(o, "'")}'`;
  if (Array.isArray(o)) return ppCollection("[", "]", o.map((v) => (l: number) => pp(v, l, indentBy)), level, indentBy);
  if (o instanceof Map) {
    const entries = [...o.entries()].sort((a, b) => compareScalars(a[0], b[0]));
    const items = entries.map(([k, v]) => (l: number) => `${pp(k, l, indentBy)}: ${pp(v, l, indentBy)}`);
    return ppCollection("{", "}", items, level, indentBy);
  }
  if (o instanceof Set) {
    if (o.size === 0) return "set([])";
    // Sets are not shortened by dumpframes.py.
    const items = [...o].sort(compareScalars).map((v) => (l: number) => ppFull(v, l));
    return ppCollection("set([", "])", items, level, indentBy);
  }
  if (o === null) return "None";
  if (typeof o === "boolean") return o ? "True" : "False";
  return String(o);
}

function ppFull(o: CborValue, _level: number): string {
  return o instanceof Uint8Array ? `b'${escapeBytes(o, "'")}'` : pp(o);
}

function compareScalars(a: unknown, b: unknown): number {
  if (a instanceof Uint8Array && b instanceof Uint8Array) return compareBytes(a, b);
  if ((typeof a === "number" || typeof a === "bigint") && (typeof b === "number" || typeof b === "bigint")) {
    return a < b ? -1 : a > b ? 1 : 0;
  }
  return 0;
}

function ppCollection(
  open: string,
  close: string,
  items: ((level: number) => string)[],
  level: number,
  indentBy: number,
): string {
  if (items.length === 0) return open === "[" ? "[]" : "{}";
  const inner = level + 1;
  const pad = " ".repeat(inner * indentBy);
  return `${open}\n${pad}${items.map((item) => item(inner)).join(`,\n${pad}`)}\n${" ".repeat(level * indentBy)}${close}`;
}

function indent(s: string, n: number): string {
  const pad = " ".repeat(n);
  return s
    .split("\n")
    .map((line) => pad + line)
    .join("\n");
}

/**
 * Our stream decoder, releasing bytes when Mercurial's recorded one did. The recordings' zstd
 * (python-zstandard 0.13, zstd 1.4) gives out a block's content only once the block is whole;
 * today's zstd, which hgedge uses, streams a raw block's bytes as they arrive. The bytes are the
 * same, only sooner: fed whole blocks, ours gives exactly what the dumps recorded per frame.
 */
function decoderAsRecorded(name: string, settings: CborValue[]): StreamDecoder {
  const decoder = createStreamDecoder(name, settings);
  return name === "zstd-8mb" ? new WholeZstdBlocks(decoder) : decoder;
}

class WholeZstdBlocks implements StreamDecoder {
  readonly name = "zstd-8mb";
  private held = new Uint8Array(0);
  /** What comes next: a frame header, a block header, or a 4-byte checksum. */
  private next: "frame" | "block" | "checksum" = "frame";
  private checksum = false;

  constructor(private readonly inner: StreamDecoder) {}

  decode(payload: Uint8Array): Uint8Array {
    const input = new Uint8Array(this.held.length + payload.length);
    input.set(this.held);
    input.set(payload, this.held.length);
    const whole = this.wholeUnits(input);
    this.held = input.slice(whole);
    return this.inner.decode(input.subarray(0, whole));
  }

  /** How many bytes of `input` are whole frame headers, blocks and checksums (RFC 8878 §3.1.1). */
  private wholeUnits(b: Uint8Array): number {
    let at = 0;
    for (;;) {
      if (this.next === "frame") {
        if (b.length - at < 5) return at;
        const descriptor = b[at + 4] as number;
        const single = (descriptor & 0x20) !== 0;
        const fcs = descriptor >> 6 === 0 ? (single ? 1 : 0) : 1 << (descriptor >> 6);
        const length = 5 + (single ? 0 : 1) + ([0, 1, 2, 4][descriptor & 3] as number) + fcs;
        if (b.length - at < length) return at;
        this.checksum = (descriptor & 0x04) !== 0;
        this.next = "block";
        at += length;
      } else if (this.next === "block") {
        if (b.length - at < 3) return at;
        const header = (b[at] as number) | ((b[at + 1] as number) << 8) | ((b[at + 2] as number) << 16);
        const length = 3 + (((header >> 1) & 3) === 1 ? 1 : header >>> 3);
        if (b.length - at < length) return at;
        if (header & 1) this.next = this.checksum ? "checksum" : "frame";
        at += length;
      } else {
        if (b.length - at < 4) return at;
        this.next = "frame";
        at += 4;
      }
    }
  }
}
