import { describe, expect, it } from "vitest";
import { FrameError, ProtocolError } from "../../src/protocol/errors.ts";
import {
  DEFAULT_MAX_FRAME_SIZE,
  FRAME_TYPES,
  FrameParser,
  chunkPayload,
  encodeFrame,
  frameFlagNames,
  frameTypeName,
  parseFrameHeader,
  parseFrames,
  streamFlagNames,
  type Frame,
} from "../../src/protocol/frames.ts";
import { fixtureBytes } from "../support/fixtures.ts";

const strip = (frames: Frame[]) => frames.map(({ offset, payload, ...h }) => ({ ...h, offset, payload: [...payload] }));

describe("frame header", () => {
  it("reads the verified heads request of protocol.md §2.10", () => {
    const header = parseFrameHeader(new Uint8Array([0x1c, 0x00, 0x00, 0x01, 0x00, 0x01, 0x01, 0x82]));
    expect(header).toEqual({ length: 28, requestId: 1, streamId: 1, streamFlags: 1, typeId: 8, flags: 2 });
    expect(frameTypeName(header.typeId)).toBe("sender-protocol-settings");
    expect(frameFlagNames(header.typeId, header.flags)).toEqual(["eos"]);
    expect(streamFlagNames(header.streamFlags)).toEqual(["stream-begin"]);
  });

  it("reads the third length byte with weight 65536, not Mercurial's 16384", () => {
    expect(parseFrameHeader(new Uint8Array([0x01, 0x02, 0x03, 1, 0, 2, 0, 0x30])).length).toBe(0x030201);
  });

  it("names flags and types as Mercurial does, unknown bits included", () => {
    expect(frameFlagNames(FRAME_TYPES["command-request"], 0xf)).toEqual(["new", "continuation", "more", "have-data"]);
    expect(frameFlagNames(FRAME_TYPES["error-response"], 0x1)).toEqual(["<unknown 0x01>"]);
    expect(frameTypeName(0xf)).toBe("<unknown 0x0f>");
    expect(streamFlagNames(0x07)).toEqual(["stream-begin", "stream-end", "encoded"]);
  });
});

describe("frame encoder", () => {
  it("round-trips a frame", () => {
    const frame = encodeFrame({ requestId: 3, streamId: 2, streamFlags: 4, typeId: 3, flags: 1, payload: new Uint8Array([1, 2, 3]) });
    expect([...frame]).toEqual([3, 0, 0, 3, 0, 2, 4, 0x31, 1, 2, 3]);
    expect(parseFrames(frame)[0]?.payload).toEqual(new Uint8Array([1, 2, 3]));
  });

  it("never emits a payload over 32768 bytes", () => {
    const payload = new Uint8Array(DEFAULT_MAX_FRAME_SIZE + 1);
    expect(() => encodeFrame({ requestId: 1, streamId: 2, streamFlags: 0, typeId: 3, flags: 2, payload })).toThrow(FrameError);
    expect(encodeFrame({ requestId: 1, streamId: 2, streamFlags: 0, typeId: 3, flags: 2, payload: payload.subarray(1) }).length).toBe(
      8 + DEFAULT_MAX_FRAME_SIZE,
    );
  });

  it("refuses header fields out of range", () => {
    const payload = new Uint8Array(0);
    expect(() => encodeFrame({ requestId: 0x10000, streamId: 1, streamFlags: 0, typeId: 1, flags: 1, payload })).toThrow(/request id/);
    expect(() => encodeFrame({ requestId: 1, streamId: 1, streamFlags: 0, typeId: 16, flags: 1, payload })).toThrow(/frame type/);
  });

  it("splits data into frame-sized views", () => {
    expect(chunkPayload(new Uint8Array(70000)).map((p) => p.length)).toEqual([32768, 32768, 4464]);
    expect(chunkPayload(new Uint8Array(0)).map((p) => p.length)).toEqual([0]);
  });
});

describe("incremental parser", () => {
  const bodyPromise = fixtureBytes("cmd-filedata/002-response.body");

  it("yields the same frames whatever the split, one byte at a time included", async () => {
    const body = await bodyPromise;
    const whole = strip(parseFrames(body));
    expect(whole.length).toBeGreaterThan(5);

    const oneByOne = new FrameParser();
    const frames: Frame[] = [];
    for (let i = 0; i < body.length; i++) frames.push(...oneByOne.push(body.subarray(i, i + 1)));
    oneByOne.finish();
    expect(strip(frames)).toEqual(whole);

    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let round = 0; round < 20; round++) {
      const parser = new FrameParser();
      const got: Frame[] = [];
      for (let at = 0; at < body.length; ) {
        const size = 1 + Math.floor(random() * 40000);
        got.push(...parser.push(body.subarray(at, at + size)));
        at += size;
      }
      parser.finish();
      expect(strip(got)).toEqual(whole);
    }
  });

  it("reports where a body ends inside a frame", async () => {
    const body = await bodyPromise;
    const frames = parseFrames(body);
    const third = frames[2] as Frame;
    const parser = new FrameParser();
    parser.push(body.subarray(0, third.offset + 5));
    const error = (() => {
      try {
        parser.finish();
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(FrameError);
    expect((error as FrameError).offset).toBe(third.offset);
    expect((error as FrameError).message).toContain("frame header");
    // Sticky: no more input is accepted after a failure.
    expect(() => parser.push(new Uint8Array(1))).toThrow(ProtocolError);
  });

  it("refuses a frame larger than its limit before buffering it", () => {
    const parser = new FrameParser(1024);
    expect(() => parser.push(new Uint8Array([0x00, 0x10, 0x00, 1, 0, 2, 0, 0x31]))).toThrow(/exceeds the limit of 1024/);
  });

  it("treats an empty body as no frames", () => {
    expect(parseFrames(new Uint8Array(0))).toEqual([]);
  });
});
