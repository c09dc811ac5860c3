/**
 * Writing command responses as Mercurial's serverreactor/outputstream do, sans I/O: what hgedge
 * sends to clients. Redirect, command-error and error-response answers are single frames;
 * ResponseEmitter streams a successful response in bounded memory.
 */
import { encode } from "../cbor/encode.ts";
import { bytes, cborMap, type CborMap, type CborValue } from "../cbor/values.ts";
import { SequenceError } from "../errors.ts";
import {
  DEFAULT_MAX_FRAME_SIZE,
  FLAGS,
  FRAME_TYPES,
  STREAM_FLAGS,
  chunkPayload,
  concatBytes,
  encodeFrame,
} from "../frames.ts";
import {
  createStreamEncoder,
  encodingNameBytes,
  type EncodingName,
  type StreamEncoder,
} from "../streams.ts";

/** The server's stream: Mercurial uses stream 2 for every response in one HTTP body. */
export const SERVER_STREAM_ID = 2;

export interface RedirectLocation {
  url: string;
  mediatype: string;
  size?: number;
  /** [[hash name, digest], ...]; 5.x clients only warn about it. */
  fullhashes?: [string, Uint8Array][];
  fullhashseed?: Uint8Array;
  serverdercerts?: Uint8Array[];
  servercadercerts?: Uint8Array[];
}

/** The `{status: redirect, location: {...}}` map (createalternatelocationresponseframe). */
export function redirectStatusMap(location: RedirectLocation): CborMap {
  const entries: [string, CborValue][] = [
    ["url", bytes(location.url)],
    ["mediatype", bytes(location.mediatype)],
  ];
  if (location.size !== undefined) entries.push(["size", location.size]);
  if (location.fullhashes) entries.push(["fullhashes", location.fullhashes.map(([name, digest]) => [bytes(name), digest])]);
  if (location.fullhashseed) entries.push(["fullhashseed", location.fullhashseed]);
  if (location.serverdercerts) entries.push(["serverdercerts", location.serverdercerts]);
  if (location.servercadercerts) entries.push(["servercadercerts", location.servercadercerts]);
  return cborMap({ status: bytes("redirect"), location: cborMap(entries) });
}

/**
 * The whole body of a content-redirect answer: ONE unencoded command-response frame carrying
 * eos. Mercurial's own server splits it (redirect map, then a separate eos frame), which makes
 * 5.x clients stop reading the redirected body early (protocol.md §6.5): never do that.
 */
export function encodeRedirectResponse(requestId: number, location: RedirectLocation): Uint8Array {
  return encodeFrame({
    requestId,
    streamId: SERVER_STREAM_ID,
    streamFlags: STREAM_FLAGS["stream-begin"],
    typeId: FRAME_TYPES["command-response"],
    flags: FLAGS.COMMAND_RESPONSE_EOS,
    payload: encode(redirectStatusMap(location)),
  });
}

/**
 * A command error before any output (createcommanderrorresponse): one unencoded eos frame
 * `{status: error, error: {message, args?}}`, no stream-settings frame.
 */
export function encodeCommandError(requestId: number, message: string, args?: string[], streamBegin = true): Uint8Array {
  const error = cborMap({ message: bytes(message) });
  if (args) error.set(bytes("args"), args.map(bytes));
  return encodeFrame({
    requestId,
    streamId: SERVER_STREAM_ID,
    streamFlags: streamBegin ? STREAM_FLAGS["stream-begin"] : 0,
    typeId: FRAME_TYPES["command-response"],
    flags: FLAGS.COMMAND_RESPONSE_EOS,
    payload: encode(cborMap({ status: bytes("error"), error })),
  });
}

export type ErrorResponseType = "server" | "protocol" | "command";

/** An error-response frame (createerrorframe): `{type, message: [{msg}]}`, unencoded. */
export function encodeErrorResponseFrame(
  requestId: number,
  errorType: ErrorResponseType,
  message: string,
  streamBegin = true,
): Uint8Array {
  const payload = encode(cborMap({ type: bytes(errorType), message: [cborMap({ msg: bytes(message) })] }));
  return encodeFrame({
    requestId,
    streamId: SERVER_STREAM_ID,
    streamFlags: streamBegin ? STREAM_FLAGS["stream-begin"] : 0,
    typeId: FRAME_TYPES["error-response"],
    flags: 0,
    payload,
  });
}

export const OK_STATUS = (): CborMap => cborMap({ status: bytes("ok") });

/**
 * Emits one successful command response as frames on the server stream, in bounded memory:
 * `begin()` once, `write()` the bytes of the encoded output objects as they come (they need not
 * align with CBOR values), `end()` once. With an encoding other than identity, a stream-settings
 * frame comes first and data frames carry the `encoded` flag; the compressor is flushed at the end
 * so that the client can decode everything, and the flush output goes in the eos frame.
 *
 * Frames never exceed DEFAULT_MAX_FRAME_SIZE; output is coalesced into full frames.
 */
export class ResponseEmitter {
  private readonly encoder: StreamEncoder;
  private pending: Uint8Array[] = [];
  private pendingLength = 0;
  private streamBegun = false;
  private state: "new" | "open" | "done" = "new";

  constructor(
    private readonly requestId: number,
    private readonly encoding: EncodingName = "identity",
    private readonly streamId = SERVER_STREAM_ID,
  ) {
    this.encoder = createStreamEncoder(encoding);
  }

  /** Stream settings (unless identity) and the `{status: ok}` map. */
  begin(): Uint8Array[] {
    if (this.state !== "new") throw new SequenceError("ResponseEmitter.begin called twice");
    this.state = "open";
    const frames: Uint8Array[] = [];
    if (this.encoding !== "identity") {
      frames.push(
        this.frame(FRAME_TYPES["stream-settings"], FLAGS.SETTINGS_EOS, encode(encodingNameBytes(this.encoding)), false),
      );
    }
    return frames.concat(this.write(encode(OK_STATUS())));
  }

  /** Adds output bytes; returns the frames that became full. */
  write(data: Uint8Array): Uint8Array[] {
    if (this.state !== "open") throw new SequenceError("ResponseEmitter.write outside begin()/end()");
    this.queue(this.encoder.encode(data));
    return this.drain(false);
  }

  /** Flushes the encoder and emits the last frame(s), the final one flagged eos. */
  end(): Uint8Array[] {
    if (this.state !== "open") throw new SequenceError("ResponseEmitter.end outside begin()/end()");
    this.state = "done";
    this.queue(this.encoder.flush());
    return this.drain(true);
  }

  private queue(data: Uint8Array): void {
    if (data.length === 0) return;
    this.pending.push(data);
    this.pendingLength += data.length;
  }

  private drain(final: boolean): Uint8Array[] {
    const frames: Uint8Array[] = [];
    while (this.pendingLength > DEFAULT_MAX_FRAME_SIZE || (!final && this.pendingLength === DEFAULT_MAX_FRAME_SIZE)) {
      frames.push(this.dataFrame(this.takePending(DEFAULT_MAX_FRAME_SIZE), FLAGS.COMMAND_RESPONSE_CONTINUATION));
    }
    if (final) {
      const rest = this.takePending(this.pendingLength);
      frames.push(this.dataFrame(rest, FLAGS.COMMAND_RESPONSE_EOS));
    }
    return frames;
  }

  private takePending(size: number): Uint8Array {
    const all = this.pending.length === 1 ? (this.pending[0] as Uint8Array) : concatBytes(this.pending);
    const piece = all.subarray(0, size);
    const rest = all.subarray(size);
    this.pending = rest.length ? [rest] : [];
    this.pendingLength = rest.length;
    return piece;
  }

  private dataFrame(payload: Uint8Array, flags: number): Uint8Array {
    // An empty payload is sent unencoded, as Mercurial does for its empty eos frame.
    return this.frame(FRAME_TYPES["command-response"], flags, payload, payload.length > 0 && this.encoding !== "identity");
  }

  private frame(typeId: number, flags: number, payload: Uint8Array, encoded: boolean): Uint8Array {
    let streamFlags = encoded ? STREAM_FLAGS.encoded : 0;
    if (!this.streamBegun) {
      streamFlags |= STREAM_FLAGS["stream-begin"];
      this.streamBegun = true;
    }
    return encodeFrame({ requestId: this.requestId, streamId: this.streamId, streamFlags, typeId, flags, payload });
  }
}

/** Emits a whole successful response from already encoded output bytes (small bodies, tests). */
export function encodeOkResponse(requestId: number, body: Uint8Array, encoding: EncodingName = "identity"): Uint8Array {
  const emitter = new ResponseEmitter(requestId, encoding);
  const frames = [...emitter.begin()];
  for (const piece of chunkPayload(body)) frames.push(...emitter.write(piece));
  frames.push(...emitter.end());
  return concatBytes(frames);
}

