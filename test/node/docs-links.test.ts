/**
 * The project's documents stand on their own: every link in README.md, BENCHMARKS.md and docs/
 * resolves to a file (and heading) inside the repository, and none sends the reader outside it.
 */
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { OUTSIDE_NAMES, anchorsOf, checkDocuments, defaultDocuments, linksOf } from "../../scripts/check-links.ts";

describe("documentation links", () => {
  it("README.md, BENCHMARKS.md and docs/ link only to what the repository has", () => {
    const documents = defaultDocuments();
    expect(documents.map((file) => path.basename(file))).toEqual(expect.arrayContaining(["README.md", "BENCHMARKS.md", "architecture.md", "operations.md", "protocol.md"]));
    expect(checkDocuments(documents)).toEqual([]);
  });

  it("names headings as GitHub does, and skips code", () => {
    const text = "# Stock 5.x origins and removed files\n## Settings: `.dev.vars`\n## Settings: `.dev.vars`\n```\n# not a heading [x](nowhere.md)\n```\nSee [a](b.md#c) and `[d](e.md)`.\n";
    expect([...anchorsOf(text)]).toEqual(["stock-5x-origins-and-removed-files", "settings-devvars", "settings-devvars-1"]);
    expect(linksOf(text)).toEqual(["b.md#c"]);
  });

  it("reports a missing file, a missing heading, a link out and a folder beside the project", async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), "hgedge-links-"));
    try {
      await mkdir(path.join(root, "docs"));
      await writeFile(path.join(root, "docs", "a.md"), "# Here\n");
      const readme = path.join(root, "README.md");
      await writeFile(readme, `[ok](docs/a.md#here) [gone](docs/b.md) [anchor](docs/a.md#there) [web](https://example.org/) [up](../x.md)\nsee ${OUTSIDE_NAMES[0]}/notes\n`);
      expect(checkDocuments([readme], root)).toEqual([
        `README.md: mentions ${OUTSIDE_NAMES[0]}, outside the repository`,
        "README.md: docs/b.md: no such file",
        "README.md: docs/a.md#there: no heading #there in docs/a.md",
        "README.md: https://example.org/: links outside the repository",
        "README.md: ../x.md: leaves the repository",
      ]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
