/**
 * `npm run -s frames -- decode [--payloads] FILE|-`
 *
 * Reads a raw framed wire-protocol-v2 body (a request or a response, as sent over HTTP after
 * de-chunking) and prints one JSON object per frame: requestId, streamId, streamFlags (names),
 * type (name), flags (names), length. With --payloads, each frame also lists the CBOR values it
 * completed (after stream decoding; byte strings as hex), and after the frames one object per
 * request id gives the reassembled request or response. Streams: memory stays bounded by the
 * largest frame and CBOR item, whatever the body's size.
 *
 * Exit status: 0 on success, 1 on malformed input (message with the byte offset), 2 on misuse.
 */
import { createReadStream } from "node:fs";
import type { Readable, Writable } from "node:stream";
import { pathToFileURL } from "node:url";
import { ProtocolError } from "../src/protocol/errors.ts";
import { FrameInspector, cborToJson } from "../src/protocol/inspect.ts";
import "./zstd-fallback.ts";

const USAGE = "usage: npm run -s frames -- decode [--payloads] FILE   (FILE - reads standard input)\n";

export interface CliIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
}

export async function runFramesCli(args: string[], io: CliIo): Promise<number> {
  const [command, ...rest] = args;
  const payloads = rest.includes("--payloads");
  const files = rest.filter((a) => a !== "--payloads");
  if (command !== "decode" || files.length !== 1 || rest.some((a) => a.startsWith("--") && a !== "--payloads")) {
    io.stderr.write(USAGE);
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
