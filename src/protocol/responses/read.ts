/**
 * Reading command responses as Mercurial's clientreactor does, sans I/O: ResponseReader turns a
 * framed body into events per request id; collectResponses gathers a whole small body; the
 * format* helpers render the error messages a response carries.
 *
 * The decoded command-response payloads of one request id are a sequence of CBOR values whose
 * first is the status map (wireprotocolrpc.txt "Command Response"):
 *   {status: ok}                         the command's objects follow
 *   {status: error, error: {message, args?}}
 *   {status: redirect, location: {url, mediatype, size?, fullhashes?, ...}}  nothing follows
 * A server failure is an error-response frame {type, message: [{msg, args?}]} instead.
 */
import { BufferingDecoder } from "../cbor/buffering.ts";
import type { DecodeLimits } from "../cbor/limits.ts";
import { CborValidator } from "../cbor/validate.ts";
import { mapGet, text, type CborMap, type CborValue } from "../cbor/values.ts";
import { SequenceError } from "../errors.ts";
import { FLAGS, FRAME_TYPES, FrameParser, STREAM_FLAGS, frameTypeName, type Frame } from "../frames.ts";
import { createStreamDecoder, type StreamDecoder } from "../streams.ts";

export type ResponseStatus = "ok" | "error" | "redirect";

export type ResponseEvent =
  /** The status map of a request arrived. */
  | { type: "status"; requestId: number; status: ResponseStatus; map: CborMap }
  /** Values that follow the status map (the command's objects). */
  | { type: "objects"; requestId: number; values: CborValue[] }
  /**
   * The decoded bytes that follow the status map, exactly as the server encoded them: what a
   * content-redirect target serves and what a cache stores. Emitted only with `emitBody`.
   */
  | { type: "body"; requestId: number; bytes: Uint8Array }
  /** The request's eos frame arrived; `clean` says the CBOR stream ended on a value boundary. */
  | { type: "end"; requestId: number; clean: boolean }
  /** An error-response frame (server failure); terminal for that request. */
  | { type: "error-response"; requestId: number; errorType: string; message: string; map: CborMap }
  /** The stream-settings of a stream took effect. */
  | { type: "stream-settings"; streamId: number; encoding: string };

export interface ResponseReaderOptions {
  /** Emit `body` events with the raw bytes after the status map. */
  emitBody?: boolean;
  /**
   * Emit `objects` events (decode the values after the status map). Default true. Without it,
   * the values are only validated, in constant memory whatever their size.
   */
  decodeObjects?: boolean;
  limits?: DecodeLimits;
}

interface RequestState {
  decoder: BufferingDecoder;
  /** Without decodeObjects: checks the bytes after the status map without keeping them. */
  validator?: CborValidator;
  status?: ResponseStatus;
  /** Offset in the decoded stream where the status map ends (once known). */
  statusEnd?: number;
  /** Decoded bytes of this request so far. */
  decodedBytes: number;
}

/**
 * Reads a framed response body (the client side: clientreactor + wireprotov2peer's response
 * handling). Feed it raw bytes as they arrive; it returns events in order.
 */
export class ResponseReader {
  private readonly parser = new FrameParser();
  private readonly streams = new Map<number, StreamDecoder | null>();
  private readonly settings = new Map<number, BufferingDecoder>();
  private readonly requests = new Map<number, RequestState>();
  private readonly finished = new Set<number>();
  private readonly options: Required<Omit<ResponseReaderOptions, "limits">> & { limits?: DecodeLimits };

  constructor(options: ResponseReaderOptions = {}) {
    this.options = { emitBody: false, decodeObjects: true, ...options };
  }

  /** Request ids whose eos frame (or error-response frame) arrived. */
  get completedRequests(): ReadonlySet<number> {
    return this.finished;
  }

  push(chunk: Uint8Array): ResponseEvent[] {
    const events: ResponseEvent[] = [];
    for (const frame of this.parser.push(chunk)) this.onFrame(frame, events);
    return events;
  }

  /** End of input: throws if it ended inside a frame or a request did not finish. */
  finish(): void {
    this.parser.finish();
    for (const [id] of this.requests) {
      if (!this.finished.has(id)) {
        throw new SequenceError(`response for request ${id} ended without an eos frame`, this.parser.offset);
      }
    }
  }

  /** Handles one parsed frame (also usable directly by callers that parse frames themselves). */
  onFrame(frame: Frame, events: ResponseEvent[] = []): ResponseEvent[] {
    const decoder = this.streamFor(frame);
    let payload = frame.payload;
    if (frame.streamFlags & STREAM_FLAGS.encoded) {
      if (!decoder) {
        throw new SequenceError(
          `encoded frame on stream ${frame.streamId} before its stream-settings`,
          frame.offset,
        );
      }
      payload = decoder.decode(payload);
    }
    switch (frame.typeId) {
      case FRAME_TYPES["stream-settings"]:
        this.onStreamSettings(frame, payload, events);
        break;
      case FRAME_TYPES["command-response"]:
        this.onCommandResponse(frame, payload, events);
        break;
      case FRAME_TYPES["error-response"]:
        this.onErrorResponse(frame, payload, events);
        break;
      default:
        // clientreactor raises ProgrammingError('unhandled frame type') for anything else.
        throw new SequenceError(`unhandled frame type in a response: ${frameTypeName(frame.typeId)}`, frame.offset);
    }
    if (frame.streamFlags & STREAM_FLAGS["stream-end"]) this.streams.delete(frame.streamId);
    return events;
  }

  private streamFor(frame: Frame): StreamDecoder | null {
    if (frame.streamId % 2 === 1) {
      throw new SequenceError(`received frame with odd numbered stream ID: ${frame.streamId}`, frame.offset);
    }
    if (!this.streams.has(frame.streamId)) {
      if (!(frame.streamFlags & STREAM_FLAGS["stream-begin"])) {
        throw new SequenceError(
          `received frame on unknown stream without beginning of stream flag set`,
          frame.offset,
        );
      }
      this.streams.set(frame.streamId, null);
    } else if (frame.streamFlags & STREAM_FLAGS["stream-begin"]) {
      throw new SequenceError(`received beginning of stream flag on already open stream ${frame.streamId}`, frame.offset);
    }
    return this.streams.get(frame.streamId) ?? null;
  }

  private onStreamSettings(frame: Frame, payload: Uint8Array, events: ResponseEvent[]): void {
    let decoder = this.settings.get(frame.streamId);
    if (!decoder) {
      decoder = new BufferingDecoder(this.options.limits);
      this.settings.set(frame.streamId, decoder);
    }
    decoder.decode(payload);
    if (frame.flags & FLAGS.SETTINGS_EOS) {
      this.settings.delete(frame.streamId);
      const values = decoder.takeAvailable();
      const [name, ...rest] = values;
      if (!(name instanceof Uint8Array) || !decoder.atValueBoundary) {
        throw new SequenceError("stream-settings frame must hold an encoding name", frame.offset);
      }
      const encoding = text(name);
      this.streams.set(frame.streamId, createStreamDecoder(encoding, rest));
      events.push({ type: "stream-settings", streamId: frame.streamId, encoding });
    } else if (!(frame.flags & FLAGS.SETTINGS_CONTINUATION)) {
      throw new SequenceError("stream-settings frame must have continuation or end of stream flag set", frame.offset);
    }
  }

  private requestState(frame: Frame): RequestState {
    if (this.finished.has(frame.requestId)) {
      throw new SequenceError(`received frame for inactive request ID: ${frame.requestId}`, frame.offset);
    }
    let state = this.requests.get(frame.requestId);
    if (!state) {
      state = { decoder: new BufferingDecoder(this.options.limits), decodedBytes: 0 };
      this.requests.set(frame.requestId, state);
    }
    return state;
  }

  private onCommandResponse(frame: Frame, payload: Uint8Array, events: ResponseEvent[]): void {
    const state = this.requestState(frame);
    const eos = (frame.flags & FLAGS.COMMAND_RESPONSE_EOS) !== 0;
    const continuation = (frame.flags & FLAGS.COMMAND_RESPONSE_CONTINUATION) !== 0;
    if (eos === continuation) {
      throw new SequenceError("command-response frame needs exactly one of continuation and eos", frame.offset);
    }
    this.decodeResponseBytes(frame, state, payload, events);
    if (eos) {
      this.finished.add(frame.requestId);
      const clean = state.validator ? state.validator.atValueBoundary : state.decoder.atValueBoundary;
      events.push({ type: "end", requestId: frame.requestId, clean });
    }
  }

  private decodeResponseBytes(frame: Frame, state: RequestState, payload: Uint8Array, events: ResponseEvent[]): void {
    const before = state.decodedBytes;
    state.decodedBytes += payload.length;
    if (state.validator) {
      state.validator.push(payload);
    } else {
      state.decoder.decode(payload);
      const { values, ends } = state.decoder.takeAvailableWithEnds();
      let first = 0;
      if (state.status === undefined && values.length > 0) {
        this.onStatus(frame, state, values[0] as CborValue, ends[0] as number, events);
        first = 1;
        if (!this.options.decodeObjects) {
          // From here on only validate: the decoder would buffer whole values.
          state.validator = new CborValidator(this.options.limits);
          state.validator.push(payload.subarray((ends[0] as number) - before));
          first = values.length;
        }
      }
      if (first < values.length) {
        if (state.status !== "ok") {
          throw new SequenceError(`received data after a ${state.status} status for request ${frame.requestId}`, frame.offset);
        }
        events.push({ type: "objects", requestId: frame.requestId, values: values.slice(first) });
      }
    }
    if (state.validator && state.status !== "ok" && state.validator.values > 0) {
      throw new SequenceError(`received data after a ${state.status} status for request ${frame.requestId}`, frame.offset);
    }
    if (this.options.emitBody && state.statusEnd !== undefined && state.status === "ok") {
      const start = Math.max(0, state.statusEnd - before);
      if (start < payload.length) events.push({ type: "body", requestId: frame.requestId, bytes: payload.subarray(start) });
    }
  }

  private onStatus(frame: Frame, state: RequestState, value: CborValue, end: number, events: ResponseEvent[]): void {
    const status = value instanceof Map ? mapGet(value, "status") : undefined;
    const name = status instanceof Uint8Array ? text(status) : undefined;
    if (name !== "ok" && name !== "error" && name !== "redirect") {
      throw new SequenceError(`first value of response ${frame.requestId} is not a status map`, frame.offset);
    }
    state.status = name;
    state.statusEnd = end;
    events.push({ type: "status", requestId: frame.requestId, status: name, map: value as CborMap });
  }

  private onErrorResponse(frame: Frame, payload: Uint8Array, events: ResponseEvent[]): void {
    this.requestState(frame);
    const decoder = new BufferingDecoder(this.options.limits);
    decoder.decode(payload);
    const [map] = decoder.takeAvailable();
    if (!(map instanceof Map) || !decoder.atValueBoundary) {
      throw new SequenceError("error-response frame must hold one CBOR map", frame.offset);
    }
    this.finished.add(frame.requestId);
    events.push({
      type: "error-response",
      requestId: frame.requestId,
      errorType: bytesField(map, "type") ?? "",
      message: formatErrorAtoms(mapGet(map, "message")),
      map,
    });
  }
}

function bytesField(map: CborMap, key: string): string | undefined {
  const value = mapGet(map, key);
  return value instanceof Uint8Array ? text(value) : undefined;
}

/** Renders the [{msg, args?}] atoms of an error-response frame as text. */
export function formatErrorAtoms(atoms: CborValue | undefined): string {
  if (!Array.isArray(atoms)) return "";
  return atoms
    .map((atom) => (atom instanceof Map ? formatMessage(mapGet(atom, "msg"), mapGet(atom, "args")) : ""))
    .join("");
}

/** Mercurial formats `message % args` with %s placeholders. */
export function formatMessage(message: CborValue | undefined, args: CborValue | undefined): string {
  let out = message instanceof Uint8Array ? text(message) : "";
  if (Array.isArray(args)) {
    for (const arg of args) {
      out = out.replace("%s", arg instanceof Uint8Array ? text(arg) : String(arg));
    }
  }
  return out;
}

/** The message of a `{status: error, error: {message, args}}` status map. */
export function commandErrorMessage(statusMap: CborMap): string {
  const error = mapGet(statusMap, "error");
  if (!(error instanceof Map)) return "";
  return formatMessage(mapGet(error, "message"), mapGet(error, "args"));
}

export interface CollectedResponse {
  status?: ResponseStatus;
  statusMap?: CborMap;
  objects: CborValue[];
  errorResponse?: { errorType: string; message: string };
  ended: boolean;
}

/** Reads a whole framed body into per-request results (tests, the CLI, small responses). */
export function collectResponses(body: Uint8Array, options: ResponseReaderOptions = {}): Map<number, CollectedResponse> {
  const reader = new ResponseReader(options);
  const results = new Map<number, CollectedResponse>();
  const get = (id: number) => {
    let r = results.get(id);
    if (!r) results.set(id, (r = { objects: [], ended: false }));
    return r;
  };
  for (const event of reader.push(body)) {
    if (event.type === "status") Object.assign(get(event.requestId), { status: event.status, statusMap: event.map });
    else if (event.type === "objects") get(event.requestId).objects.push(...event.values);
    else if (event.type === "end") get(event.requestId).ended = true;
    else if (event.type === "error-response") {
      Object.assign(get(event.requestId), { errorResponse: { errorType: event.errorType, message: event.message }, ended: true });
    }
  }
  reader.finish();
  return results;
}
