/**
 * `Expect: 100-continue` through the edge to a real origin: a stock `hg serve` answers it with an
 * interim 100, which the runtime would hand back as the final status (and the client got a 503).
 * hgedge drops `Expect` with the hop-by-hop headers, so the client gets the origin's real answer.
 */
import http from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEdge, type Edge } from "../../harness/edge.ts";
import { INSTALL_HINT, hg56Path, makeRepo, serveRepo, type Served } from "../../harness/mercurial.ts";

const TIMEOUT = 90_000;

/** A GET with `Expect: 100-continue`, read to the end (Node's client never sends it by itself). */
function getWithExpect(url: string): Promise<{ status: number; type: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: "GET", headers: { expect: "100-continue" } }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (body += chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, type: response.headers["content-type"], body }));
    });
    request.on("error", reject);
    request.end();
  });
}

describe("Expect: 100-continue", () => {
  let work = "";
  let origin: Served | undefined;
  let edge: Edge | undefined;

  beforeAll(async () => {
    const hg = hg56Path();
    if (!hg) throw new Error(`Mercurial 5.6.1 is needed: ${INSTALL_HINT}`);
    work = await mkdtemp(path.join(os.tmpdir(), "hgedge-expect-"));
    await makeRepo(path.join(work, "origin"), hg);
    origin = await serveRepo({ hgPath: hg, repoDir: path.join(work, "origin"), v2: true });
    edge = await startEdge(origin.url);
  }, TIMEOUT);

  afterAll(async () => {
    await edge?.stop();
    await origin?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("gets the origin's real answer through the edge", async () => {
    const direct = await getWithExpect(`${origin!.url}/?cmd=capabilities`);
    expect(direct.status).toBe(200); // the origin itself handles the 100 with a client that expects it
    const answer = await getWithExpect(`${edge!.url}/?cmd=capabilities`);
    expect(answer.status).toBe(200);
    expect(answer.type).toBe("application/mercurial-0.1");
    expect(answer.body).toContain("getbundle");
  }, TIMEOUT);
});
