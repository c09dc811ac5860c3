/**
 * Reads the recorded exchanges of test/fixtures from inside workerd, through the FIXTURES service
 * binding that vitest.workers.config.ts serves from the host.
 */
import { env } from "cloudflare:workers";
import type { ExchangeMeta } from "./hgdump.ts";

/**
 * The binding's connection to the host process is occasionally dropped when the machine is
 * heavily loaded ("Network connection lost"): that is the harness, not the code under test, so
 * a read is tried again a few times before the test fails.
 */
async function fetchFixture(path: string): Promise<Response> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await env.FIXTURES.fetch(`http://fixtures/${path}`);
    } catch (error) {
      if (attempt >= 4 || !/Network connection lost/.test(String(error))) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
    }
  }
}

async function get(path: string): Promise<Response> {
  const response = await fetchFixture(path);
  if (!response.ok) throw new Error(`fixture ${path}: ${response.status} ${await response.text()}`);
  return response;
}

export async function listDir(path = ""): Promise<string[]> {
  return (await (await get(path)).json()) as string[];
}

export async function fixtureBytes(path: string): Promise<Uint8Array> {
  return new Uint8Array(await (await get(path)).arrayBuffer());
}

export async function fixtureText(path: string): Promise<string> {
  return (await get(path)).text();
}

export async function fixtureExists(path: string): Promise<boolean> {
  const response = await fetchFixture(path);
  await response.body?.cancel();
  return response.ok;
}

export interface Exchange {
  scenario: string;
  seq: string;
  meta: ExchangeMeta & Record<string, unknown>;
  request?: Uint8Array;
  response: Uint8Array;
}

/** Scenario directories (every fixture folder that holds recorded exchanges). */
export async function scenarios(): Promise<string[]> {
  const entries = await listDir();
  const result: string[] = [];
  for (const entry of entries.sort()) {
    if (entry === "tools" || entry.includes(".")) continue;
    if ((await listDir(entry)).some((f) => /^\d{3}\.json$/.test(f))) result.push(entry);
  }
  return result;
}

export async function exchanges(scenario: string): Promise<Exchange[]> {
  const files = await listDir(scenario);
  const seqs = files.filter((f) => /^\d{3}\.json$/.test(f)).map((f) => f.slice(0, 3)).sort();
  return Promise.all(
    seqs.map(async (seq) => {
      const meta = JSON.parse(await fixtureText(`${scenario}/${seq}.json`)) as Exchange["meta"];
      const request = files.includes(`${seq}-request.body`)
        ? await fixtureBytes(`${scenario}/${seq}-request.body`)
        : undefined;
      const response = await fixtureBytes(`${scenario}/${seq}-response.body`);
      return request ? { scenario, seq, meta, request, response } : { scenario, seq, meta, response };
    }),
  );
}
