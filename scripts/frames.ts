/**
 * `npm run -s frames -- decode [--payloads] FILE|-`
 * `npm run -s frames -- encode [--redirect TARGET] [--encodings LIST] COMMAND [ARGS]`
 *
 * Reads a raw framed wire-protocol-v2 body (a request or a response, as sent over HTTP after
 * de-chunking) and prints one JSON object per frame: requestId, streamId, streamFlags (names),
 * type (name), flags (names), length. With --payloads, each frame also lists the CBOR values it
 * completed (after stream decoding; byte strings as hex), and after the frames one object per
 * request id gives the reassembled request or response. Streams: memory stays bounded by the
 * largest frame and CBOR item, whatever the body's size.
 *
 * `encode` writes the framed body of one v2 command request to standard output, as a stock 5.x
 * client frames it (request id 1, stream 1, split at 32 KiB), for `curl --data-binary @-`.
 * ARGS is a JSON object of the command's arguments, turned into Mercurial's CBOR: a string is a
 * byte string of its UTF-8 text, `{"hex": "…"}` a byte string given in hex (nodes), `{"set":
 * […]}` a set, integers, booleans, null, arrays and objects as themselves. `--redirect TARGET`
 * adds the redirect map a client sends when it accepts hgedge's target TARGET; `--encodings`
 * (e.g. `zstd-8mb,zlib,identity`) adds the sender-settings frame offering those encodings.
 *
 * Exit status: 0 on success, 1 on malformed input (message with the byte offset), 2 on misuse.
 */
import { createReadStream } from "node:fs";
import type { Readable, Writable } from "node:stream";
import { pathToFileURL } from "node:url";
import { bytes, cborMap, type CborMap, type CborScalar, type CborValue } from "../src/protocol/cbor.ts";
import { fromHex } from "../src/protocol/hex.ts";
import { encodeRequestBody } from "../src/protocol/requests.ts";
import { ProtocolError } from "../src/protocol/errors.ts";
import { FrameInspector, cborToJson } from "../src/protocol/inspect.ts";
import "./zstd-fallback.ts";

const USAGE = "usage: npm run -s frames -- decode [--payloads] FILE   (FILE - reads standard input)\n";
const ENCODE_USAGE = "       npm run -s frames -- encode [--redirect TARGET] [--encodings LIST] COMMAND ['{\"arg\": …}']\n";

export interface CliIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
}

export async function runFramesCli(args: string[], io: CliIo): Promise<number> {
  const [command, ...rest] = args;
  if (command === "encode") return encodeCommand(rest, io);
  const payloads = rest.includes("--payloads");
  const files = rest.filter((a) => a !== "--payloads");
  if (command !== "decode" || files.length !== 1 || rest.some((a) => a.startsWith("--") && a !== "--payloads")) {
    io.stderr.write(USAGE + ENCODE_USAGE);
    return 2;
  }
  const file = files[0] as string;
  const input = file === "-" ? io.stdin : createReadStream(file);
  const inspector = new FrameInspector(payloads);
  try {
    await decode(input, inspector, payloads, io.stdout);
    return 0;
  } catch (error) {
    if (error instanceof ProtocolError) {
      const where = inspector.failedFrame ? `payload of the frame at byte ${inspector.failedFrame.offset}: ` : "";
      io.stderr.write(`frames: malformed input: ${where}${error.message}\n`);
      return 1;
    }
    if (error instanceof Error && "code" in error && (error as NodeJS.ErrnoException).code === "ENOENT") {
      io.stderr.write(`frames: no such file: ${file}\n`);
      return 2;
    }
    throw error;
  }
}

async function decode(input: Readable, inspector: FrameInspector, payloads: boolean, out: Writable): Promise<void> {
  for await (const chunk of input) {
    for (const frame of inspector.push(new Uint8Array(chunk as Buffer))) {
      let inspected;
      try {
        inspected = inspector.inspect(frame);
      } catch (error) {
        if (inspector.failedFrame) await writeLine(out, inspector.failedFrame);
        throw error;
      }
      const { values, ...header } = inspected;
      await writeLine(out, payloads ? { ...header, values: values?.map(cborToJson) } : header);
    }
  }
  const reassembled = inspector.finish();
  if (!payloads) return;
  for (const entry of reassembled) {
    await writeLine(out, { [entry.kind]: entry.requestId, complete: entry.complete, values: entry.values.map(cborToJson) });
  }
}

/** A mistake in the command line: the message says what to write instead. */
class UsageError extends Error {}

function encodeCommand(args: string[], io: CliIo): number {
  try {
    const { name, commandArgs, redirect, encodings } = parseEncodeArgs(args);
    if ((io.stdout as { isTTY?: boolean }).isTTY) {
      throw new UsageError("the body is binary: pipe it (… | curl --data-binary @- …) or redirect it to a file");
    }
    const body = encodeRequestBody(
      [{ name, ...(commandArgs ? { args: commandArgs } : {}), ...(redirect ? { redirect: { targets: [redirect], hashes: ["sha256", "sha1"] } } : {}) }],
      encodings,
    );
    io.stdout.write(body);
    return 0;
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr.write(`frames: ${error.message}\n${USAGE}${ENCODE_USAGE}`);
    return 2;
  }
}

function parseEncodeArgs(args: string[]): { name: string; commandArgs?: CborMap; redirect?: string; encodings?: string[] } {
  const positional: string[] = [];
  let redirect: string | undefined;
  let encodings: string[] | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === "--redirect" || arg === "--encodings") {
      const value = args[++i];
      if (value === undefined || value === "") throw new UsageError(`${arg} needs a value`);
      if (arg === "--redirect") redirect = value;
      else encodings = value.split(",");
    } else if (arg.startsWith("--")) {
      throw new UsageError(`unknown option ${arg}`);
    } else {
      positional.push(arg);
    }
  }
  const [name, json, ...extra] = positional;
  if (!name || extra.length > 0 || !/^[a-z0-9_-]+$/.test(name)) throw new UsageError("give one command name (e.g. heads) and at most one JSON object of arguments");
  if (json === undefined) return { name, ...(redirect ? { redirect } : {}), ...(encodings ? { encodings } : {}) };
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (error) {
    throw new UsageError(`the arguments are not JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new UsageError("the arguments must be a JSON object, e.g. '{\"publiconly\": true}'");
  return { name, commandArgs: jsonToCbor(parsed) as CborMap, ...(redirect ? { redirect } : {}), ...(encodings ? { encodings } : {}) };
}

/** JSON as Mercurial's CBOR subset: strings become byte strings (the protocol has no text). */
export function jsonToCbor(value: unknown): CborValue {
  if (typeof value === "string") return bytes(value);
  if (typeof value === "boolean" || value === null) return value;
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new UsageError(`${value}: Mercurial's CBOR has integers only`);
    return value;
  }
  if (Array.isArray(value)) return value.map(jsonToCbor);
  const object = value as Record<string, unknown>;
  const keys = Object.keys(object);
  if (keys.length === 1 && keys[0] === "hex" && typeof object.hex === "string") {
    if (!/^(?:[0-9a-fA-F]{2})*$/.test(object.hex)) throw new UsageError(`{"hex": "${object.hex}"}: not an even number of hex digits`);
    return fromHex(object.hex);
  }
  if (keys.length === 1 && keys[0] === "set" && Array.isArray(object.set)) {
    return new Set(object.set.map((item) => {
      const converted = jsonToCbor(item);
      if (typeof converted === "object" && converted !== null && !(converted instanceof Uint8Array)) throw new UsageError("a set holds only scalars (strings, hex, integers, booleans, null)");
      return converted as CborScalar;
    }));
  }
  return cborMap(keys.map((key): [string, CborValue] => [key, jsonToCbor(object[key])]));
}

/** Respects backpressure so that piping a huge body into `head` stays bounded. */
function writeLine(out: Writable, value: unknown): Promise<void> {
  const line = `${JSON.stringify(value)}\n`;
  return new Promise((resolve) => {
    if (out.write(line)) resolve();
    else out.once("drain", resolve);
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  // `... | head` closes our output early: that is the reader's choice, not an error.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(0);
    throw error;
  });
  runFramesCli(process.argv.slice(2), process).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`frames: ${error instanceof Error ? error.stack : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
