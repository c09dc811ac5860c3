/**
 * What a warm-up finished, kept in a JSON file so that a re-run skips it.
 *
 * An object is named by a hash of its command and exact arguments — the same material the
 * edge's cache key is made of — so a re-run recognises a batch whatever else changed: when new
 * changesets arrive, the batches before the last one keep their nodes and are still skipped.
 * An object is recorded only once its answer was read to the end and the edge did not say it
 * skipped storing it. The file is rewritten whole after each object (write, then rename), so an
 * interrupted run leaves the previous complete file.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { bytes, cborMap, encode, type CborMap } from "../../src/protocol/cbor.ts";
import { CannotWarm } from "./edge.ts";

const FORMAT = 1;

export interface DoneEntry {
  command: string;
  batch: number;
  /** Object bytes (what the cache holds). */
  bytes: number;
  /** How the edge answered: REDIRECT, HIT or MISS. */
  cache: string;
  /** ISO time. */
  at: string;
}

interface StateFile {
  format: number;
  repoUrl: string;
  done: Record<string, DoneEntry>;
}

/** The identity of a cacheable request: SHA-256 of {command, args} in Mercurial's canonical CBOR. */
export function requestIdentity(command: string, args: CborMap): string {
  return createHash("sha256")
    .update(encode(cborMap({ command: bytes(command), args })))
    .digest("hex");
}

/** Where state goes by default: the user's cache directory, one file per repository URL. */
export function defaultStatePath(repoUrl: string): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  const url = new URL(repoUrl);
  const slug = `${url.host}${url.pathname}`.replace(/[^A-Za-z0-9.-]+/g, "_").replace(/_+$/, "");
  const hash = createHash("sha256").update(repoUrl).digest("hex").slice(0, 12);
  return path.join(base, "hgedge", "warm", `${slug}-${hash}.json`);
}

export class WarmState {
  private constructor(
    readonly file: string,
    private readonly data: StateFile,
  ) {}

  /** Reads `file` (a missing file is an empty state); `fresh` ignores what it holds. */
  static load(file: string, repoUrl: string, fresh: boolean): WarmState {
    let text: string | undefined;
    try {
      text = readFileSync(file, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw new CannotWarm(`cannot read the state file ${file}: ${String(error)}`);
    }
    if (text === undefined || fresh) return new WarmState(file, { format: FORMAT, repoUrl, done: {} });
    let data: StateFile;
    try {
      data = JSON.parse(text) as StateFile;
    } catch {
      throw new CannotWarm(`the state file ${file} is not JSON: remove it, or pass --fresh`);
    }
    if (data.format !== FORMAT || typeof data.done !== "object") {
      throw new CannotWarm(`the state file ${file} is not a warm-up state of this version: remove it, or pass --fresh`);
    }
    if (data.repoUrl !== repoUrl) {
      throw new CannotWarm(`the state file ${file} belongs to ${data.repoUrl}, not ${repoUrl}: pass another --state, or --fresh`);
    }
    return new WarmState(file, data);
  }

  get(id: string): DoneEntry | undefined {
    return this.data.done[id];
  }

  get size(): number {
    return Object.keys(this.data.done).length;
  }

  record(id: string, entry: DoneEntry): void {
    this.data.done[id] = entry;
    this.save();
  }

  forget(id: string): void {
    if (!(id in this.data.done)) return;
    delete this.data.done[id];
    this.save();
  }

  save(): void {
    mkdirSync(path.dirname(this.file), { recursive: true });
    const temporary = `${this.file}.${process.pid}.tmp`;
    writeFileSync(temporary, `${JSON.stringify(this.data, null, 1)}\n`);
    renameSync(temporary, this.file);
  }
}
