/**
 * Synthetic stream clone bundles for tests, laid out as Mercurial writes them
 * (bundle2.addpartbundlestream2, streamclone._emit2; see src/protocol/streamclone.ts): `HG20`, no
 * stream parameters, one `stream2` part with the mandatory parameters bytecount, filecount and
 * requirements, its payload one entry per file, then the end-of-stream marker.
 */
import { concatBytes as concat } from "../../src/protocol/frames.ts";

export interface StreamFile {
  name: string;
  data: Uint8Array;
  /** "s" (store, the default) or "c" (cache). */
  destination?: string;
}

export interface Stream2Options {
  files: StreamFile[];
  /** e.g. ["generaldelta", "revlogv1", "sparserevlog"]; written sorted, comma-separated, URL-quoted. */
  requirements?: string[];
  /** Announce other counts than the payload holds. */
  announcedFiles?: number;
  announcedBytes?: number;
  /** Cut the payload after this many bytes (a broken entry). */
  cutPayloadAt?: number;
  /** Bytes to send as the payload instead of the files' entries. */
  payload?: Uint8Array;
}

const ascii = (s: string) => new TextEncoder().encode(s);
const int32 = (n: number) => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, n);
  return b;
};

/** util.uvarintencode. */
export function uvarint(n: number): Uint8Array {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return new Uint8Array(out);
}

export function stream2Payload(files: StreamFile[]): Uint8Array {
  return concat(files.flatMap((f) => [ascii(f.destination ?? "s"), uvarint(f.name.length), uvarint(f.data.length), ascii(f.name), f.data]));
}

export function stream2Bundle(options: Stream2Options): Uint8Array {
  const requirements = encodeURIComponent([...(options.requirements ?? ["generaldelta", "revlogv1", "sparserevlog"])].sort().join(","));
  const bytes = options.files.reduce((n, f) => n + f.data.length, 0);
  const params: [string, string][] = [
    ["bytecount", String(options.announcedBytes ?? bytes)],
    ["filecount", String(options.announcedFiles ?? options.files.length)],
    ["requirements", requirements],
  ];
  const header = concat([
    new Uint8Array([7]),
    ascii("stream2"),
    int32(0),
    new Uint8Array([params.length, 0]),
    new Uint8Array(params.flatMap(([k, v]) => [k.length, v.length])),
    ...params.flatMap(([k, v]) => [ascii(k), ascii(v)]),
  ]);
  let payload = options.payload ?? stream2Payload(options.files);
  if (options.cutPayloadAt !== undefined) payload = payload.subarray(0, options.cutPayloadAt);
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < payload.length; at += 4096) {
    const chunk = payload.subarray(at, at + 4096);
    chunks.push(int32(chunk.length), chunk);
  }
  return concat([ascii("HG20"), int32(0), int32(header.length), header, ...chunks, int32(0), int32(0)]);
}
