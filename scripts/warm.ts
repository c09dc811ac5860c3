/**
 * `npm run warm -- <edge url> <repo path> [options]`
 *
 * Pre-warms hgedge's cache for one repository: sends through the edge the manifestdata and
 * filesdata requests a Mercurial 5.x wire-protocol-v2 clone sends — the same batches with the
 * same arguments, so the same cache keys — and reads every answer to the end, so that the first
 * real clone is answered from R2. Progress goes to standard error (a bar on a terminal, a line
 * every --interval seconds otherwise), the summary to standard output.
 *
 * Exit status: 0 every object warm; 1 some object failed or was not stored (run again);
 * 2 cannot warm (usage, edge unreachable, credentials needed, no v2, cache off);
 * 3 stopped by --max-requests with objects left; 130 interrupted. State is kept after every
 * object, so a re-run continues where the last one stopped.
 */
import { pathToFileURL } from "node:url";
import { MERCURIAL_SERVER_ORDER } from "../src/protocol/streams.ts";
import { CannotWarm } from "./warm/edge.ts";
import { formatSummary, warm, type WarmOptions, type WarmSummary } from "./warm/run.ts";
import { defaultStatePath } from "./warm/state.ts";
import "./zstd-fallback.ts";

const USAGE = `usage: npm run warm -- <edge url> <repo path> [options]

  <edge url>            the edge, e.g. https://hg.example.org
  <repo path>           the repository on it, as clients clone it (/ for a single repository)

  --header 'Name: value'   send this header with every request (repeatable), e.g. credentials:
                           --header 'Authorization: Basic dXNlcjpwYXNz'
  --concurrency N          objects warmed at once (default 2; keep it at or below the edge's
                           FILL_CONCURRENCY, or the edge skips storing some misses)
  --state FILE             where finished objects are recorded (default: under ~/.cache/hgedge/warm/);
                           a re-run checks each one (one request, headers only) and warms again
                           what the edge no longer has (after a purge or a new CACHE_VERSION)
  --fresh                  ignore what the state file says was done
  --max-requests N         send at most N cacheable requests, then stop (exit 3 if objects are left)
  --verify                 afterwards, ask for every object again and check it comes from the cache
  --encodings LIST         content encodings offered, comma-separated (default ${MERCURIAL_SERVER_ORDER.join(",")},
                           what a 5.x client offers)
  --interval SECONDS       seconds between progress lines when standard error is not a terminal (default 10)
  --json                   print the summary as JSON
`;

export const EXIT = { ok: 0, incomplete: 1, cannotWarm: 2, capped: 3, interrupted: 130 } as const;

interface Parsed {
  options: Omit<WarmOptions, "progress" | "signal">;
  json: boolean;
}

export function parseArgs(args: string[]): Parsed | string {
  const positional: string[] = [];
  const headers: [string, string][] = [];
  let concurrency = 2;
  let statePath: string | undefined;
  let fresh = false;
  let maxRequests: number | undefined;
  let verify = false;
  let encodings = [...MERCURIAL_SERVER_ORDER] as string[];
  let intervalMs = 10_000;
  let json = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new UsageError(`${arg} needs a value`);
      return v;
    };
    const count = (min: number) => {
      const raw = value();
      const n = Number(raw);
      if (!Number.isInteger(n) || n < min) throw new UsageError(`${arg} needs a whole number ≥ ${min}, not ${raw}`);
      return n;
    };
    try {
      switch (arg) {
        case "--header": {
          const raw = value();
          const colon = raw.indexOf(":");
          if (colon <= 0) throw new UsageError(`--header needs 'Name: value', not ${raw}`);
          headers.push([raw.slice(0, colon).trim(), raw.slice(colon + 1).trim()]);
          break;
        }
        case "--concurrency":
          concurrency = count(1);
          break;
        case "--state":
          statePath = value();
          break;
        case "--fresh":
          fresh = true;
          break;
        case "--max-requests":
          maxRequests = count(0);
          break;
        case "--verify":
          verify = true;
          break;
        case "--encodings":
          encodings = value().split(",").map((e) => e.trim()).filter(Boolean);
          if (!encodings.includes("identity")) encodings.push("identity");
          break;
        case "--interval":
          intervalMs = count(1) * 1000;
          break;
        case "--json":
          json = true;
          break;
        case "--help":
        case "-h":
          return "";
        default:
          if (arg.startsWith("--")) throw new UsageError(`unknown option ${arg}`);
          positional.push(arg);
      }
    } catch (error) {
      if (error instanceof UsageError) return error.message;
      throw error;
    }
  }
  if (positional.length !== 2) return "expected <edge url> and <repo path>";
  const repoUrl = joinRepoUrl(positional[0] as string, positional[1] as string);
  if (typeof repoUrl !== "string") return repoUrl.error;
  return {
    options: {
      repoUrl,
      headers,
      encodings,
      concurrency,
      statePath: statePath ?? defaultStatePath(repoUrl),
      fresh,
      ...(maxRequests !== undefined ? { maxRequests } : {}),
      verify,
      intervalMs,
    },
    json,
  };
}

class UsageError extends Error {}

/** `<edge>/<repo>`: the URL a client clones (the edge keys a repository by its path without trailing slash). */
export function joinRepoUrl(edge: string, repo: string): string | { error: string } {
  let url: URL;
  try {
    url = new URL(edge);
  } catch {
    return { error: `not a URL: ${edge}` };
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return { error: `the edge URL must be http or https: ${edge}` };
  if (url.search || url.hash) return { error: `the edge URL must have no query or fragment: ${edge}` };
  const base = url.href.replace(/\/+$/, "");
  const path = repo.replace(/^\/+|\/+$/g, "");
  return `${base}/${path}`;
}

export function exitStatus(summary: WarmSummary): number {
  if (summary.stopped === "interrupted") return EXIT.interrupted;
  if (summary.failed.length > 0 || summary.notStored > 0 || (summary.verified?.notCached ?? 0) > 0) return EXIT.incomplete;
  if (summary.stopped === "max-requests" && summary.remaining > 0) return EXIT.capped;
  return EXIT.ok;
}

export async function main(args: string[]): Promise<number> {
  const parsed = parseArgs(args);
  if (typeof parsed === "string") {
    process.stderr.write(parsed ? `warm: ${parsed}\n\n${USAGE}` : USAGE);
    return parsed ? EXIT.cannotWarm : EXIT.ok;
  }
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const summary = await warm({
      ...parsed.options,
      progress: {
        write: (text) => process.stderr.write(text),
        isTTY: Boolean(process.stderr.isTTY),
        ...(process.stderr.columns ? { columns: process.stderr.columns } : {}),
      },
      signal: abort.signal,
    });
    process.stdout.write(parsed.json ? `${JSON.stringify(summary)}\n` : formatSummary(summary));
    return exitStatus(summary);
  } catch (error) {
    if (abort.signal.aborted) {
      process.stderr.write("warm: interrupted before the plan was made; nothing recorded\n");
      return EXIT.interrupted;
    }
    if (error instanceof CannotWarm) {
      process.stderr.write(`warm: ${error.message}\n`);
      return EXIT.cannotWarm;
    }
    throw error;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

// Imported by tests for its helpers; run as a script otherwise.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`warm: unexpected failure: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}

