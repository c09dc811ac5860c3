/** What an isolate remembers of the origin's filesdata failure on removed files (retry.ts). */

/**
 * Requests known to hit the bug, and how often this isolate retried or went straight to the
 * working form (logs carry every event too). Entries are the SHA-256 of origin, repository and
 * arguments, so that each costs ~100 bytes whatever the request's size (10 000: about 1 MB).
 */
export class RetryMemory {
  static readonly MAX_REMEMBERED = 10_000;
  private readonly known = new Set<string>();
  retries = 0;
  direct = 0;

  has(id: string): boolean {
    return this.known.has(id);
  }

  remember(id: string): void {
    if (this.known.size >= RetryMemory.MAX_REMEMBERED) this.known.clear();
    this.known.add(id);
  }
}
