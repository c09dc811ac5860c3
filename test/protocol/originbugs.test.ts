import { describe, expect, it } from "vitest";
import { bytes, cborMap, encode, mapGet } from "../../src/protocol/cbor.ts";
import { FRAME_TYPES, encodeFrame, parseFrames } from "../../src/protocol/frames.ts";
import { asksForParents, isRemovedFileFailure, withoutParents } from "../../src/protocol/originbugs.ts";
import { parseRequestBody } from "../../src/protocol/requests.ts";
import { encodeCommandError, encodeErrorResponseFrame, encodeOkResponse } from "../../src/protocol/responses.ts";
import { exchanges } from "../support/fixtures.ts";

const errorFrame = (payload: Uint8Array, requestId = 1) =>
  parseFrames(encodeFrame({ requestId, streamId: 2, streamFlags: 1, typeId: FRAME_TYPES["error-response"], flags: 0, payload }))[0]!;

describe("the origin's removed-file failure", () => {
  it("is recognised in the recorded answer (Debian's 5.6.1: the C manifest's KeyError text)", async () => {
    const failing = (await exchanges("clone-v2-rename-bug")).at(-1)!;
    const [first] = parseFrames(failing.response);
    expect(isRemovedFileFailure(first!, 1)).toBe(true);
  });

  it("is recognised with the pure-Python manifest's empty KeyError text (stands for 5.8.1 without C extensions)", () => {
    // What a pure-Python 5.8.1 origin sends: the same error frame with an empty message.
    const frame = errorFrame(encode(cborMap({ type: bytes("server"), message: [cborMap({ msg: new Uint8Array(0) })] })));
    expect(isRemovedFileFailure(frame, 1)).toBe(true);
  });

  it("is not confused with any other error", async () => {
    const others = [
      errorFrame(encode(cborMap({ type: bytes("server"), message: [cborMap({ msg: bytes("b'hashes'") })] }))),
      errorFrame(encode(cborMap({ type: bytes("protocol"), message: [cborMap({ msg: new Uint8Array(0) })] }))),
      errorFrame(encode(cborMap({ type: bytes("server"), message: [cborMap({ msg: new Uint8Array(0), args: [] })] }))),
      errorFrame(encode(cborMap({ type: bytes("server"), message: [] }))),
      errorFrame(new Uint8Array([0xff])),
      parseFrames(encodeErrorResponseFrame(1, "server", "unknown revision 'x'"))[0]!,
      parseFrames(encodeCommandError(1, ""))[0]!,
      parseFrames(encodeOkResponse(1, encode([1])))[0]!,
      ...parseFrames((await exchanges("cmd-lookup-unknown")).at(-1)!.response),
    ];
    for (const frame of others) expect(isRemovedFileFailure(frame, 1)).toBe(false);
    // The right shape for another request id is not ours either.
    const failing = (await exchanges("clone-v2-rename-bug")).at(-1)!;
    expect(isRemovedFileFailure(parseFrames(failing.response)[0]!, 3)).toBe(false);
  });

  it("is avoided by the same request with haveparents false and linknodes, settings frame kept byte for byte", async () => {
    const failing = (await exchanges("clone-v2-rename-bug")).at(-1)!;
    const body = failing.request!;
    const parsed = parseRequestBody(body);
    const command = parsed.commands[0]!;
    expect(asksForParents(command)).toBe(true);
    const rewritten = withoutParents(body, parsed, command);
    const again = parseRequestBody(rewritten);
    expect(again.contentEncodings).toEqual(parsed.contentEncodings);
    expect(rewritten.subarray(0, again.frames[0]!.length + 8)).toEqual(body.subarray(0, parsed.frames[0]!.length + 8));
    const args = again.commands[0]!.args;
    expect(mapGet(args, "haveparents")).toBe(false);
    expect(mapGet(args, "revisions")).toEqual(mapGet(command.args, "revisions"));
    const fields = [...(mapGet(args, "fields") as Set<Uint8Array>)].map((f) => new TextDecoder().decode(f)).sort();
    expect(fields).toEqual([...(mapGet(command.args, "fields") as Set<Uint8Array>)].map((f) => new TextDecoder().decode(f)).concat("linknode").sort());
    expect(asksForParents(again.commands[0]!)).toBe(false);
  });
});
