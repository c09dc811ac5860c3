/**
 * A debugging view of any framed body, request or response (the spirit of `hg debugwireproto`):
 * every frame with its header fields by name and, optionally, the CBOR values its payload
 * completes (after stream decoding), plus the reassembled command requests or responses.
 */
import { BufferingDecoder } from "./cbor/buffering.ts";
import { ByteStringChunk, text, type CborValue } from "./cbor/values.ts";
import { ProtocolError, SequenceError } from "./errors.ts";
import {
  FLAGS,
  FRAME_TYPES,
  FrameParser,
  STREAM_FLAGS,
  frameFlagNames,
  frameTypeName,
  streamFlagNames,
  type Frame,
} from "./frames.ts";
import { toHex } from "./hex.ts";
import { createStreamDecoder, type StreamDecoder } from "./streams.ts";

export interface InspectedFrame {
  offset: number;
  requestId: number;
  streamId: number;
  streamFlags: string[];
  type: string;
  flags: string[];
  length: number;
  /** With payloads: values this frame completed. */
  values?: CborValue[];
}

export interface Reassembled {
  requestId: number;
  kind: "request" | "response" | "error-response";
  /** All values of that request id, in order (a response's first value is its status map). */
  values: CborValue[];
  complete: boolean;
}

/** Incremental: push chunks, get frames; `finish()` gives the reassembled requests/responses. */
export class FrameInspector {
  private readonly parser = new FrameParser();
  private readonly streams = new Map<number, StreamDecoder | undefined>();
  private readonly decoders = new Map<string, BufferingDecoder>();
  private readonly reassembled = new Map<string, Reassembled>();

  /** The header of the frame whose payload could not be decoded, if any. */
  failedFrame: InspectedFrame | undefined;

  constructor(private readonly withPayloads: boolean) {}

  /** Frames completed by this chunk; look at each with `inspect`, in order. */
  push(chunk: Uint8Array): Frame[] {
    return this.parser.push(chunk);
  }

  finish(): Reassembled[] {
    this.parser.finish();
    return [...this.reassembled.values()];
  }

  /** The frame's header fields by name (and, with payloads, the values it completes). */
  inspect(frame: Frame): InspectedFrame {
    const view: InspectedFrame = {
      offset: frame.offset,
      requestId: frame.requestId,
      streamId: frame.streamId,
      streamFlags: streamFlagNames(frame.streamFlags),
      type: frameTypeName(frame.typeId),
      flags: frameFlagNames(frame.typeId, frame.flags),
      length: frame.length,
    };
    if (this.withPayloads) {
      try {
        view.values = this.decodePayload(frame);
      } catch (error) {
        // Show the frame whose payload failed, then report the failure.
        if (error instanceof ProtocolError) this.failedFrame = view;
        throw error;
      }
    }
    return view;
  }

  private decodePayload(frame: Frame): CborValue[] {
    if (frame.streamFlags & STREAM_FLAGS["stream-begin"]) this.streams.set(frame.streamId, undefined);
    let payload = frame.payload;
    if (frame.streamFlags & STREAM_FLAGS.encoded) {
      const decoder = this.streams.get(frame.streamId);
      if (!decoder) throw new SequenceError(`encoded frame on stream ${frame.streamId} before its stream-settings`, frame.offset);
      payload = decoder.decode(payload);
    }
    if (frame.typeId === FRAME_TYPES["command-data"]) return [];
    const key = this.groupKey(frame);
    let decoder = this.decoders.get(key);
    if (!decoder) this.decoders.set(key, (decoder = new BufferingDecoder()));
    decoder.decode(payload);
    const values = decoder.takeAvailable();
    if (frame.typeId === FRAME_TYPES["stream-settings"] || frame.typeId === FRAME_TYPES["sender-protocol-settings"]) {
      this.onSettings(frame, decoder, key, values);
    } else {
      this.record(frame, decoder, values);
    }
    return values;
  }

  private groupKey(frame: Frame): string {
    switch (frame.typeId) {
      case FRAME_TYPES["stream-settings"]:
      case FRAME_TYPES["sender-protocol-settings"]:
        return `settings/${frame.typeId}/${frame.streamId}`;
      case FRAME_TYPES["command-request"]:
        return `request/${frame.requestId}`;
      case FRAME_TYPES["error-response"]:
        return `error-response/${frame.requestId}`;
      default:
        return `response/${frame.requestId}`;
    }
  }

  private onSettings(frame: Frame, decoder: BufferingDecoder, key: string, values: CborValue[]): void {
    if (!(frame.flags & FLAGS.SETTINGS_EOS)) return;
    this.decoders.delete(key);
    const [name, ...rest] = values;
    if (frame.typeId === FRAME_TYPES["stream-settings"]) {
      if (!(name instanceof Uint8Array) || !decoder.atValueBoundary) {
        throw new SequenceError("stream-settings frame must hold an encoding name", frame.offset);
      }
      this.streams.set(frame.streamId, createStreamDecoder(text(name), rest));
    }
  }

  private record(frame: Frame, decoder: BufferingDecoder, values: CborValue[]): void {
    const kind =
      frame.typeId === FRAME_TYPES["command-request"]
        ? "request"
        : frame.typeId === FRAME_TYPES["error-response"]
          ? "error-response"
          : "response";
    const key = `${kind}/${frame.requestId}`;
    let entry = this.reassembled.get(key);
    if (!entry) this.reassembled.set(key, (entry = { requestId: frame.requestId, kind, values: [], complete: false }));
    entry.values.push(...values);
    entry.complete = isLastFrame(frame) && decoder.atValueBoundary;
  }
}

function isLastFrame(frame: Frame): boolean {
  switch (frame.typeId) {
    case FRAME_TYPES["command-request"]:
      return !(frame.flags & FLAGS.COMMAND_REQUEST_MORE_FRAMES);
    case FRAME_TYPES["command-response"]:
      return (frame.flags & FLAGS.COMMAND_RESPONSE_EOS) !== 0;
    default:
      return true;
  }
}

/**
 * CBOR values as JSON: byte strings as hex, map keys as text when they are printable ASCII (they
 * are names), sets as {"set": [...]}, ints beyond 2^53 as strings, indefinite byte string chunks
 * as {"chunk": hex, "first", "last"}.
 */
export function cborToJson(value: CborValue): unknown {
  if (value instanceof Uint8Array) return toHex(value);
  if (value instanceof ByteStringChunk) return { chunk: toHex(value.bytes), first: value.isFirst, last: value.isLast };
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return value.map(cborToJson);
  if (value instanceof Set) return { set: [...value].map(cborToJson) };
  if (value instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of value) out[jsonKey(k)] = cborToJson(v);
    return out;
  }
  return value;
}

function jsonKey(key: CborValue): string {
  if (key instanceof Uint8Array) {
    const isName = key.length > 0 && key.every((b) => b >= 0x20 && b < 0x7f);
    return isName ? text(key) : `hex:${toHex(key)}`;
  }
  return String(key);
}
