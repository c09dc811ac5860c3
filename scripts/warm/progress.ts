/**
 * Progress of a warm-up: objects (cacheable answers, one per batch) and their bytes, done and
 * in total, with a rate and an ETA.
 *
 * What "total" means: the number of objects is exact once changesetdata has been read (the
 * batches follow from it). Their bytes are not known in advance — an object's size is only
 * known once it has been read (a miss) or announced (a redirect) — so the byte total is an
 * estimate, marked `~`: objects done count with their size, an object being read counts as its
 * bytes so far divided by the share of its items read (from the answer's header), an object not
 * started counts as the mean of the done objects of the same command. Until each command has
 * one object done or under way, the total is unknown (`?`) and so is the ETA.
 */
import { CborValidator, SansIoDecoder, mapGet, type CborValue } from "../../src/protocol/cbor.ts";

/** How much of an answer's items have been read, from its header and a count of the values after it. */
export class ItemProgress {
  private readonly validator = new CborValidator();
  private prefix: Uint8Array[] = [];
  private prefixLength = 0;
  /** Top-level values the answer will hold after its header. */
  private expected: number | undefined;

  /** The header is a small map; never keep more than this looking for it. */
  private static readonly HEADER_LIMIT = 64 * 1024;

  constructor(private readonly command: string) {}

  push(bytes: Uint8Array): void {
    if (this.expected === undefined && this.prefixLength < ItemProgress.HEADER_LIMIT) {
      const kept = bytes.slice(0, ItemProgress.HEADER_LIMIT - this.prefixLength);
      this.prefix.push(kept);
      this.prefixLength += kept.length;
    }
    this.validator.push(bytes);
    if (this.expected === undefined && this.validator.values >= 1 && this.prefix.length > 0) {
      this.expected = this.expectedValues(this.header());
      this.prefix = [];
    }
  }

  /** Share of the answer read, 0..1, or undefined while the header is not known. */
  fraction(): number | undefined {
    if (this.expected === undefined) return undefined;
    if (this.expected === 0) return 1;
    return Math.min(1, (this.validator.values - 1) / this.expected);
  }

  private header(): CborValue | undefined {
    const decoder = new SansIoDecoder();
    const joined = new Uint8Array(this.prefixLength);
    let at = 0;
    for (const piece of this.prefix) {
      joined.set(piece, at);
      at += piece.length;
    }
    decoder.decode(joined);
    return decoder.takeAvailable()[0];
  }

  /**
   * manifestdata: per manifest a descriptor map and its one following value (revision or
   * delta). filesdata: per path a header map, per revision a map and one following value.
   */
  private expectedValues(header: CborValue | undefined): number | undefined {
    if (!(header instanceof Map)) return undefined;
    const number = (key: string) => {
      const v = mapGet(header, key);
      return typeof v === "number" ? v : typeof v === "bigint" ? Number(v) : 0;
    };
    const items = number("totalitems");
    return this.command === "filesdata" ? number("totalpaths") + 2 * items : 2 * items;
  }
}

/** `cancelled`: stopped by an interrupt, so still to do. */
/** `still-cached`: done by an earlier run, and the edge still has it (checked). */
export type Outcome = "hit" | "miss" | "not-stored" | "failed" | "cancelled" | "still-cached";

interface Flight {
  command: string;
  bytes: number;
  fraction?: number;
}

export interface Snapshot {
  objectsDone: number;
  objectsTotal: number;
  /** Of objectsDone: recorded as done by an earlier run. */
  resumed: number;
  hits: number;
  misses: number;
  notStored: number;
  failed: number;
  bytesDone: number;
  /** Estimated total bytes; undefined while unknown. */
  bytesTotal: number | undefined;
  /** Object bytes per second in this run. */
  rate: number;
  /** Seconds left; undefined while unknown. */
  eta: number | undefined;
  elapsed: number;
}

export class Progress {
  private readonly done = new Map<string, { count: number; bytes: number }>();
  private readonly pending = new Map<string, number>();
  private readonly flights = new Map<string, Flight>();
  private readonly counts = { resumed: 0, hits: 0, misses: 0, notStored: 0, failed: 0 };
  private bytesThisRun = 0;
  private resumedBytes = 0;

  constructor(
    commands: readonly string[],
    private readonly startedAt = Date.now(),
  ) {
    for (const command of commands) this.pending.set(command, (this.pending.get(command) ?? 0) + 1);
  }

  /** An object finished by an earlier run (its size as recorded then). */
  resumed(command: string, bytes: number): void {
    this.leavePending(command);
    this.addDone(command, bytes);
    this.counts.resumed++;
    this.resumedBytes += bytes;
  }

  start(id: string, command: string): void {
    this.leavePending(command);
    this.flights.set(id, { command, bytes: 0 });
  }

  update(id: string, bytes: number, fraction?: number): void {
    const flight = this.flights.get(id);
    if (!flight) return;
    this.bytesThisRun += bytes - flight.bytes;
    flight.bytes = bytes;
    if (fraction !== undefined) flight.fraction = fraction;
  }

  finish(id: string, outcome: Outcome, bytes: number): void {
    const flight = this.flights.get(id);
    if (!flight) return;
    this.update(id, bytes);
    this.flights.delete(id);
    if (outcome === "cancelled") {
      this.bytesThisRun -= flight.bytes;
      this.pending.set(flight.command, (this.pending.get(flight.command) ?? 0) + 1);
      return;
    }
    if (outcome === "failed") {
      this.counts.failed++;
      return;
    }
    if (outcome === "still-cached") {
      this.bytesThisRun -= flight.bytes;
      this.addDone(flight.command, bytes);
      this.counts.resumed++;
      this.resumedBytes += bytes;
      return;
    }
    this.addDone(flight.command, bytes);
    if (outcome === "hit") this.counts.hits++;
    else if (outcome === "miss") this.counts.misses++;
    else this.counts.notStored++;
  }

  snapshot(now = Date.now()): Snapshot {
    const elapsed = Math.max(0.001, (now - this.startedAt) / 1000);
    let objectsDone = 0;
    let bytesDone = 0;
    for (const { count, bytes } of this.done.values()) {
      objectsDone += count;
      bytesDone += bytes;
    }
    const inFlight = [...this.flights.values()].reduce((n, f) => n + f.bytes, 0);
    const pendingCount = [...this.pending.values()].reduce((n, c) => n + c, 0);
    const bytesTotal = this.estimateTotal(bytesDone);
    const rate = this.bytesThisRun / elapsed;
    const left = bytesTotal === undefined ? undefined : Math.max(0, bytesTotal - bytesDone - inFlight);
    const eta = left === undefined ? undefined : left === 0 ? 0 : rate > 0 ? left / rate : undefined;
    return {
      objectsDone,
      objectsTotal: objectsDone + this.flights.size + pendingCount,
      ...this.counts,
      bytesDone: bytesDone + inFlight,
      bytesTotal,
      rate,
      eta,
      elapsed,
    };
  }

  private estimateTotal(bytesDone: number): number | undefined {
    let total = bytesDone;
    for (const flight of this.flights.values()) {
      const byShare = flight.fraction !== undefined && flight.fraction >= 0.02 ? flight.bytes / flight.fraction : undefined;
      const estimate = byShare ?? this.mean(flight.command);
      if (estimate === undefined) return undefined;
      total += Math.max(flight.bytes, estimate);
    }
    for (const [command, count] of this.pending) {
      if (count === 0) continue;
      const mean = this.mean(command) ?? this.meanInFlight(command);
      if (mean === undefined) return undefined;
      total += count * mean;
    }
    return total;
  }

  private mean(command: string): number | undefined {
    const done = this.done.get(command);
    return done && done.count > 0 ? done.bytes / done.count : undefined;
  }

  private meanInFlight(command: string): number | undefined {
    const estimates = [...this.flights.values()]
      .filter((f) => f.command === command && f.fraction !== undefined && f.fraction >= 0.02)
      .map((f) => f.bytes / (f.fraction as number));
    return estimates.length > 0 ? estimates.reduce((a, b) => a + b, 0) / estimates.length : undefined;
  }

  private addDone(command: string, bytes: number): void {
    const done = this.done.get(command) ?? { count: 0, bytes: 0 };
    done.count++;
    done.bytes += bytes;
    this.done.set(command, done);
  }

  private leavePending(command: string): void {
    this.pending.set(command, Math.max(0, (this.pending.get(command) ?? 0) - 1));
  }
}

// --- rendering -------------------------------------------------------------------------------

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function parts(s: Snapshot): string[] {
  const total = s.bytesTotal === undefined ? "?" : `~${formatBytes(s.bytesTotal)}`;
  const tally = [`${s.hits} hit`, `${s.misses} miss`];
  if (s.resumed > 0) tally.push(`${s.resumed} done earlier`);
  if (s.notStored > 0) tally.push(`${s.notStored} not stored`);
  if (s.failed > 0) tally.push(`${s.failed} failed`);
  return [
    `${s.objectsDone}/${s.objectsTotal} objects`,
    `${formatBytes(s.bytesDone)} of ${total}`,
    `${formatBytes(s.rate)}/s`,
    `ETA ${s.eta === undefined ? "?" : formatDuration(s.eta)}`,
    tally.join(", "),
  ];
}

/** One line for logs (standard error not a terminal). */
export function progressLine(s: Snapshot): string {
  return `warm: ${parts(s).join(", ")}`;
}

/** A bar for a terminal, fitted to `columns`. */
export function progressBar(s: Snapshot, columns = 100): string {
  const share =
    s.bytesTotal !== undefined && s.bytesTotal > 0
      ? Math.min(1, s.bytesDone / s.bytesTotal)
      : s.objectsTotal > 0
        ? s.objectsDone / s.objectsTotal
        : 1;
  const text = parts(s).join(" · ");
  const width = Math.max(10, Math.min(30, columns - text.length - 4));
  const filled = Math.round(share * width);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${text}`.slice(0, Math.max(20, columns - 1));
}
