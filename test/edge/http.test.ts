/**
 * The RFC 9110 helpers of src/edge/http on their own: header field values in, decisions out.
 * (test/edge/objects.test.ts checks the answers the content route builds from them.)
 */
import { describe, expect, it } from "vitest";
import { entityTags, hasPreconditions, ifRangeHolds, isNotModified, opaqueTag } from "../../src/edge/http/conditional.ts";
import { contentRange, honouredRange, parseRange, satisfiableRange, unsatisfiedContentRange } from "../../src/edge/http/ranges.ts";

const ETAG = '"abc"';

function request(headers: Record<string, string>, method = "GET"): Request {
  return new Request("http://edge.test/x", { method, headers });
}

describe("entity tags (§8.8.3)", () => {
  it("reads the opaque-tags of a list, weak or not, skipping what is not an entity tag", () => {
    expect(entityTags('"a", W/"b",c, "d,e"')).toEqual(['"a"', '"b"', '"d,e"']);
    expect(entityTags("abc")).toEqual([]);
    expect(opaqueTag('W/"a"')).toBe('"a"');
    expect(opaqueTag('"a"')).toBe('"a"');
  });
});

describe("If-None-Match (§13.1.2)", () => {
  it("asks for 304 on *, the tag, its weak form (weak comparison) and a list holding it", () => {
    for (const field of ["*", " * ", ETAG, `W/${ETAG}`, `"x", ${ETAG}`, `W/"x",W/${ETAG}`]) {
      expect(isNotModified(request({ "if-none-match": field }), ETAG), field).toBe(true);
    }
    expect(isNotModified(request({ "if-none-match": ETAG }), `W/${ETAG}`)).toBe(true);
  });

  it("does not when no tag matches, the tag is unquoted, or the field is absent", () => {
    for (const field of ['"abcd"', "abc", '"x", W/"y"', ""]) {
      expect(isNotModified(request({ "if-none-match": field }), ETAG), field).toBe(false);
    }
    expect(isNotModified(request({}), ETAG)).toBe(false);
  });
});

describe("If-Range (§13.1.5)", () => {
  it("holds without the field and on the same strong tag only", () => {
    expect(ifRangeHolds(request({}), ETAG)).toBe(true);
    expect(ifRangeHolds(request({ "if-range": ETAG }), ETAG)).toBe(true);
    expect(ifRangeHolds(request({ "if-range": ` ${ETAG} ` }), ETAG)).toBe(true);
  });

  it("fails on another tag, any weak tag and an HTTP-date", () => {
    expect(ifRangeHolds(request({ "if-range": '"other"' }), ETAG)).toBe(false);
    expect(ifRangeHolds(request({ "if-range": `W/${ETAG}` }), ETAG)).toBe(false);
    expect(ifRangeHolds(request({ "if-range": `W/${ETAG}` }), `W/${ETAG}`)).toBe(false);
    expect(ifRangeHolds(request({ "if-range": "Wed, 21 Oct 2015 07:28:00 GMT" }), ETAG)).toBe(false);
  });
});

describe("preconditions (§13.1)", () => {
  it("finds any of the five precondition fields, and nothing else", () => {
    for (const field of ["if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "if-range"]) {
      expect(hasPreconditions(request({ [field]: "x" })), field).toBe(true);
    }
    expect(hasPreconditions(request({ range: "bytes=0-1", "accept-encoding": "gzip" }))).toBe(false);
  });
});

describe("Range (§14)", () => {
  it("parses one bytes range-spec: int-range, open int-range, suffix", () => {
    expect(parseRange("bytes=0-499")).toEqual({ first: 0, last: 499 });
    expect(parseRange("bytes=9500-")).toEqual({ first: 9500 });
    expect(parseRange("bytes=-500")).toEqual({ suffix: 500 });
    expect(parseRange("BYTES = 1-2")).toEqual({ first: 1, last: 2 });
    expect(parseRange("bytes=,3-4,")).toEqual({ first: 3, last: 4 });
  });

  it("refuses no field, several ranges, other units and invalid specs", () => {
    for (const field of [null, "bytes=0-0,-1", "items=0-1", "bytes=2-1", "bytes=a-b", "bytes=-", "bytes=1-2-3", "bytes=", "0-1"]) {
      expect(parseRange(field), String(field)).toBeUndefined();
    }
  });

  it("resolves a range-spec against a length, clamped to the end, or finds it unsatisfiable", () => {
    expect(satisfiableRange({ first: 0, last: 499 }, 10_000)).toEqual({ offset: 0, length: 500 });
    expect(satisfiableRange({ first: 9500 }, 10_000)).toEqual({ offset: 9500, length: 500 });
    expect(satisfiableRange({ first: 9999, last: 20_000 }, 10_000)).toEqual({ offset: 9999, length: 1 });
    expect(satisfiableRange({ suffix: 500 }, 10_000)).toEqual({ offset: 9500, length: 500 });
    expect(satisfiableRange({ suffix: 20_000 }, 10_000)).toEqual({ offset: 0, length: 10_000 });
    expect(satisfiableRange({ first: 10_000 }, 10_000)).toBeUndefined();
    expect(satisfiableRange({ suffix: 0 }, 10_000)).toBeUndefined();
  });

  it("honours a range on GET only, with a holding If-Range, of a non-empty representation", () => {
    const representation = { size: 100, etag: ETAG };
    expect(honouredRange(request({ range: "bytes=0-9" }), representation)).toEqual({ first: 0, last: 9 });
    expect(honouredRange(request({ range: "bytes=0-9", "if-range": ETAG }), representation)).toEqual({ first: 0, last: 9 });
    expect(honouredRange(request({ range: "bytes=0-9", "if-range": '"other"' }), representation)).toBeUndefined();
    expect(honouredRange(request({ range: "bytes=0-9" }, "HEAD"), representation)).toBeUndefined();
    expect(honouredRange(request({ range: "bytes=0-9" }), { size: 0, etag: ETAG })).toBeUndefined();
    expect(honouredRange(request({}), representation)).toBeUndefined();
  });

  it("writes Content-Range for 206 and 416 (§14.4)", () => {
    expect(contentRange({ offset: 10, length: 10 }, 100)).toBe("bytes 10-19/100");
    expect(unsatisfiedContentRange(100)).toBe("bytes */100");
  });
});
