/**
 * Command requests: reading a client's request body the way Mercurial's serverreactor does
 * (wireprotoframing.py:1445-1686), and building request bodies the way its clientreactor does
 * (createcommandframes), sans I/O.
 *
 * A request body is: an optional sender-protocol-settings frame (`{contentencodings: [...]}`),
 * then command-request frames per request id (one CBOR map `{name, args?, redirect?}` split over
 * frames with the `more` flag), optionally followed by command-data frames.
 */
import { BufferingDecoder } from "./cbor/buffering.ts";
import { encode } from "./cbor/encode.ts";
import { DecodeBudget, type DecodeLimits } from "./cbor/limits.ts";
import { bytes, cborMap, mapGet, text, type CborMap, type CborValue } from "./cbor/values.ts";
import { SequenceError } from "./errors.ts";
import {
  DEFAULT_MAX_FRAME_SIZE,
  FLAGS,
  FRAME_TYPES,
  FrameParser,
  STREAM_FLAGS,
  chunkPayload,
  concatBytes,
  encodeFrame,
  type Frame,
} from "./frames.ts";

export interface RedirectRequest {
  targets: Uint8Array[];
  hashes: Uint8Array[];
}

export interface CommandRequest {
  requestId: number;
  name: string;
  /** `{}` when the client omitted `args` (the stock client does for no arguments). */
  args: CborMap;
  /** The raw `redirect` map, if the client sent one. */
  redirect?: CborMap;
  /** Whether command-data frames follow (no 5.x command uses them). */
  haveData: boolean;
  /** The whole decoded request map, unknown keys included. */
  map: CborMap;
}

export interface ParsedRequestBody {
  /** The client's content encodings in its order; `undefined` when no settings frame was sent. */
  contentEncodings?: string[];
  commands: CommandRequest[];
  frames: Frame[];
}

export interface RequestLimits extends DecodeLimits {
  /** Most frames a request body may hold. */
  maxFrames: number;
  /** Most bytes a request body (and so a command request's CBOR map) may span. */
  maxRequestBytes: number;
  /**
   * Most CBOR items (every byte string, integer, collection…) all of a request's values may hold
   * (default DEFAULT_REQUEST_LIMITS.maxItems).
   */
  maxItems?: number;
}

/**
 * What stock clients need, with room: their largest request is a manifestdata batch of the
 * origin's default `recommendedbatchsize`, 100 000 nodes — 100 000 items of 21 bytes (a 20-byte
 * string and its 1-byte header), about 2.1 MB in 65 frames, nesting 3. The item budget (2^17)
 * allows 31 % more; the body limit (3 MiB) fits that many nodes. Mercurial itself sets no limits.
 * Memory is bounded by the item budget (see SECURITY.md for the measured figure).
 */
const DEFAULT_MAX_ITEMS = 1 << 17;

export const DEFAULT_REQUEST_LIMITS: Required<Omit<RequestLimits, "budget">> = {
  maxDepth: 32,
  maxCollectionSize: 1 << 20,
  maxByteStringLength: 16 << 20,
  maxFrames: 4096,
  maxRequestBytes: 3 << 20,
  maxItems: DEFAULT_MAX_ITEMS,
};

interface PendingCommand {
  chunks: Uint8Array[];
  length: number;
  haveData: boolean;
  receivingData: boolean;
}

/**
 * Parses a complete request body, enforcing the same frame rules as Mercurial's server so that
 * hgedge never treats as valid what the origin would refuse. Throws a ProtocolError with the
 * byte offset of the first offending frame.
 */
export function parseRequestBody(body: Uint8Array, limits: RequestLimits = DEFAULT_REQUEST_LIMITS): ParsedRequestBody {
  if (body.length > limits.maxRequestBytes) {
    throw new SequenceError(`request of ${body.length} bytes exceeds the limit of ${limits.maxRequestBytes}`);
  }
  const parser = new FrameParser(DEFAULT_MAX_FRAME_SIZE * 2);
  const frames = parser.push(body);
  parser.finish();
  if (frames.length > limits.maxFrames) {
    throw new SequenceError(`request has ${frames.length} frames, more than the limit of ${limits.maxFrames}`);
  }
  // One budget for every value of the request, whatever frames and commands they come in.
  const reader = new RequestReader({ ...limits, budget: new DecodeBudget(limits.maxItems ?? DEFAULT_MAX_ITEMS, limits.maxRequestBytes) });
  for (const frame of frames) reader.onFrame(frame);
  return { ...reader.result(), frames };
}

class RequestReader {
  private readonly streams = new Set<number>();
  private settingsChunks: Uint8Array[] | undefined;
  private contentEncodings: string[] | undefined;
  private sawCommand = false;
  private readonly pending = new Map<number, PendingCommand>();
  private readonly commands: CommandRequest[] = [];

  constructor(private readonly limits: RequestLimits) {}

  onFrame(frame: Frame): void {
    this.checkStream(frame);
    switch (frame.typeId) {
      case FRAME_TYPES["sender-protocol-settings"]:
        return this.onSettings(frame);
      case FRAME_TYPES["command-request"]:
        this.sawCommand = true;
        return this.onCommandRequest(frame);
      case FRAME_TYPES["command-data"]:
        return this.onCommandData(frame);
      default:
        throw new SequenceError(`expected command request frame; got ${frame.typeId}`, frame.offset);
    }
  }

  result(): Omit<ParsedRequestBody, "frames"> {
    if (this.settingsChunks) throw new SequenceError("sender protocol settings frames never reached eos");
    for (const [id, p] of this.pending) {
      if (!p.receivingData || p.haveData) {
        throw new SequenceError(`command request ${id} is incomplete: more frames were announced`);
      }
    }
    return this.contentEncodings === undefined
      ? { commands: this.commands }
      : { contentEncodings: this.contentEncodings, commands: this.commands };
  }

  private checkStream(frame: Frame): void {
    if (frame.streamId % 2 === 0) {
      throw new SequenceError(`received frame with even numbered stream ID: ${frame.streamId}`, frame.offset);
    }
    if (frame.streamFlags & STREAM_FLAGS.encoded) {
      // Mercurial's server cannot decode client streams (it raises a ProgrammingError).
      throw new SequenceError("client frames must not be encoded: Mercurial servers cannot decode them", frame.offset);
    }
    if (!this.streams.has(frame.streamId)) {
      if (!(frame.streamFlags & STREAM_FLAGS["stream-begin"])) {
        throw new SequenceError(
          "received frame on unknown inactive stream without beginning of stream flag set",
          frame.offset,
        );
      }
      this.streams.add(frame.streamId);
    }
  }

  private onSettings(frame: Frame): void {
    if (this.sawCommand || this.contentEncodings !== undefined) {
      throw new SequenceError(`expected command request frame; got ${frame.typeId}`, frame.offset);
    }
    const eos = (frame.flags & FLAGS.SETTINGS_EOS) !== 0;
    const continuation = (frame.flags & FLAGS.SETTINGS_CONTINUATION) !== 0;
    if (eos === continuation) {
      throw new SequenceError("sender protocol settings frame must have continuation or end of stream flag set", frame.offset);
    }
    this.settingsChunks = [...(this.settingsChunks ?? []), frame.payload];
    if (!eos) return;
    const values = decodeExactlyOne(concatBytes(this.settingsChunks), this.limits, frame, "sender protocol settings");
    this.settingsChunks = undefined;
    const list = values instanceof Map ? mapGet(values, "contentencodings") : undefined;
    if (!(values instanceof Map)) {
      throw new SequenceError("sender protocol settings payload is not a map", frame.offset);
    }
    this.contentEncodings = Array.isArray(list) ? list.filter((e) => e instanceof Uint8Array).map((e) => text(e as Uint8Array)) : ["identity"];
  }

  private onCommandRequest(frame: Frame): void {
    if (this.settingsChunks) {
      throw new SequenceError("expected sender protocol settings continuation frame", frame.offset);
    }
    const isNew = (frame.flags & FLAGS.COMMAND_REQUEST_NEW) !== 0;
    const isContinuation = (frame.flags & FLAGS.COMMAND_REQUEST_CONTINUATION) !== 0;
    const more = (frame.flags & FLAGS.COMMAND_REQUEST_MORE_FRAMES) !== 0;
    const haveData = (frame.flags & FLAGS.COMMAND_REQUEST_EXPECT_DATA) !== 0;
    let pending = this.pending.get(frame.requestId);
    if (isNew && isContinuation) {
      throw new SequenceError("cannot have both new and continuation flags set", frame.offset);
    }
    if (!isNew && !pending) {
      throw new SequenceError("received command request frame without new flag set", frame.offset);
    }
    if (!isNew && !isContinuation) {
      throw new SequenceError("received command request frame without new or continuation flag set", frame.offset);
    }
    if (isNew) {
      if (pending || this.commands.some((c) => c.requestId === frame.requestId)) {
        throw new SequenceError(`request with ID ${frame.requestId} already received`, frame.offset);
      }
      pending = { chunks: [], length: 0, haveData, receivingData: false };
      this.pending.set(frame.requestId, pending);
    } else if (!pending || pending.receivingData) {
      throw new SequenceError(`received continuation frame for unknown or finished request ${frame.requestId}`, frame.offset);
    } else if (pending.haveData !== haveData) {
      throw new SequenceError("request state mismatch on have-data flag", frame.offset);
    }
    pending.chunks.push(frame.payload);
    pending.length += frame.payload.length;
    if (pending.length > this.limits.maxRequestBytes) {
      throw new SequenceError(`command request exceeds ${this.limits.maxRequestBytes} bytes`, frame.offset);
    }
    if (more) return;
    this.finishCommand(frame, pending);
  }

  private finishCommand(frame: Frame, pending: PendingCommand): void {
    const map = decodeExactlyOne(concatBytes(pending.chunks), this.limits, frame, "command request");
    if (!(map instanceof Map)) throw new SequenceError("command request payload is not a map", frame.offset);
    const name = mapGet(map, "name");
    if (!(name instanceof Uint8Array)) throw new SequenceError('command request missing "name" field', frame.offset);
    const args = mapGet(map, "args") ?? new Map();
    if (!(args instanceof Map)) throw new SequenceError('command request "args" is not a map', frame.offset);
    const redirect = mapGet(map, "redirect");
    const command: CommandRequest = {
      requestId: frame.requestId,
      name: text(name),
      args,
      haveData: pending.haveData,
      map,
    };
    if (redirect instanceof Map) command.redirect = redirect;
    this.commands.push(command);
    if (pending.haveData) pending.receivingData = true;
    else this.pending.delete(frame.requestId);
  }

  private onCommandData(frame: Frame): void {
    const pending = this.pending.get(frame.requestId);
    if (!pending || !pending.receivingData) {
      throw new SequenceError(`received command data frame for request that is not expecting data: ${frame.requestId}`, frame.offset);
    }
    const eos = (frame.flags & 0x2) !== 0;
    const continuation = (frame.flags & 0x1) !== 0;
    if (!eos && !continuation) throw new SequenceError("command data frame without flags", frame.offset);
    if (eos) {
      pending.haveData = false;
      this.pending.delete(frame.requestId);
    }
  }
}

function decodeExactlyOne(payload: Uint8Array, limits: DecodeLimits, frame: Frame, what: string): CborValue {
  const decoder = new BufferingDecoder(limits);
  decoder.decode(payload);
  const values = decoder.takeAvailable();
  if (values.length === 0 || !decoder.atValueBoundary) {
    throw new SequenceError(`${what} payload is not a complete CBOR value`, frame.offset);
  }
  // Mercurial uses the first value and ignores the rest.
  return values[0] as CborValue;
}

/** Reads `redirect: {targets, hashes}`; `undefined` if absent or not that shape. */
export function redirectRequest(command: CommandRequest): RedirectRequest | undefined {
  if (!command.redirect) return undefined;
  const targets = mapGet(command.redirect, "targets");
  const hashes = mapGet(command.redirect, "hashes");
  if (!Array.isArray(targets) || !Array.isArray(hashes)) return undefined;
  const onlyBytes = (list: CborValue[]) => list.filter((v): v is Uint8Array => v instanceof Uint8Array);
  return { targets: onlyBytes(targets), hashes: onlyBytes(hashes) };
}

// ---------------------------------------------------------------------------------------------
// Building requests (tests, the pre-warmer, retries that rewrite a request)
// ---------------------------------------------------------------------------------------------

export interface CommandRequestInit {
  name: string;
  args?: CborMap;
  redirect?: { targets: string[]; hashes: string[] };
  requestId?: number;
}

/** The frames of one command request (createcommandframes): split at 32 KiB with `more`. */
export function encodeCommandRequestFrames(init: CommandRequestInit, streamBegin: boolean): Uint8Array[] {
  const map = cborMap({ name: bytes(init.name) });
  // The stock client omits empty args (wireprotoframing.py:343).
  if (init.args && init.args.size > 0) map.set(bytes("args"), init.args);
  if (init.redirect) {
    map.set(
      bytes("redirect"),
      cborMap({ targets: init.redirect.targets.map(bytes), hashes: init.redirect.hashes.map(bytes) }),
    );
  }
  const pieces = chunkPayload(encode(map));
  return pieces.map((payload, i) => {
    let flags = i === 0 ? FLAGS.COMMAND_REQUEST_NEW : FLAGS.COMMAND_REQUEST_CONTINUATION;
    if (i < pieces.length - 1) flags |= FLAGS.COMMAND_REQUEST_MORE_FRAMES;
    return encodeFrame({
      requestId: init.requestId ?? 1,
      streamId: 1,
      streamFlags: streamBegin && i === 0 ? STREAM_FLAGS["stream-begin"] : 0,
      typeId: FRAME_TYPES["command-request"],
      flags,
      payload,
    });
  });
}

/** The sender-protocol-settings frame a client sends first. */
export function encodeSenderSettingsFrame(contentEncodings: string[], requestId = 1): Uint8Array {
  return encodeFrame({
    requestId,
    streamId: 1,
    streamFlags: STREAM_FLAGS["stream-begin"],
    typeId: FRAME_TYPES["sender-protocol-settings"],
    flags: FLAGS.SETTINGS_EOS,
    payload: encode(cborMap({ contentencodings: contentEncodings.map(bytes) })),
  });
}

/** A whole request body: settings (if given) and each command's frames. */
export function encodeRequestBody(commands: CommandRequestInit[], contentEncodings?: string[]): Uint8Array {
  const frames: Uint8Array[] = [];
  if (contentEncodings) frames.push(encodeSenderSettingsFrame(contentEncodings, commands[0]?.requestId ?? 1));
  commands.forEach((command, i) => {
    const requestId = command.requestId ?? 1 + 2 * i;
    frames.push(...encodeCommandRequestFrames({ ...command, requestId }, frames.length === 0));
  });
  return concatBytes(frames);
}

