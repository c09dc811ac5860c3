/**
 * Deleting cached objects by name prefix (a repository, or one command of it), in pages: R2's
 * `list` returns at most 1000 keys a page and `delete` takes at most 1000 keys a call.
 */
const R2_PAGE = 1000;

export interface PurgeResult {
  deleted: number;
  /** Objects under the prefix remain (the cap was reached): call again. */
  more: boolean;
}

/**
 * Deletes up to `max` objects named `prefix<name>` where `<name>` holds no `/`: exactly one
 * level (R2's delimiter listing), so `team/filesdata/` never reaches `team/filesdata/x/…`, the
 * objects of another repository. `onDeleted` hears each page's names (e.g. to drop PoP-cache
 * copies) after R2 deleted them.
 */
export async function deleteByPrefix(
  bucket: R2Bucket,
  prefix: string,
  max: number,
  onDeleted: (names: string[]) => Promise<unknown> = async () => undefined,
): Promise<PurgeResult> {
  let deleted = 0;
  while (deleted < max) {
    // Always the first page: what was deleted is no longer listed.
    const page = await bucket.list({ prefix, delimiter: "/", limit: Math.min(R2_PAGE, max - deleted) });
    const names = page.objects.map((o) => o.key);
    if (names.length === 0) return { deleted, more: false };
    await bucket.delete(names);
    await onDeleted(names);
    deleted += names.length;
    if (!page.truncated) return { deleted, more: false };
  }
  return { deleted, more: await hasObjects(bucket, prefix) };
}

/**
 * Deletes up to `max` objects in all, one level under each of `prefixes` in turn. `more` is
 * true only when an object is really left under one of them: a purge that ends exactly at its
 * cap with nothing left says so.
 */
export async function deleteByPrefixes(
  bucket: R2Bucket,
  prefixes: string[],
  max: number,
  onDeleted?: (names: string[]) => Promise<unknown>,
): Promise<PurgeResult> {
  let deleted = 0;
  for (const [index, prefix] of prefixes.entries()) {
    if (deleted >= max) return { deleted, more: await anyHasObjects(bucket, prefixes.slice(index)) };
    const result = await deleteByPrefix(bucket, prefix, max - deleted, onDeleted);
    deleted += result.deleted;
    if (result.more) return { deleted, more: true };
  }
  return { deleted, more: false };
}

async function hasObjects(bucket: R2Bucket, prefix: string): Promise<boolean> {
  return (await bucket.list({ prefix, delimiter: "/", limit: 1 })).objects.length > 0;
}

async function anyHasObjects(bucket: R2Bucket, prefixes: string[]): Promise<boolean> {
  for (const prefix of prefixes) if (await hasObjects(bucket, prefix)) return true;
  return false;
}
