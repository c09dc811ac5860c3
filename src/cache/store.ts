/**
 * Writing one cached object to R2 while it streams past, in bounded memory, so that nothing
 * partial is ever visible: bytes are buffered up to one part; an object that fits in one part is
 * written with a single `put` at commit, a larger one as a multipart upload in equal parts
 * (R2 needs ≥ 5 MiB for every part but the last) that only becomes visible on `complete`.
 * `abort` throws everything away. SHA-256, SHA-1 and the size are computed on the way.
 */
import { concatBytes } from "../protocol/frames.ts";
import { toHex } from "../protocol/hex.ts";
import { KEY_FORMAT_VERSION } from "./keys.ts";

export const OBJECT_CONTENT_TYPE = "application/mercurial-cbor";
/**
 * 5 MiB parts, R2's minimum: the most a fill holds in memory (BENCHMARKS.md, "The cost of a
 * byte": hgedge's process grew 21 MiB over a 1 GiB fill with 5 MiB parts, 33 MiB over 256 MiB
 * with 8 MiB ones). 10 000 parts, R2's most, make 50 GB, far above FILL_MAX_BYTES.
 */
export const DEFAULT_PART_SIZE = 5 * 1024 * 1024;

export interface ObjectMetadata {
  size: number;
  sha256?: string;
  sha1?: string;
  command: string;
  createdAt: string;
  keyFormat: number;
}

export interface CommittedObject {
  name: string;
  size: number;
  sha256: string;
  sha1: string;
}

export class ObjectWriter {
  private readonly sha256 = new crypto.DigestStream("SHA-256");
  private readonly sha1 = new crypto.DigestStream("SHA-1");
  private readonly sha256Writer = this.sha256.getWriter();
  private readonly sha1Writer = this.sha1.getWriter();
  private buffered: Uint8Array[] = [];
  private bufferedLength = 0;
  private size = 0;
  private upload: R2MultipartUpload | undefined;
  private readonly parts: R2UploadedPart[] = [];
  private readonly createdAt = new Date().toISOString();
  private state: "open" | "committed" | "aborted" = "open";

  constructor(
    private readonly bucket: R2Bucket,
    readonly name: string,
    private readonly command: string,
    private readonly partSize = DEFAULT_PART_SIZE,
    /** What the content route will say the bytes are (clone bundles are not CBOR). */
    private readonly contentType = OBJECT_CONTENT_TYPE,
  ) {}

  get bytesWritten(): number {
    return this.size;
  }

  /** Adds bytes; uploads a part whenever a full one is buffered. */
  async write(bytes: Uint8Array): Promise<void> {
    if (this.state !== "open") throw new Error(`cannot write to a ${this.state} object`);
    if (bytes.length === 0) return;
    this.size += bytes.length;
    await Promise.all([this.sha256Writer.write(bytes), this.sha1Writer.write(bytes)]);
    this.buffered.push(bytes);
    this.bufferedLength += bytes.length;
    while (this.bufferedLength >= this.partSize) await this.uploadPart(this.takeChunks(this.partSize), this.partSize);
  }

  /** Makes the object visible; nothing of it was before. */
  async commit(): Promise<CommittedObject> {
    if (this.state !== "open") throw new Error(`cannot commit a ${this.state} object`);
    const [sha256, sha1] = await this.digests();
    const restLength = this.bufferedLength;
    const rest = this.takeChunks(restLength);
    if (this.upload) {
      if (restLength > 0) await this.uploadPart(rest, restLength);
      await this.upload.complete(this.parts);
    } else {
      await this.bucket.put(this.name, concatBytes(rest), {
        httpMetadata: { contentType: this.contentType },
        customMetadata: this.metadata({ sha256, sha1 }),
      });
    }
    this.state = "committed";
    return { name: this.name, size: this.size, sha256, sha1 };
  }

  /** Discards everything; safe to call in any state and more than once. */
  async abort(): Promise<void> {
    if (this.state !== "open") return;
    this.state = "aborted";
    this.buffered = [];
    this.bufferedLength = 0;
    // The digests reject once their streams are aborted; nobody wants them any more.
    this.sha256.digest.catch(() => undefined);
    this.sha1.digest.catch(() => undefined);
    await Promise.allSettled([this.sha256Writer.abort(), this.sha1Writer.abort()]);
    if (this.upload) await this.upload.abort();
  }

  /**
   * A multipart object's metadata is fixed when the upload starts, before its hashes are known:
   * it carries the command and creation time; its size is R2's own.
   */
  private metadata(hashes?: { sha256: string; sha1: string }): Record<string, string> {
    const metadata: Record<string, string> = {
      command: this.command,
      createdAt: this.createdAt,
      keyFormat: String(KEY_FORMAT_VERSION),
    };
    if (hashes) Object.assign(metadata, { size: String(this.size), ...hashes });
    return metadata;
  }

  /**
   * Uploads the buffered chunks as one part, streamed: the runtime reads them one by one, so no
   * second, contiguous copy of the part is made (a part is 5 MiB, and an isolate has 128 MB for
   * all its requests).
   */
  private async uploadPart(chunks: Uint8Array[], length: number): Promise<void> {
    this.upload ??= await this.bucket.createMultipartUpload(this.name, {
      httpMetadata: { contentType: this.contentType },
      customMetadata: this.metadata(),
    });
    const { readable, writable } = new FixedLengthStream(length);
    const writer = writable.getWriter();
    const written = (async () => {
      for (const chunk of chunks) await writer.write(chunk);
      await writer.close();
    })();
    // When the upload fails first, the writes wait for a reader that is gone: end them.
    written.catch(() => undefined);
    let part: R2UploadedPart;
    try {
      part = await this.upload.uploadPart(this.parts.length + 1, readable);
    } catch (error) {
      await writer.abort(error).catch(() => undefined);
      throw error;
    }
    await written;
    this.parts.push(part);
  }

  /** The first `size` buffered bytes as views of the buffered chunks (the last one split, not copied). */
  private takeChunks(size: number): Uint8Array[] {
    const taken: Uint8Array[] = [];
    let needed = size;
    while (needed > 0) {
      const chunk = this.buffered.shift() as Uint8Array;
      if (chunk.length <= needed) {
        taken.push(chunk);
        needed -= chunk.length;
      } else {
        taken.push(chunk.subarray(0, needed));
        this.buffered.unshift(chunk.subarray(needed));
        needed = 0;
      }
    }
    this.bufferedLength -= size;
    return taken;
  }

  private async digests(): Promise<[string, string]> {
    await Promise.all([this.sha256Writer.close(), this.sha1Writer.close()]);
    const [a, b] = await Promise.all([this.sha256.digest, this.sha1.digest]);
    return [toHex(a), toHex(b)];
  }
}

/** The metadata of a stored object, as written by ObjectWriter. */
export function readMetadata(object: R2Object): ObjectMetadata {
  const m = object.customMetadata ?? {};
  const metadata: ObjectMetadata = {
    size: object.size,
    command: m.command ?? "",
    createdAt: m.createdAt ?? object.uploaded.toISOString(),
    keyFormat: Number(m.keyFormat ?? 0),
  };
  if (m.sha256) metadata.sha256 = m.sha256;
  if (m.sha1) metadata.sha1 = m.sha1;
  return metadata;
}
