/**
 * `npm run deploy [-- wrangler deploy arguments]`, and `npm run build` (the same with --dry-run):
 * `wrangler deploy`, once it is clear that the deployed Worker will know its origin.
 *
 * wrangler.toml ships no ORIGIN_URL (a local default there would silently be deployed, pointing
 * at the Worker's own localhost). A Worker without one answers every request with a 500 naming
 * ORIGIN_URL; this catches that before the deploy: ORIGIN_URL must come from wrangler.toml's
 * vars or from `--var ORIGIN_URL:…`, or `keep_vars = true` must keep the one set in the
 * dashboard. A dry run (the build) only warns.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Why the deployed Worker would have no ORIGIN_URL, or undefined when it will have one. */
export function missingOriginUrl(wranglerToml: string, args: string[]): string | undefined {
  const lines = wranglerToml.split("\n").map((line) => line.replace(/#.*$/, "").trim());
  if (lines.some((line) => /^ORIGIN_URL\s*=\s*["']\S+["']$/.test(line) || /^keep_vars\s*=\s*true$/.test(line))) return undefined;
  if (args.some((arg, i) => /^ORIGIN_URL[:=]\S/.test(arg) && (args[i - 1] === "--var" || args[i - 1] === "--vars"))) return undefined;
  if (args.some((arg) => /^--var=ORIGIN_URL[:=]\S/.test(arg))) return undefined;
  return (
    "ORIGIN_URL is not set for this deploy: the Worker would answer every request with " +
    '"hgedge: misconfigured: ORIGIN_URL: is not set". Add ORIGIN_URL = "https://hg.example.org/" ' +
    "to wrangler.toml [vars], pass --var ORIGIN_URL:https://hg.example.org/, or set it in the " +
    "dashboard and add keep_vars = true to wrangler.toml."
  );
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const dryRun = args.includes("--dry-run");
  const problem = missingOriginUrl(readFileSync(path.join(projectRoot, "wrangler.toml"), "utf8"), args);
  if (problem && !dryRun) {
    console.error(`hgedge: not deploying. ${problem}`);
    process.exit(1);
  }
  if (problem) console.error(`hgedge: note for the deploy: ${problem}`);
  const child = spawn(path.join(projectRoot, "node_modules/.bin/wrangler"), ["deploy", ...args], {
    cwd: projectRoot,
    stdio: "inherit",
    env: { WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", ...process.env },
  });
  child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
