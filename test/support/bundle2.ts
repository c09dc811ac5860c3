/**
 * Synthetic bundle2 streams for tests, laid out as mercurial/bundle2.py writes them (see
 * src/protocol/bundle2.ts): a changegroup part of `changesets` changelog entries (cg2 chunks
 * with a 100-byte delta header), an empty manifest group and file list, and a phase-heads part.
 */
import { concatBytes as concat } from "../../src/protocol/frames.ts";

export interface BundleOptions {
  changesets: number;
  /** Bytes of delta after each changelog entry's header (to make big bundles). */
  deltaBytes?: number;
  /** Stream parameters, e.g. ["Compression=BZ"]. */
  streamParams?: string[];
  /** Changegroup version parameter (default 02). */
  version?: string;
  /** Leave out the nbchanges parameter. */
  unannounced?: boolean;
  /** Instead of phase-heads, an error:abort part with this message after the changegroup. */
  abortMessage?: string;
  /** Interrupt the changegroup's payload with the -1 flag. */
  interrupt?: boolean;
}

const int32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, n);
  return b;
};
const ascii = (s: string) => new TextEncoder().encode(s);

/** Joins byte arrays (the codec's own helper, re-exported for the bundle tests). */
export { concat };

function partHeader(type: string, id: number, mandatory: [string, string][], advisory: [string, string][] = []): Uint8Array {
  const params = [...mandatory, ...advisory];
  const header = concat([
    new Uint8Array([type.length]),
    ascii(type),
    int32(id),
    new Uint8Array([mandatory.length, advisory.length]),
    new Uint8Array(params.flatMap(([k, v]) => [k.length, v.length])),
    ...params.flatMap(([k, v]) => [ascii(k), ascii(v)]),
  ]);
  return concat([int32(header.length), header]);
}

/** A payload sent as chunks of at most 4096 bytes (bundle2's preferred size), then the 0 chunk. */
function payload(data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < data.length; at += 4096) {
    const chunk = data.subarray(at, at + 4096);
    out.push(int32(chunk.length), chunk);
  }
  return out;
}

export function changegroupPayload(changesets: number, deltaBytes = 16): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < changesets; i++) {
    const body = new Uint8Array(100 + deltaBytes).map((_, k) => (i * 31 + k * 7) & 0xff);
    chunks.push(int32(body.length + 4), body);
  }
  chunks.push(int32(0)); // end of the changelog group
  chunks.push(int32(0)); // an empty manifest group
  chunks.push(int32(0)); // no files
  return concat(chunks);
}

export function bundle2(options: BundleOptions): Uint8Array {
  const params = (options.streamParams ?? []).join(" ");
  const parts: Uint8Array[] = [ascii("HG20"), int32(params.length), ascii(params)];
  if (options.changesets > 0) {
    const advisory: [string, string][] = options.unannounced ? [] : [["nbchanges", String(options.changesets)]];
    parts.push(partHeader("CHANGEGROUP", 0, [["version", options.version ?? "02"]], advisory));
    const data = payload(changegroupPayload(options.changesets, options.deltaBytes));
    if (options.interrupt) {
      parts.push(...data.slice(0, 2), int32(-1));
      return concat(parts);
    }
    parts.push(...data, int32(0));
  }
  if (options.abortMessage !== undefined) {
    parts.push(partHeader("error:abort", 1, [["message", options.abortMessage]]), int32(0));
  } else {
    parts.push(partHeader("PHASE-HEADS", 1, []), ...payload(new Uint8Array(24)), int32(0));
  }
  parts.push(int32(0)); // end of stream
  return concat(parts);
}
