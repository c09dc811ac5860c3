/**
 * The cacheable requests a Mercurial 5.x wire-protocol-v2 clone sends, rebuilt from the data it
 * receives — so that a pre-warmer can send the very same ones (hgedge keys its cache on the
 * exact, normalised arguments: a request that differs by one node in one batch warms nothing).
 *
 * Mirrors `exchangev2.pull` (mercurial/exchangev2.py, 5.6–5.8) for a clone into an empty
 * repository without narrow patterns, depth or stream clone:
 *
 * 1. discovery learns the remote heads (`heads`);
 * 2. `changesetdata` with one `changesetdagrange` {roots: [], heads: sorted(remote heads)} and
 *    fields {bookmarks, parents, phase, revision} returns every changeset, in revision order;
 *    the client adds them in the order received and remembers each one's manifest node;
 * 3. `manifestdata` for the manifest nodes in that order, each node once, the null manifest
 *    (a changeset with no files) never — batches of the descriptor's `recommendedbatchsize`
 *    (default 10000) with {tree: '', fields: {parents, revision}, haveparents: true};
 * 4. `filesdata` for the changesets in that order — batches of the descriptor's
 *    `recommendedbatchsize` (default 50000) with {revisions: [{type: changesetexplicit,
 *    nodes}], fields: {parents, revision}, haveparents: true} and no pathfilter.
 *
 * Pure: values in, values out; the caller does the I/O.
 */
import { SequenceError } from "./errors.ts";
import { bytes, bytesEqual, cborMap, mapGet, text, type CborMap, type CborScalar, type CborValue } from "./cbor/values.ts";
import { fromHex, toHex } from "./hex.ts";

/** exchangev2.py's fallbacks when the descriptor names no batch size. */
export const DEFAULT_MANIFESTDATA_BATCH = 10_000;
export const DEFAULT_FILESDATA_BATCH = 50_000;

export const NULL_NODE = new Uint8Array(20);

export interface BatchSizes {
  manifestdata: number;
  filesdata: number;
}

/** The batch sizes a client takes from the API descriptor (`commands.<name>.recommendedbatchsize`). */
export function recommendedBatchSizes(descriptor: CborMap): BatchSizes {
  const commands = mapGet(descriptor, "commands");
  const size = (command: string, fallback: number): number => {
    const spec = commands instanceof Map ? mapGet(commands, command) : undefined;
    const value = spec instanceof Map ? mapGet(spec, "recommendedbatchsize") : undefined;
    const n = typeof value === "bigint" ? Number(value) : value;
    return typeof n === "number" && Number.isInteger(n) && n > 0 ? n : fallback;
  };
  return {
    manifestdata: size("manifestdata", DEFAULT_MANIFESTDATA_BATCH),
    filesdata: size("filesdata", DEFAULT_FILESDATA_BATCH),
  };
}

/** The objects of a `heads` answer: one list of nodes. */
export function headsFromResponse(objects: readonly CborValue[]): Uint8Array[] {
  const [list] = objects;
  if (!Array.isArray(list) || !list.every((n): n is Uint8Array => n instanceof Uint8Array && n.length === 20)) {
    throw new SequenceError("heads: expected one list of 20-byte nodes");
  }
  return list;
}

/** Bytewise order, as Python sorts bytes. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  return a.length - b.length;
}

/** `changesetdata` arguments of a clone (`_fetchchangesets` with no common nodes). */
export function changesetdataArgs(remoteHeads: readonly Uint8Array[]): CborMap {
  const heads = remoteHeads.filter((h) => !bytesEqual(h, NULL_NODE)).sort(compareBytes);
  return cborMap({
    revisions: [cborMap({ type: bytes("changesetdagrange"), roots: [], heads })],
    fields: new Set<CborScalar>(["bookmarks", "parents", "phase", "revision"].map(bytes)),
  });
}

export interface ReceivedChangeset {
  node: Uint8Array;
  /** The manifest node, from the first line of the changeset's revision text. */
  manifest: Uint8Array;
}

/**
 * Reads the objects of a `changesetdata` answer as they arrive (`_processchangesetdata`): a
 * header map, then per changeset a map whose `fieldsfollowing` announces the values after it.
 * Keeps only node and manifest node of each changeset (40 bytes each), whatever the answer's
 * size.
 */
export class ChangesetReader {
  readonly changesets: ReceivedChangeset[] = [];
  /** The header's `totalitems`, once read. */
  totalItems: number | undefined;
  private headerSeen = false;
  private current: { node: Uint8Array; following: string[] } | undefined;

  push(values: readonly CborValue[]): void {
    for (const value of values) this.accept(value);
  }

  /** The answer ended: throws if it stopped inside a changeset. */
  finish(): ReceivedChangeset[] {
    if (!this.headerSeen) throw new SequenceError("changesetdata: the answer has no header");
    if (this.current) throw new SequenceError("changesetdata: the answer ended inside a changeset");
    return this.changesets;
  }

  private accept(value: CborValue): void {
    if (!this.headerSeen) {
      if (!(value instanceof Map)) throw new SequenceError("changesetdata: the first object is not a header map");
      const total = mapGet(value, "totalitems");
      if (typeof total === "number") this.totalItems = total;
      this.headerSeen = true;
      return;
    }
    if (this.current) return this.acceptField(this.current, value);
    if (!(value instanceof Map)) throw new SequenceError("changesetdata: expected a changeset map");
    const node = mapGet(value, "node");
    if (!(node instanceof Uint8Array)) throw new SequenceError("changesetdata: a changeset without node");
    const following = mapGet(value, "fieldsfollowing");
    const names = Array.isArray(following)
      ? following.map((pair) => (Array.isArray(pair) && pair[0] instanceof Uint8Array ? text(pair[0]) : ""))
      : [];
    // Entries without a revision (metadata-only updates) add no changeset (exchangev2.py).
    if (names.length > 0) this.current = { node, following: names };
  }

  private acceptField(current: { node: Uint8Array; following: string[] }, value: CborValue): void {
    const name = current.following.shift();
    if (name === "revision") {
      if (!(value instanceof Uint8Array)) throw new SequenceError("changesetdata: revision is not a byte string");
      this.changesets.push({ node: current.node, manifest: manifestOfRevision(value) });
    }
    if (current.following.length === 0) this.current = undefined;
  }
}

/** A changeset's revision text starts with the hex manifest node and a newline. */
export function manifestOfRevision(revision: Uint8Array): Uint8Array {
  const hex = text(revision.subarray(0, 40));
  if (revision[40] !== 0x0a || !/^[0-9a-f]{40}$/.test(hex)) {
    throw new SequenceError("changesetdata: a revision does not start with a manifest node");
  }
  return fromHex(hex);
}

/** Manifest nodes to fetch, in the order `_fetchmanifests` builds them: by changeset, once each, no null. */
export function manifestNodes(changesets: readonly ReceivedChangeset[]): Uint8Array[] {
  const seen = new Set<string>();
  const nodes: Uint8Array[] = [];
  for (const { manifest } of changesets) {
    const key = toHex(manifest);
    if (seen.has(key)) continue;
    seen.add(key);
    // rootmanifest.rev(nullid) is nullrev, not a LookupError: the null manifest is never fetched.
    if (!bytesEqual(manifest, NULL_NODE)) nodes.push(manifest);
  }
  return nodes;
}

export function manifestdataArgs(nodes: readonly Uint8Array[]): CborMap {
  return cborMap({
    tree: new Uint8Array(0),
    nodes: [...nodes],
    fields: new Set<CborScalar>([bytes("parents"), bytes("revision")]),
    haveparents: true,
  });
}

export function filesdataArgs(changesets: readonly Uint8Array[]): CborMap {
  return cborMap({
    revisions: [cborMap({ type: bytes("changesetexplicit"), nodes: [...changesets] })],
    fields: new Set<CborScalar>([bytes("parents"), bytes("revision")]),
    haveparents: true,
  });
}

export type CloneCommand = "manifestdata" | "filesdata";

/** One cacheable request of a clone. */
export interface PlannedRequest {
  command: CloneCommand;
  args: CborMap;
  /** 0-based batch number within its command. */
  batch: number;
  /** Manifests or changesets the batch names. */
  items: number;
}

/** Every cacheable request a clone sends, in the order it sends them. */
export function clonePlan(changesets: readonly ReceivedChangeset[], sizes: BatchSizes): PlannedRequest[] {
  const manifests = chunks(manifestNodes(changesets), sizes.manifestdata).map(
    (nodes, batch): PlannedRequest => ({ command: "manifestdata", args: manifestdataArgs(nodes), batch, items: nodes.length }),
  );
  const files = chunks(
    changesets.map((c) => c.node),
    sizes.filesdata,
  ).map((nodes, batch): PlannedRequest => ({ command: "filesdata", args: filesdataArgs(nodes), batch, items: nodes.length }));
  return [...manifests, ...files];
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
