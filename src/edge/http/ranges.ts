/**
 * Range requests (RFC 9110 §14) for a single `bytes` range, as pure functions on a request's
 * header fields and a representation's length.
 *
 * Only one range is ever honoured: several ranges, other units and invalid range sets are
 * ignored (the whole representation is then sent), which §14.2 allows — "A server MAY ignore
 * the Range header field" — and spares building multipart/byteranges bodies.
 */
import { ifRangeHolds } from "./conditional.ts";

/** `int-range = first-pos "-" [ last-pos ]` or `suffix-range = "-" suffix-length` (§14.1.1). */
export type ByteRangeSpec = { first: number; last?: number } | { suffix: number };

/** A range resolved against a representation: where it starts and how many bytes it holds. */
export interface ByteRange {
  offset: number;
  length: number;
}

/** What a range is resolved against: the selected representation's length and entity tag. */
export interface RangedRepresentation {
  size: number;
  etag: string;
}

/**
 * The single byte range a request asks for and may get, or undefined: serve the whole
 * representation. §14.2: "GET is the only method for which range handling is defined."
 * §13.2.2 step 5: "When the method is GET and both Range and If-Range are present, evaluate the
 * If-Range precondition: if true and the Range is applicable to the selected representation,
 * respond 206 (Partial Content); otherwise, ignore the Range header field and respond 200 (OK)".
 * A zero-length representation has no byte range to describe.
 */
export function honouredRange(request: Request, representation: RangedRepresentation): ByteRangeSpec | undefined {
  if (request.method !== "GET" || representation.size === 0) return undefined;
  if (!ifRangeHolds(request, representation.etag)) return undefined;
  return parseRange(request.headers.get("range"));
}

/** The one range-spec of a `bytes` Range field value, or undefined (absent, another unit, several, invalid). */
export function parseRange(field: string | null): ByteRangeSpec | undefined {
  const match = field === null ? null : /^\s*bytes\s*=(.*)$/i.exec(field);
  if (!match) return undefined;
  // range-set = 1#range-spec; §5.6.1 lets list elements be empty.
  const specs = (match[1] ?? "").split(",").map((spec) => spec.trim()).filter((spec) => spec !== "");
  return specs.length === 1 ? parseRangeSpec(specs[0] as string) : undefined;
}

function parseRangeSpec(spec: string): ByteRangeSpec | undefined {
  const match = /^(\d*)-(\d*)$/.exec(spec);
  if (!match || (match[1] === "" && match[2] === "")) return undefined;
  if (match[1] === "") return { suffix: Number(match[2]) };
  const first = Number(match[1]);
  if (match[2] === "") return { first };
  const last = Number(match[2]);
  // §14.1.1: "An int-range is invalid if the last-pos value is present and less than the first-pos."
  return last < first ? undefined : { first, last };
}

/**
 * The bytes a range-spec selects from a representation of `size` bytes, or undefined when it
 * selects none (answer 416). §14.1.1: "a valid bytes range-spec is satisfiable if it is either:
 * an int-range with a first-pos that is less than the current length of the selected
 * representation or a suffix-range with a non-zero suffix-length"; a last-pos at or past the
 * end, or a suffix longer than the representation, means up to its end.
 */
export function satisfiableRange(range: ByteRangeSpec, size: number): ByteRange | undefined {
  if ("suffix" in range) {
    if (range.suffix === 0) return undefined;
    const length = Math.min(range.suffix, size);
    return { offset: size - length, length };
  }
  if (range.first >= size) return undefined;
  const last = Math.min(range.last ?? size - 1, size - 1);
  return { offset: range.first, length: last - range.first + 1 };
}

/** Content-Range of a 206 (§14.4): `bytes first-last/complete-length`. */
export function contentRange(range: ByteRange, size: number): string {
  return `bytes ${range.offset}-${range.offset + range.length - 1}/${size}`;
}

/** Content-Range of a 416 (§14.4, §15.5.17): `bytes` and an asterisk for the range, then the complete length. */
export function unsatisfiedContentRange(size: number): string {
  return `bytes */${size}`;
}
