/**
 * Differential fuzzing of hgedge's canonical request target (src/protocol/target.ts) against
 * Mercurial 5.6.1's own hgweb routing (scripts/interop/hgweb_target.py, run with
 * .tools/bin/hg-5.6.1's Python): for generated paths and queries, whenever Mercurial would run a
 * command — on the target hgedge forwards, or on the raw one — it must be exactly the command,
 * repository and permission hgedge decided on; otherwise hgedge must refuse the request.
 *
 * Deployments: one repository at the root (`hg serve -R`), an hgwebdir serving the repository
 * hgedge names, and an hgwebdir with other repositories. A few hundred seeded cases in
 * `npm test` (500); `npm run fuzz` runs 50 000 (HGEDGE_TARGET_FUZZ_RUNS, HGEDGE_FUZZ_SEED change them).
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalTarget, type CanonicalTarget } from "../../src/protocol/target.ts";
import { INSTALL_HINT, hg56Path, projectRoot } from "../../harness/mercurial.ts";

const RUNS = Number(process.env.HGEDGE_TARGET_FUZZ_RUNS ?? (process.env.HGEDGE_FUZZ_RUNS ? 50_000 : 500));
const SEED = Number(process.env.HGEDGE_FUZZ_SEED ?? 20261206);
const ORACLE = resolve(projectRoot, "scripts/interop/hgweb_target.py");

/** Mercurial 5.6.1's v2 commands (wireprotov2server.COMMANDS) and the extra one hgweb routes. */
const V2_COMMANDS = new Set(["branchmap", "capabilities", "changesetdata", "filedata", "filesdata", "heads", "known", "listkeys", "lookup", "manifestdata", "pushkey", "rawstorefiledata", "multirequest"]);
/** v1 commands hgedge knows that 5.6.1 does not (6.x added it). */
const LATER_V1_COMMANDS = new Set(["clonebundles_manifest"]);

interface View {
  protocol: "v2" | "v1" | "other" | "error";
  repo?: string;
  command?: string;
  permission?: string;
}

/** The Python and PYTHONPATH the hg-5.6.1 wrapper runs Mercurial with. */
function oracleCommand(): { python: string; pythonPath: string } | undefined {
  const wrapper = hg56Path();
  if (!wrapper) return undefined;
  const script = readFileSync(wrapper, "utf8");
  const pythonPath = /^export PYTHONPATH=(.+)$/m.exec(script)?.[1];
  const python = /^exec (\S+) /m.exec(script)?.[1];
  return pythonPath && python ? { python, pythonPath } : undefined;
}

/** Asks hgweb about every case in one process; answers in order. */
async function askHgweb(cases: { target: string; repos: string[] }[]): Promise<View[]> {
  const command = oracleCommand();
  if (!command) throw new Error(`Mercurial 5.6.1 is not installed: ${INSTALL_HINT}`);
  const child = spawn(command.python, [ORACLE], { env: { ...process.env, PYTHONPATH: command.pythonPath, HGRCPATH: "" }, stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  const answers: View[] = [];
  const lines = createInterface({ input: child.stdout });
  const done = new Promise<void>((resolveDone, reject) => {
    lines.on("line", (line) => answers.push(JSON.parse(line) as View));
    child.on("close", (code) => (code === 0 ? resolveDone() : reject(new Error(`hgweb oracle exited ${code}: ${stderr}`))));
  });
  child.stdin.end(cases.map((c) => JSON.stringify(c)).join("\n") + "\n");
  await done;
  if (answers.length !== cases.length) throw new Error(`hgweb oracle answered ${answers.length} of ${cases.length}: ${stderr}`);
  return answers;
}

// ---------------------------------------------------------------------------------------------
// Generated request targets: Mercurial's words, hgedge's traps, percent-encodings of all kinds.

const WORDS = ["api", "exp-http-v2-0003", "exp-http-v2-0002", "ro", "rw", "pushkey", "heads", "manifestdata", "filesdata", "capabilities", "multirequest", "debugreflect", "team", "project", "repo", "a b", "index", "static", ".hg", ".hgedge", ".", "..", "", "x"];
const CHARS = ["a", "b", "/", "\\", "%", "?", "#", "+", " ", "&", "=", ";", ":", "@", ".", "~", "é", "\u0000", "\n", "ÿ"];

const segment = fc.oneof(fc.constantFrom(...WORDS), fc.array(fc.constantFrom(...CHARS), { maxLength: 4 }).map((chars) => chars.join("")));

/** Characters a client may leave unencoded in a path segment (RFC 3986 pchar). */
const PCHAR = /[A-Za-z0-9\-._~!$&'()*+,;=:@]/;

/**
 * A segment as a client might write it: `raw` (as is: the URL parser encodes what it must),
 * `plain` (only what must be encoded), `some`/`lower` (also some safe characters, upper- or
 * lower-case hex), `all`, or `double` (some characters encoded twice).
 */
const spelled = fc.tuple(segment, fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }), fc.constantFrom("raw", "plain", "some", "lower", "all", "double")).map(([text, picks, how]) => {
  if (how === "raw") return text;
  return [...new TextEncoder().encode(text)]
    .map((byte, i) => {
      const char = String.fromCharCode(byte);
      const hex = byte.toString(16).padStart(2, "0");
      const picked = picks[i % 8] as boolean;
      if (how === "double" && picked) return `%25${hex.toUpperCase()}`;
      if (how === "all" || !PCHAR.test(char) || (picked && (how === "some" || how === "lower"))) return how === "lower" ? `%${hex}` : `%${hex.toUpperCase()}`;
      return char;
    })
    .join("");
});

const separator = fc.constantFrom("/", "/", "/", "//", "%2F", "%5C");

const joined = (lead: string, parts: [string, string][], trailing: boolean) => {
  const text = lead + parts.map(([s, sep], i) => (i === parts.length - 1 ? s : s + sep)).join("");
  return trailing ? `${text}/` : text;
};

/** Any sequence of segments and separators. */
const loosePath = fc.tuple(separator, fc.array(fc.tuple(spelled, separator), { maxLength: 7 }), fc.boolean()).map(([lead, parts, trailing]) => joined(lead, parts, trailing));

/** A repository path, then perhaps the v2 API's segments: the shape of real commands, spelled in every way. */
const shapedPath = fc
  .tuple(
    fc.constantFrom("/", "/", "//"),
    fc.array(fc.constantFrom("team", "project", "repo", "a b", "api", "x"), { maxLength: 3 }),
    fc.option(fc.tuple(fc.constantFrom("api", "api", "ap%69"), fc.constantFrom("exp-http-v2-0003", "exp-http-v2-0003", "exp-http-v2-0002"), fc.constantFrom("ro", "rw", "r%6F"), fc.constantFrom("pushkey", "heads", "manifestdata", "multirequest", "pushke%79", "lookup")), { nil: undefined }),
    fc.option(spelled, { nil: undefined }),
    fc.array(fc.constantFrom("/", "/", "/", "/", "//", "%2F"), { minLength: 8, maxLength: 8 }),
    fc.boolean(),
  )
  .map(([lead, repo, api, extra, seps, trailing]) => {
    const segments = [...repo, ...(api ?? []), ...(extra === undefined ? [] : [extra])];
    return joined(lead, segments.map((s, i) => [s, seps[i] as string]), trailing);
  });

const path = fc.oneof(loosePath, shapedPath, shapedPath);

const V1 = ["capabilities", "heads", "unbundle", "pushkey", "getbundle", "batch", "changelog", "file", "clonebundles", "stream_out", "lookup"];
const pair = fc.oneof(
  fc.tuple(fc.constantFrom("cmd", "c%6Dd", "CMD", "cmd%20", "cm+d", "%63md"), fc.constantFrom(...V1, "un%62undle", "heads+", "", "%zz")).map(([k, v]) => `${k}=${v}`),
  fc.constantFrom("cmd", "style=raw", "a=%zz", "x=1", "", "cmd=heads;cmd=unbundle", "%00=1"),
);
const query = fc.oneof(fc.constant(""), fc.array(pair, { minLength: 1, maxLength: 3 }).map((pairs) => `?${pairs.join("&")}`));

const OTHER_REPOS = [["team"], ["team/project"], ["team", "team/project"], ["repo"], ["a b"], ["api"]];

// ---------------------------------------------------------------------------------------------

/** hgedge's view, in the oracle's terms; v2 commands 5.6.1 does not know are pages to it. */
function hgedgeView(target: CanonicalTarget): View {
  if (target.protocol === "other") return { protocol: "other" };
  if (target.protocol === "v2" && !V2_COMMANDS.has(target.command as string)) return { protocol: "other" };
  if (target.protocol === "v1" && LATER_V1_COMMANDS.has(target.command as string)) return { protocol: "other" };
  return { protocol: target.protocol, repo: target.repo as string, command: target.command as string, permission: target.permission as string };
}

const runs = (view: View) => view.protocol === "v1" || view.protocol === "v2";

describe("hgedge's canonical target against hgweb's own routing (Mercurial 5.6.1)", () => {
  it(`agrees or refuses, ${RUNS} seeded cases (seed ${SEED})`, async () => {
    const raws = fc.sample(fc.tuple(path, query, fc.constantFrom(...OTHER_REPOS)), { numRuns: RUNS, seed: SEED });
    const checks: { raw: string; ours: View; repos: string[]; sent: string; exact: boolean }[] = [];
    let refused = 0;
    for (const [rawPath, rawQuery, otherRepos] of raws) {
      let url: URL;
      try {
        url = new URL(`http://edge.test${rawPath}${rawQuery}`);
      } catch {
        continue; // not a URL the runtime would hand us
      }
      const verdict = canonicalTarget(url.pathname, url.search);
      if (!verdict.ok) {
        refused += 1;
        continue;
      }
      const { target } = verdict;
      const ours = hgedgeView(target);
      const raw = `${url.pathname}${url.search}`;
      const forwarded = `${target.path}${target.search}`;
      const own = !runs(ours) || ours.repo === "/" ? [""] : [(ours.repo as string).slice(1)];
      // Served where hgedge says: Mercurial must run exactly that (or nothing, if hgedge says nothing runs).
      checks.push({ raw, ours, repos: own, sent: forwarded, exact: true });
      // Anywhere else, on the forwarded or the raw target: Mercurial runs that or nothing.
      for (const repos of [[""], otherRepos]) {
        checks.push({ raw, ours, repos, sent: forwarded, exact: false });
        checks.push({ raw, ours, repos, sent: raw, exact: false });
      }
    }
    const answers = await askHgweb(checks.map((c) => ({ target: c.sent, repos: c.repos })));
    const failures: string[] = [];
    checks.forEach((check, i) => {
      const hgweb = answers[i] as View;
      const expected = check.exact && runs(check.ours) && !hgwebdirStatic(check.sent, check.repos) ? check.ours : undefined;
      const agrees = expected ? sameView(hgweb, expected) : !runs(hgweb) || sameView(hgweb, check.ours);
      if (!agrees && failures.length < 10) {
        failures.push(`${JSON.stringify(check.raw)} sent as ${JSON.stringify(check.sent)} to ${JSON.stringify(check.repos)}: hgweb ${JSON.stringify(hgweb)}, hgedge ${JSON.stringify(check.ours)}`);
      }
    });
    console.log(`target fuzz: ${raws.length} cases, ${refused} refused by hgedge, ${checks.length} hgweb readings (${answers.filter(runs).length} running a command), seed ${SEED}`);
    expect(failures, `HGEDGE_FUZZ_SEED=${SEED}`).toEqual([]);
    // The generator reaches both sides: commands hgweb runs, and refusals.
    expect(answers.filter(runs).length).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
  });
});

/**
 * hgwebdir serves static files for any path under `static/` and any query with a `static`
 * parameter, before it looks for a repository: there nothing runs, whatever hgedge reads.
 */
function hgwebdirStatic(sent: string, repos: string[]): boolean {
  if (repos.length === 1 && repos[0] === "") return false;
  const url = new URL(`http://origin.test${sent}`);
  return url.pathname.startsWith("/static/") || url.search.split(/[?&]/).some((pair) => decodeURIComponent(pair.split("=")[0] ?? "") === "static");
}

function sameView(a: View, b: View): boolean {
  return a.protocol === b.protocol && a.repo === b.repo && a.command === b.command && a.permission === b.permission;
}
