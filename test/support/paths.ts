/**
 * Where the shared knowledge lives: ../shared beside the project (CI lays a copy of shared/ beside
 * its clone). HGEDGE_SHARED overrides it. Used by Node-side configs and tests only.
 */
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const sharedDir = resolve(process.env.HGEDGE_SHARED ?? resolve(projectRoot, "../shared"));
export const fixturesDir = resolve(sharedDir, "fixtures");

export function assertFixturesPresent(): void {
  if (!existsSync(resolve(fixturesDir, "INDEX.md"))) {
    throw new Error(
      `Mercurial fixtures not found at ${fixturesDir}: put the shared/ folder beside the project ` +
        `or point HGEDGE_SHARED at it.`,
    );
  }
}
