/**
 * Wire protocol v1 over HTTP, the parts hgedge speaks itself (`hg help internals.wireprotocol`;
 * mercurial/httppeer.py, wireprotoserver.py, wireprotov1server.py): the capabilities text,
 * command arguments in `X-HgArg-<N>` headers, node lists, and the compressed answers of
 * streaming commands such as `getbundle`.
 */
import { V1ResponseError } from "./errors.ts";
import { createStreamDecoder, type StreamDecoder } from "./streams.ts";

/** Plain answers, and streaming answers compressed whole with zlib (legacy). */
export const HG_MEDIA_TYPE_01 = "application/mercurial-0.1";
/** Streaming answers with a compression header: u8 name length, engine name, compressed bytes. */
export const HG_MEDIA_TYPE_02 = "application/mercurial-0.2";
/** A command-level error; the body is the message (wireprotoserver HGERRTYPE). */
export const HG_ERROR_MEDIA_TYPE = "application/hg-error";

/** The wire names of the compression engines hgedge can take off, in its order of preference. */
export const DECODABLE_ENGINES = ["zstd", "zlib", "none"] as const;
export type V1Engine = (typeof DECODABLE_ENGINES)[number];

/** Mercurial's default `server.maxhttpheaderlen`, for a server that advertises no `httpheader`. */
export const DEFAULT_HTTP_HEADER_LIMIT = 1024;

export const NULL_NODE = "0".repeat(40);

// ---------------------------------------------------------------------------------------------
// Capabilities

/**
 * The answer to `?cmd=capabilities`: capabilities separated by spaces, each `name` or
 * `name=value` (wireprotov1server.capabilities). Mapped name → value ("" for none).
 */
export function parseCapabilities(text: string): Map<string, string> {
  const capabilities = new Map<string, string>();
  for (const token of text.split(/\s+/).filter(Boolean)) {
    const eq = token.indexOf("=");
    capabilities.set(eq < 0 ? token : token.slice(0, eq), eq < 0 ? "" : token.slice(eq + 1));
  }
  return capabilities;
}

/**
 * The capabilities text with `names` added where missing, sorted as Mercurial sorts its own
 * (`b' '.join(sorted(caps))`); clients read it as a set. Returns the text unchanged when nothing
 * was missing, so that an answer we need not change stays byte for byte the origin's.
 */
export function withCapabilities(text: string, names: readonly string[]): string {
  const present = parseCapabilities(text);
  const missing = names.filter((name) => !present.has(name));
  if (missing.length === 0) return text;
  const tokens = [...text.split(/\s+/).filter(Boolean), ...missing];
  return tokens.sort(compareBytes).join(" ");
}

function compareBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Whether a server's capabilities offer a bundle2 stream clone of version 2, and why not
 * (wireprotov1server._capabilities, bundle2.getrepocaps): a server that allows stream clones
 * advertises `stream` or `streamreqs=…` and, in its bundle2 capabilities, `stream=v2`. A server
 * with `server.uncompressed=false`, or with secret changesets (unless
 * `server.uncompressedallowsecret`), advertises neither (streamclone.allowservergeneration).
 */
export function streamCloneOffer(capabilities: Map<string, string>): { offered: true } | { offered: false; reason: string } {
  if (!capabilities.has("stream") && !capabilities.has("streamreqs")) {
    return { offered: false, reason: "the origin does not offer stream clones (server.uncompressed=false, or secret changesets without server.uncompressedallowsecret)" };
  }
  const bundle2 = decodeBundle2Caps(capabilities.get("bundle2") ?? "");
  if (!(bundle2.get("stream") ?? []).includes("v2")) {
    return { offered: false, reason: "the origin does not offer stream clones over bundle2 (no stream=v2 in its bundle2 capabilities; server.bundle2.stream=false?)" };
  }
  return { offered: true };
}

/** bundle2.decodecaps of the URL-quoted `bundle2=` capability value. */
export function decodeBundle2Caps(value: string): Map<string, string[]> {
  const caps = new Map<string, string[]>();
  let text: string;
  try {
    text = decodeURIComponent(value);
  } catch {
    return caps;
  }
  for (const line of text.split("\n").filter(Boolean)) {
    const eq = line.indexOf("=");
    const name = decodeURIComponent(eq < 0 ? line : line.slice(0, eq));
    caps.set(name, eq < 0 ? [] : line.slice(eq + 1).split(",").map((v) => decodeURIComponent(v)));
  }
  return caps;
}

// ---------------------------------------------------------------------------------------------
// Requests

/**
 * Command arguments as httppeer sends them: `urlencode(sorted(args))`, cut into `X-HgArg-1`,
 * `X-HgArg-2`, … so that each header line (name, `: `, value, CRLF) fits the server's
 * `httpheader` limit (httppeer.encodevalueinheaders). The server concatenates them in order.
 */
export function argumentHeaders(args: Record<string, string>, headerLimit = DEFAULT_HTTP_HEADER_LIMIT): Record<string, string> {
  const encoded = new URLSearchParams(Object.entries(args).sort(([a], [b]) => compareBytes(a, b))).toString();
  const valueLength = headerLimit - "X-HgArg-000".length - ": \r\n".length;
  if (valueLength <= 0) throw new V1ResponseError(`an httpheader limit of ${headerLimit} leaves no room for arguments`);
  const headers: Record<string, string> = {};
  for (let at = 0, n = 1; at < encoded.length; at += valueLength, n++) headers[`X-HgArg-${n}`] = encoded.slice(at, at + valueLength);
  return headers;
}

/**
 * `X-HgProto-1`: the media types and compression engines the requester accepts
 * (httppeer.makev1commandrequest). A server answers 0.2 with the first engine of *its* order
 * that is listed here; `none` counts only where the server allows uncompressed answers.
 */
export function protoHeader(engines: readonly string[] = DECODABLE_ENGINES): string {
  return `0.1 0.2 comp=${engines.join(",")}`;
}

/** The value of `bundlecaps` asking for bundle2 with the given bundle2 capabilities (bundle2.encodecaps). */
export function bundle2Caps(caps: Record<string, readonly string[]>): string {
  const lines = Object.keys(caps)
    .sort(compareBytes)
    .map((name) => {
      const values = (caps[name] ?? []).map(pythonQuote);
      return values.length > 0 ? `${pythonQuote(name)}=${values.join(",")}` : pythonQuote(name);
    });
  return `HG20,bundle2=${pythonQuote(lines.join("\n"))}`;
}

/** Python's urllib.parse.quote with its default safe set ("/" and the unreserved characters). */
export function pythonQuote(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`).replace(/%2F/g, "/");
}

// ---------------------------------------------------------------------------------------------
// Answers

/** A node list as wireprototypes.decodelist reads it: 40-hex nodes separated by spaces. */
export function parseNodeList(text: string): string[] {
  const nodes = text.trim().split(/\s+/).filter(Boolean);
  for (const node of nodes) {
    if (!/^[0-9a-f]{40}$/.test(node)) throw new V1ResponseError(`expected a list of 40-hex nodes, got ${JSON.stringify(text.slice(0, 100))}`);
  }
  return nodes;
}

/**
 * Takes the transport compression off a streaming answer (wireprotoserver._httpresponsetype):
 * `application/mercurial-0.1` is zlib from the first byte; `application/mercurial-0.2` starts
 * with the engine's name. Fed the body in chunks split anywhere.
 */
export class V1StreamDecoder {
  private decoder: StreamDecoder | undefined;
  private header: number[] | undefined;
  private engineName: string | undefined;

  constructor(contentType: string | null) {
    const mediaType = (contentType ?? "").split(";")[0]?.trim().toLowerCase();
    if (mediaType === HG_MEDIA_TYPE_01) {
      this.decoder = createStreamDecoder("zlib");
      this.engineName = "zlib";
    } else if (mediaType === HG_MEDIA_TYPE_02) this.header = [];
    else throw new V1ResponseError(`a streaming answer must be ${HG_MEDIA_TYPE_01} or ${HG_MEDIA_TYPE_02}, got ${JSON.stringify(contentType)}`);
  }

  /** The compression engine, once known. */
  get engine(): string | undefined {
    return this.engineName;
  }

  decode(bytes: Uint8Array): Uint8Array {
    let input = bytes;
    if (!this.decoder) {
      const header = this.header as number[];
      let i = 0;
      while (!this.decoder && i < input.length) {
        header.push(input[i++] as number);
        const length = header[0] as number;
        if (length === 0) throw new V1ResponseError("an application/mercurial-0.2 answer names an empty compression engine");
        if (header.length === length + 1) this.decoder = this.engineDecoder(String.fromCharCode(...header.slice(1)));
      }
      input = input.subarray(i);
      if (!this.decoder) return new Uint8Array(0);
    }
    return this.decoder.decode(input);
  }

  private engineDecoder(name: string): StreamDecoder {
    this.engineName = name;
    switch (name) {
      case "zstd":
        return createStreamDecoder("zstd-8mb");
      case "zlib":
        return createStreamDecoder("zlib");
      case "none":
        return createStreamDecoder("identity");
      default:
        throw new V1ResponseError(`the server compressed with ${JSON.stringify(name)}, which hgedge did not offer (it decodes ${DECODABLE_ENGINES.join(", ")})`);
    }
  }
}
