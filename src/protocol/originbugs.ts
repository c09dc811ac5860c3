/**
 * Known failures of stock Mercurial 5.x origins that hgedge can route around.
 *
 * filesdata with `haveparents: true` fails whenever one of the requested changesets removed a
 * file (a rename removes one too): the server computes `manifest[path]` for every path the
 * changeset touched, the removed path is not in the manifest, and the KeyError becomes an
 * error-response frame `{type: server, message: [{msg: M}]}` before any output, where M is the
 * KeyError's text: empty with the pure-Python manifest (recorded with 5.8.1), `'No such manifest
 * entry.'` with the C manifest (Debian's 5.6.1).
 *
 * The same request with `haveparents: false` succeeds: it sends full revisions of every file in
 * the changesets' manifests instead of deltas for the files they touched. Stock clients accept
 * that for a clone, but a pull then receives file revisions it already has, for which it cannot
 * compute a linkrev ("no node"); asking for the `linknode` field too makes the server name a
 * changeset for each one, which the client has, so pulls work as well.
 */
import { decodeAll } from "./cbor/decode.ts";
import { bytes, mapGet, text, type CborMap, type CborValue } from "./cbor/values.ts";
import { FRAME_TYPES, concatBytes, type Frame } from "./frames.ts";
import { encodeCommandRequestFrames, type CommandRequest, type ParsedRequestBody } from "./requests.ts";

/** Exactly the origin's answer to the removed-file bug: nothing else matches. */
export function isRemovedFileFailure(frame: Frame, requestId: number): boolean {
  if (frame.typeId !== FRAME_TYPES["error-response"] || frame.requestId !== requestId || frame.flags !== 0) return false;
  let map: unknown;
  try {
    [map] = decodeAll(frame.payload);
  } catch {
    return false;
  }
  if (!(map instanceof Map) || map.size !== 2) return false;
  const type = mapGet(map, "type");
  const message = mapGet(map, "message");
  if (!(type instanceof Uint8Array) || text(type) !== "server" || !Array.isArray(message) || message.length !== 1) return false;
  const [atom] = message;
  if (!(atom instanceof Map) || atom.size !== 1) return false;
  const msg = mapGet(atom, "msg");
  return msg instanceof Uint8Array && MANIFEST_KEYERROR_TEXTS.has(text(msg));
}

/** str(KeyError) of a missing manifest path, pure-Python and C manifest implementations. */
const MANIFEST_KEYERROR_TEXTS = new Set(["", "'No such manifest entry.'"]);

/** Whether a filesdata request asks for deltas against parents (the form the bug breaks). */
export function asksForParents(command: CommandRequest): boolean {
  return command.name === "filesdata" && mapGet(command.args, "haveparents") === true;
}

/**
 * The same request body with `haveparents: false` and `linknode` among the fields: the
 * sender-protocol-settings frame is kept byte for byte, only the command-request frames are
 * re-encoded (name, args and redirect map; nothing else of a request map means anything to the
 * server).
 */
export function withoutParents(body: Uint8Array, parsed: ParsedRequestBody, command: CommandRequest): Uint8Array {
  const settings = parsed.frames.filter((f) => f.typeId === FRAME_TYPES["sender-protocol-settings"]);
  const kept = settings.map((f) => body.subarray(f.offset, f.offset + 8 + f.length));
  const args: CborMap = new Map(command.args);
  setArg(args, "haveparents", false);
  setArg(args, "fields", withLinknode(mapGet(args, "fields")));
  const init = { name: command.name, args, requestId: command.requestId, ...redirectOf(command) };
  return concatBytes([...kept, ...encodeCommandRequestFrames(init, kept.length === 0)]);
}

function setArg(args: CborMap, name: string, value: CborValue): void {
  for (const key of args.keys()) if (key instanceof Uint8Array && text(key) === name) args.delete(key);
  args.set(bytes(name), value);
}

/** `fields` (a set, or a list the server turns into one) with `linknode` added. */
function withLinknode(fields: CborValue | undefined): CborValue {
  const linknode = bytes("linknode");
  const present = (list: Iterable<unknown>) => [...list].some((f) => f instanceof Uint8Array && text(f) === "linknode");
  if (fields instanceof Set) return present(fields) ? fields : new Set([...fields, linknode]);
  if (Array.isArray(fields)) return present(fields) ? fields : [...fields, linknode];
  return new Set([linknode]);
}

function redirectOf(command: CommandRequest): { redirect?: { targets: string[]; hashes: string[] } } {
  if (!command.redirect) return {};
  const list = (key: string) => {
    const value = mapGet(command.redirect as CborMap, key);
    return Array.isArray(value) ? value.filter((v): v is Uint8Array => v instanceof Uint8Array).map(text) : [];
  };
  return { redirect: { targets: list("targets"), hashes: list("hashes") } };
}

