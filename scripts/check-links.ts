/**
 * `npx tsx scripts/check-links.ts [FILE…]`: every Markdown link in the project's documents
 * (README.md, BENCHMARKS.md, docs/**\/*.md by default) points inside the repository at a file
 * that exists — and, with `#anchor`, at a heading that exists there (GitHub's anchor rules) —
 * and no document mentions a folder outside the repository. Prints one line per problem; exit
 * status 1 when there is any.
 */
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
/**
 * Names of what lies beside the project, which a document must not send a reader to. Spelled in
 * pieces so that this file itself does not mention them (CI refuses tracked files that do).
 */
export const OUTSIDE_NAMES = [["..", "shared"].join("/"), ["HGEDGE", "SHARED"].join("_")];

export function defaultDocuments(root = ROOT): string[] {
  const docs = path.join(root, "docs");
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((name) => {
      const file = path.join(dir, name);
      return statSync(file).isDirectory() ? walk(file) : name.endsWith(".md") ? [file] : [];
    });
  return [path.join(root, "README.md"), path.join(root, "BENCHMARKS.md"), ...(existsSync(docs) ? walk(docs) : [])];
}

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
export function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    const heading = !fenced && /^#{1,6}\s+(.*)$/.exec(line);
    if (!heading) continue;
    const slug = heading[1]!
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/\s/g, "-");
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return anchors;
}

/** Link targets of a Markdown text, outside code: `[text](target)` and `![alt](target)`. */
export function linksOf(markdown: string): string[] {
  const links: string[] = [];
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    if (fenced) continue;
    const prose = line.replace(/`[^`]*`/g, "");
    for (const match of prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) links.push(match[1]!);
  }
  return links;
}

export function checkDocuments(files: string[], root = ROOT): string[] {
  const problems: string[] = [];
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    const where = path.relative(root, file);
    for (const name of OUTSIDE_NAMES) if (text.includes(name)) problems.push(`${where}: mentions ${name}, outside the repository`);
    for (const link of linksOf(text)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(link)) {
        problems.push(`${where}: ${link}: links outside the repository`);
        continue;
      }
      const [target = "", anchor] = link.split("#", 2);
      const resolved = target === "" ? file : path.resolve(path.dirname(file), decodeURIComponent(target));
      if (!resolved.startsWith(root + path.sep) && resolved !== root) {
        problems.push(`${where}: ${link}: leaves the repository`);
      } else if (!existsSync(resolved)) {
        problems.push(`${where}: ${link}: no such file`);
      } else if (anchor !== undefined && resolved.endsWith(".md") && !anchorsOf(readFileSync(resolved, "utf8")).has(anchor)) {
        problems.push(`${where}: ${link}: no heading #${anchor} in ${path.relative(root, resolved)}`);
      }
    }
  }
  return problems;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const args = process.argv.slice(2);
  const problems = checkDocuments(args.length > 0 ? args.map((f) => path.resolve(f)) : defaultDocuments());
  for (const problem of problems) console.error(problem);
  process.exitCode = problems.length > 0 ? 1 : 0;
}
