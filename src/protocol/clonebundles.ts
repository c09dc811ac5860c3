/**
 * The clone bundles manifest (`hg help -e clonebundles`; bundlecaches.parseclonebundlesmanifest):
 * what the v1 `clonebundles` and `clonebundles_manifest` commands answer. One entry per line,
 * `<URL> [<KEY>=<VALUE> ...]`, fields separated by whitespace, keys and values URL-quoted. The
 * client filters out entries it cannot use, sorts the rest by its preferences (stable: server
 * order breaks ties) and fetches the first; so entries listed first win.
 */

/** v1 commands whose answer is the manifest (`clonebundles_manifest` since Mercurial 6.6). */
export const MANIFEST_COMMANDS = ["clonebundles", "clonebundles_manifest"] as const;
/** The capability a client checks before it asks for the manifest at all. */
export const CLONEBUNDLES_CAPABILITY = "clonebundles";
/**
 * Advertised with a bundle: a client that sees `clonebundles_manifest` (7.x) asks that command,
 * else `clonebundles` (wireprotov1peer.clonebundles).
 */
export const CLONEBUNDLES_CAPABILITIES = [CLONEBUNDLES_CAPABILITY, "clonebundles_manifest"] as const;
/**
 * The command every origin since Mercurial 3.6 answers (the other is 6.6's): hgedge asks the
 * origin this one whichever the client asked, so a client that saw our `clonebundles_manifest`
 * is never sent to an origin that does not know it. Both need the same pull permission.
 */
export const ORIGIN_MANIFEST_COMMAND = CLONEBUNDLES_CAPABILITY;

/**
 * The bundle formats hgedge can make, by the name BUNDLE_FORMATS uses:
 * - `stream-v2`: the origin's own stream clone (`none-v2;stream=v2;requirements…`): revlog files
 *   copied as they are, ~6× faster to apply than a changegroup; only for clients that support
 *   the origin's store requirements (the others skip the entry before downloading it).
 * - `zstd-v2`, `gzip-v2`, `none-v2`: a changegroup 02 bundle (any client), compressed by the
 *   Worker's native zstd or zlib, or not at all.
 */
export const BUNDLE_FORMAT_NAMES = ["stream-v2", "zstd-v2", "gzip-v2", "none-v2"] as const;
export type BundleFormat = (typeof BUNDLE_FORMAT_NAMES)[number];
/** Best first: the stream bundle for clients that can apply it, zstd (the origin's own wire size) for the rest. */
export const DEFAULT_BUNDLE_FORMATS: readonly BundleFormat[] = ["stream-v2", "zstd-v2"];

export function isBundleFormat(name: string): name is BundleFormat {
  return (BUNDLE_FORMAT_NAMES as readonly string[]).includes(name);
}

/** The changegroup formats: made from one `getbundle` of the changesets. */
export type ChangegroupFormat = Exclude<BundleFormat, "stream-v2">;
export function isChangegroupFormat(format: BundleFormat): format is ChangegroupFormat {
  return format !== "stream-v2";
}

export interface ManifestEntry {
  url: string;
  /**
   * Attribute values as they are written in the manifest, i.e. already in its URL-quoted form:
   * the client unquotes each once. A BUNDLESPEC is written exactly as `hg debugbundle --spec`
   * prints it — `none-v2;stream=v2;requirements%3Dgeneraldelta%2C…` — so that after that one
   * unquoting the client's bundlespec parser reads `requirements=generaldelta,…` (quoting it
   * again would leave `requirements%3D…`, which the parser rejects: no "=").
   */
  attributes: Record<string, string>;
}

/**
 * One manifest line. `REQUIRESNI=true` belongs on https URLs served from shared addresses (a
 * CDN): clients without SNI filter such an entry out instead of failing the TLS handshake.
 */
export function manifestLine(entry: ManifestEntry): string {
  if (/\s/.test(entry.url) || entry.url === "") throw new Error(`a manifest URL cannot be empty or hold whitespace: ${JSON.stringify(entry.url)}`);
  const attributes = Object.entries(entry.attributes).map(([key, value]) => {
    if (!/^[A-Za-z0-9_]+$/.test(key) || /[\s\x00-\x1f\x7f]/.test(value) || value === "") {
      throw new Error(`a manifest attribute needs a plain key and a non-empty value without whitespace: ${JSON.stringify(key)}=${JSON.stringify(value)}`);
    }
    return `${key}=${value}`;
  });
  return [entry.url, ...attributes].join(" ");
}

/**
 * Our entries ahead of the origin's manifest, whose bytes follow unchanged. An entry line
 * always ends with a newline so that the origin's first line stays a line of its own.
 */
export function prependEntries(originManifest: Uint8Array, entries: readonly ManifestEntry[]): Uint8Array {
  const ours = new TextEncoder().encode(entries.map((entry) => `${manifestLine(entry)}\n`).join(""));
  const out = new Uint8Array(ours.length + originManifest.length);
  out.set(ours, 0);
  out.set(originManifest, ours.length);
  return out;
}

/** The manifest's entries with their attributes unquoted once, as Mercurial reads them (for tests and diagnostics). */
export function parseManifest(text: string): ManifestEntry[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim().split(/\s+/).filter(Boolean))
    .filter((fields) => fields.length > 0)
    .map(([url, ...rest]) => ({
      url: url as string,
      attributes: Object.fromEntries(
        rest.map((field) => {
          const eq = field.indexOf("=");
          return [decodeURIComponent(field.slice(0, eq)), decodeURIComponent(field.slice(eq + 1))];
        }),
      ),
    }));
}

/** Whether a manifest entry for `url` should say REQUIRESNI=true: https needs SNI on shared addresses. */
export function requiresSni(url: string): boolean {
  return url.startsWith("https:");
}
