/**
 * Conformance against every exchange in test/fixtures, recorded between real Mercurial clients
 * and servers (and hgedge) by `npm run fixtures:record`. For each exchange our codec renders the
 * same dump that Mercurial's own wireprotoframing/cborutil produced (NNN-frames.txt, written by
 * Debian's 5.6.1 through scripts/fixtures/dumpframes.py), and what Mercurial encodes
 * deterministically re-encodes to the same bytes.
 */
import { describe, expect, it } from "vitest";
import { ByteStringChunk, SansIoDecoder, encodeSequence, type CborValue } from "../../src/protocol/cbor.ts";
import {
  FRAME_HEADER_SIZE,
  FRAME_TYPES,
  FrameParser,
  STREAM_FLAGS,
  concatBytes,
  encodeFrame,
  writeFrameHeader,
  type Frame,
} from "../../src/protocol/frames.ts";
import { createStreamDecoder, type StreamDecoder } from "../../src/protocol/streams.ts";
import { dumpExchange, isParseErrorLine } from "../support/hgdump.ts";
import { exchanges, fixtureText, scenarios } from "../support/fixtures.ts";

const allScenarios = await scenarios();

describe("fixtures are present", () => {
  it("has exactly the scenarios INDEX.md lists", async () => {
    const index = await fixtureText("INDEX.md");
    const listed = [...index.matchAll(/^- \*\*([\w-]+)\*\*/gm)].map((m) => m[1]);
    expect(listed.length).toBeGreaterThan(40);
    expect(allScenarios).toEqual([...listed].sort());
  });
});

describe.each(allScenarios)("%s", (scenario) => {
  it("decodes every frame and value exactly as Mercurial's recorded dump says", async () => {
    for (const exchange of await exchanges(scenario)) {
      const expected = await fixtureText(`${scenario}/${exchange.seq}-frames.txt`);
      const actual = dumpExchange(exchange.meta, exchange.request, exchange.response);
      compareDumps(actual, expected, `${scenario}/${exchange.seq}-frames.txt`);
    }
  });

  it("re-encodes frame headers and deterministic CBOR to the recorded bytes", async () => {
    for (const exchange of await exchanges(scenario)) {
      for (const body of [exchange.request, exchange.response]) {
        if (body && isFramed(exchange, body)) checkReencoding(body);
      }
    }
  });
});

function isFramed(exchange: { meta: { request_content_type?: string | null; content_type?: string | null }; request?: Uint8Array }, body: Uint8Array): boolean {
  const type = body === exchange.request ? exchange.meta.request_content_type : exchange.meta.content_type;
  return (type ?? "").startsWith("application/mercurial-exp-framing");
}

function compareDumps(actual: string, expected: string, label: string): void {
  const a = actual.split("\n");
  const e = expected.split("\n");
  for (let i = 0; i < Math.max(a.length, e.length); i++) {
    const got = a[i] ?? "<end of our dump>";
    const want = e[i] ?? "<end of recorded dump>";
    if (isParseErrorLine(want) && isParseErrorLine(got)) {
      // The reason is worded differently; the offset must agree.
      expect(got.split(":")[0], `${label}:${i + 1}`).toBe(want.split(":")[0]);
      continue;
    }
    if (got !== want) {
      expect.fail(`${label}:${i + 1} differs\n  recorded: ${want}\n  ours:     ${got}`);
    }
  }
}

/**
 * Frame headers re-encode byte for byte; each request id's decoded CBOR stream re-encodes to the
 * same bytes (Mercurial sorts map keys and set elements bytewise and uses shortest forms).
 */
function checkReencoding(body: Uint8Array): void {
  const parser = new FrameParser();
  let frames: Frame[];
  try {
    frames = parser.push(body);
    parser.finish();
  } catch {
    return; // malformed bodies are covered by the dump comparison
  }
  const streams = new Map<number, StreamDecoder>();
  const decoded = new Map<string, Uint8Array[]>();
  for (const frame of frames) {
    const header = new Uint8Array(FRAME_HEADER_SIZE);
    writeFrameHeader(header, 0, frame);
    expect(header).toEqual(body.subarray(frame.offset, frame.offset + FRAME_HEADER_SIZE));
    if (frame.payload.length <= 32768) {
      expect(encodeFrame(frame)).toEqual(body.subarray(frame.offset, frame.offset + FRAME_HEADER_SIZE + frame.length));
    }
    let payload = frame.payload;
    const decoder = streams.get(frame.streamId);
    if (frame.streamFlags & STREAM_FLAGS.encoded && decoder) payload = decoder.decode(payload);
    const key = `${frame.typeId === FRAME_TYPES["error-response"] ? "e" : frame.typeId === FRAME_TYPES["stream-settings"] ? "s" : "c"}/${frame.typeId === FRAME_TYPES["stream-settings"] ? frame.streamId : frame.requestId}`;
    if (frame.typeId === FRAME_TYPES["command-data"]) continue;
    decoded.set(key, [...(decoded.get(key) ?? []), payload]);
    if (frame.typeId === FRAME_TYPES["stream-settings"] && frame.flags & 0x2) {
      const [name] = new SansIoDecoderOnce(concatBytes(decoded.get(key) ?? [])).values;
      streams.set(frame.streamId, createStreamDecoder(new TextDecoder().decode(name as Uint8Array)));
      decoded.delete(key);
    }
  }
  for (const parts of decoded.values()) {
    const bytes = concatBytes(parts);
    const { values, complete } = new SansIoDecoderOnce(bytes);
    // Indefinite byte strings re-encode chunk by chunk; a 200 text/plain tail is not CBOR.
    if (!complete || values.some((v) => v instanceof ByteStringChunk)) continue;
    expect(encodeSequence(values)).toEqual(bytes);
  }
}

class SansIoDecoderOnce {
  values: CborValue[] = [];
  complete = false;
  constructor(bytes: Uint8Array) {
    const decoder = new SansIoDecoder();
    try {
      const result = decoder.decode(bytes);
      this.values = decoder.takeAvailable();
      this.complete = result.readCount === bytes.length && !decoder.inProgress;
    } catch {
      this.complete = false;
    }
  }
}
