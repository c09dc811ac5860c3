/**
 * Where the project and its recorded Mercurial exchanges (test/fixtures, made by
 * `npm run fixtures:record`) live. Used by Node-side configs, tests and scripts.
 */
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const fixturesDir = resolve(projectRoot, "test", "fixtures");

export function assertFixturesPresent(): void {
  if (!existsSync(resolve(fixturesDir, "INDEX.md"))) {
    throw new Error(
      `The recorded Mercurial exchanges are missing from ${fixturesDir}: restore them ` +
        `(git checkout -- test/fixtures) or record them again with \`npm run fixtures:record\`.`,
    );
  }
}
