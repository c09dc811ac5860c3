/**
 * Object names as they appear on the content route, `/.hgedge/objects/<object name>`: turning a
 * request path back into the R2 key it names, and refusing every path that names none.
 *
 * Names are built by keys.ts (`<repository path>/<command>/<key>`) and bundles.ts
 * (`.bundles/<repository path>/<bundle file>`), and encoded into paths by objectPath in
 * urls.ts; objectNameFromPath is the inverse of that encoding.
 */
import { BUNDLES_SEGMENT, isBundleObjectSegments } from "./bundles.ts";
import { OBJECTS_PATH } from "../config/targets.ts";

/** Where redirects point on the edge itself (urls.ts builds those URLs). */
export const OBJECTS_ROUTE_PREFIX = OBJECTS_PATH;
/** The last segment of an object name: a cache key, lower-case hex SHA-256. */
export const OBJECT_KEY_PATTERN = /^[0-9a-f]{64}$/;
/** R2 refuses longer keys; a longer name cannot be an object. */
export const MAX_OBJECT_NAME_BYTES = 1024;
/** The name segment standing for the repository at `/` (see repositoryPrefix in keys.ts). */
export const ROOT_REPOSITORY_SEGMENT = ".root";

/** Separators and control characters have no place in a name segment. */
const UNSAFE_SEGMENT_CHARACTERS = /[/\\\u0000-\u001f\u007f]/;

/**
 * The object name in a content-route path, or undefined when the path is not one (or tries to
 * escape with .., empty segments, etc.).
 *
 * Each segment of a name is percent-encoded on its own, so a decoded segment never holds a `/`.
 * Dot segments are refused outright rather than resolved: hgweb serves no repository path
 * segment starting with a dot, so the only one a real name has is the leading `.root` of the
 * root repository (or the `.bundles` of a clone bundle).
 */
export function objectNameFromPath(pathname: string): string | undefined {
  if (!pathname.startsWith(OBJECTS_ROUTE_PREFIX)) return undefined;
  const decoded = pathname.slice(OBJECTS_ROUTE_PREFIX.length).split("/").map(decodeSegment);
  if (decoded.length < 3 || !decoded.every((segment) => segment !== undefined)) return undefined;
  const segments = decoded as string[];
  if (segments[0] === BUNDLES_SEGMENT) {
    const clean = segments.every((segment) => !UNSAFE_SEGMENT_CHARACTERS.test(segment));
    return clean && isBundleObjectSegments(segments) ? boundedName(segments) : undefined;
  }
  if (!segments.every((segment, index) => isNameSegment(segment, index, segments.length))) return undefined;
  if (!OBJECT_KEY_PATTERN.test(segments[segments.length - 1] as string)) return undefined;
  return boundedName(segments);
}

function boundedName(segments: string[]): string | undefined {
  const name = segments.join("/");
  return new TextEncoder().encode(name).length <= MAX_OBJECT_NAME_BYTES ? name : undefined;
}

/** A segment percent-decoded, or undefined when it is not valid percent-encoded UTF-8. */
function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/** A segment of a cached command's name: `.root` only as the whole repository of a 3-segment name. */
function isNameSegment(segment: string, index: number, count: number): boolean {
  if (segment === "" || UNSAFE_SEGMENT_CHARACTERS.test(segment)) return false;
  if (!segment.startsWith(".")) return true;
  return segment === ROOT_REPOSITORY_SEGMENT && index === 0 && count === 3;
}
