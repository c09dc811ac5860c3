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

export interface ManifestEntry {
  url: string;
  /** e.g. BUNDLESPEC=none-v2, REQUIRESNI=true. */
  attributes: Record<string, string>;
}

/**
 * One manifest line. `REQUIRESNI=true` belongs on https URLs served from shared addresses (a
 * CDN): clients without SNI filter such an entry out instead of failing the TLS handshake.
 */
export function manifestLine(entry: ManifestEntry): string {
  if (/\s/.test(entry.url) || entry.url === "") throw new Error(`a manifest URL cannot be empty or hold whitespace: ${JSON.stringify(entry.url)}`);
  const attributes = Object.entries(entry.attributes).map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
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

/** The manifest's entries, read as Mercurial reads them (for tests and diagnostics). */
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
