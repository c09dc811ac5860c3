/**
 * Conditional requests with entity tags (RFC 9110 §8.8.3, §13), as pure functions on a request's
 * header fields: nothing here knows what is being served or where it is stored.
 *
 * Only entity tags are validators here; HTTP-dates never hold, which is right for
 * representations that send no Last-Modified.
 */

/** The precondition fields of §13.1: a request with none of them is unconditional. */
export const PRECONDITION_FIELDS = ["if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "if-range"] as const;

/** Whether the request carries any precondition field (§13.1), whatever its value. */
export function hasPreconditions(request: Request): boolean {
  return PRECONDITION_FIELDS.some((field) => request.headers.has(field));
}

/**
 * Whether If-None-Match asks for 304 Not Modified (§15.4.5), i.e. its condition is false for a
 * current representation tagged `etag`. §13.1.2: "If the field value is "*", the condition is
 * false if the origin server has a current representation for the target resource. If the field
 * value is a list of entity tags, the condition is false if one of the listed tags matches the
 * entity tag of the selected representation" — using the weak comparison function (§8.8.3.2):
 * "two entity tags are equivalent if their opaque-tags match character-by-character, regardless
 * of either or both being tagged as 'weak'". A request without the field never asks for 304.
 */
export function isNotModified(request: Request, etag: string): boolean {
  const field = request.headers.get("if-none-match");
  if (field === null) return false;
  if (field.trim() === "*") return true;
  const ours = opaqueTag(etag);
  return entityTags(field).some((tag) => tag === ours);
}

/**
 * Whether If-Range lets a Range be honoured. §13.1.5: "If the entity-tag validator provided
 * exactly matches the ETag field value for the selected representation using the strong
 * comparison function (Section 8.8.3.2), the condition is true." A weak tag never matches
 * strongly; an HTTP-date never holds (no Last-Modified is sent for it to match). A request
 * without If-Range holds trivially.
 */
export function ifRangeHolds(request: Request, etag: string): boolean {
  const field = request.headers.get("if-range");
  if (field === null) return true;
  return !etag.startsWith("W/") && field.trim() === etag;
}

/**
 * The opaque-tags (quotes kept, `W/` dropped) of the `entity-tag = [ weak ] opaque-tag` items
 * (§8.8.3) in a list field value. Anything that is not an entity tag — an unquoted word, say —
 * is skipped rather than failing the whole field.
 */
export function entityTags(field: string): string[] {
  return [...field.matchAll(/(?:W\/)?("[^"]*")/g)].map((match) => match[1] ?? "");
}

/** An entity tag without its weakness indicator: what the weak comparison compares. */
export function opaqueTag(etag: string): string {
  return etag.replace(/^W\//, "");
}
