/**
 * Worker CPU time (not wall time) of hgedge's own isolate per fill, per inline hit and per
 * redirect hit of one `filedata` object, read with V8's sampling CPU profiler through the
 * inspector (scripts/bench/inspector.ts): the time the isolate's thread ran for it — JavaScript,
 * garbage collection and the native work it calls (zlib, SHA-256, stream copies) — without the
 * simulated R2, wrangler's proxy or the origin, which run elsewhere or in other isolates.
 * That is the figure Cloudflare bills and limits (`limits.cpu_ms`), so it gives the largest
 * object a fill can store within a limit.
 *
 *   npx tsx scripts/bench/cpu.ts [--max-mb N] [--hits N]
 *
 * The origin is `hg serve` 5.6.1 with one commit of incompressible files (1, 10, 100 MB by
 * default); the edge runs under `npm start` with ACCESS=public and MIN_REDIRECT_BYTES=0. For each
 * size: a MISS (the fill, streamed to the client while stored), then `--hits` inline hits and
 * redirect hits, each profiled on its own.
 */
import { createCipheriv, createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { startEdge } from "../../harness/edge.ts";
import { hg56Path, runHgOk, serveRepo } from "../../harness/mercurial.ts";
import { FRAMING_MEDIA_TYPE } from "../../src/protocol/capabilities.ts";
import { bytes, cborMap } from "../../src/protocol/cbor.ts";
import { fromHex } from "../../src/protocol/hex.ts";
import { encodeRequestBody } from "../../src/protocol/requests.ts";
import { connectInspector, type CpuProfileSummary, type Inspector } from "./inspector.ts";
import { edgeProcesses, exchange, machine, option, runtimeUrl, writeResult } from "./support.ts";

const API = "/api/exp-http-v2-0003/ro/filedata";
const FRAMED = { accept: FRAMING_MEDIA_TYPE, "content-type": FRAMING_MEDIA_TYPE };

function incompressible(size: number, seed: string): Buffer {
  const key = createHash("sha256").update("hgedge-cpu").digest().subarray(0, 16);
  const iv = createHash("sha256").update(seed).digest().subarray(0, 16);
  return createCipheriv("aes-128-ctr", key, iv).update(Buffer.alloc(size));
}

function requestBody(file: string, node: string, redirect: boolean): Uint8Array {
  const args = cborMap({ path: bytes(file), nodes: [fromHex(node)], fields: [bytes("parents"), bytes("revision")] });
  return encodeRequestBody([{ name: "filedata", args, ...(redirect ? { redirect: { targets: ["hgedge"], hashes: ["sha256", "sha1"] } } : {}) }], ["identity"]);
}

interface Measured {
  mode: "fill" | "inline" | "redirect";
  megabytes: number;
  /** Median CPU ms per request of hgedge's isolate. */
  cpuMs: number;
  wallMs: number;
  top: CpuProfileSummary["top"];
}

async function profiled(inspector: Inspector, send: () => Promise<{ status: number; headers: Record<string, unknown> }>, expect: string): Promise<CpuProfileSummary> {
  await inspector.startProfiling(100);
  const answer = await send();
  const summary = await inspector.stopProfiling();
  if (answer.status !== 200 || answer.headers["x-hgedge-cache"] !== expect) {
    throw new Error(`expected ${expect}, got HTTP ${answer.status} ${String(answer.headers["x-hgedge-cache"])}`);
  }
  return summary;
}

async function main(): Promise<void> {
  const hg = hg56Path();
  if (!hg) throw new Error("Mercurial 5.6.1 is missing: run `npm run install-mercurial`");
  const maxMb = option("max-mb", 100);
  const hits = option("hits", 3);
  const sizes = [1, 10, 100, 1000].filter((mb) => mb <= maxMb);
  const work = await mkdtemp(path.join(os.tmpdir(), "hgedge-cpu-"));
  const results: Measured[] = [];
  try {
    const repo = path.join(work, "origin");
    await runHgOk(hg, ["init", repo]);
    for (const mb of sizes) await writeFile(path.join(repo, `f${mb}`), incompressible(mb * 1e6, String(mb)));
    await runHgOk(hg, ["-R", repo, "commit", "-A", "--config", "ui.username=bench", "-d", "0 0", "-m", "objects"], { timeoutMs: 1_200_000 });
    const nodes = new Map<string, string>();
    for (const line of (await runHgOk(hg, ["-R", repo, "manifest", "--debug", "-r", "tip"])).trim().split("\n")) {
      const [node, , name] = line.split(/\s+/);
      if (node && name) nodes.set(name, node);
    }
    const origin = await serveRepo({ hgPath: hg, repoDir: repo, v2: true });
    const edge = await startEdge(origin.url, { ACCESS: "public", MIN_REDIRECT_BYTES: "0", CACHE_VERSION: `cpu-${Date.now()}` });
    const inspector = await connectInspector(edge.inspectorPort);
    try {
      await inspector.stopNetworkEvents();
      const edgeUrl = await runtimeUrl(edgeProcesses(edge.processGroup, edge.url).runtime);
      const post = (body: Uint8Array) => () => exchange(edgeUrl + API, { method: "POST", headers: FRAMED, body });
      for (const mb of sizes) {
        const node = nodes.get(`f${mb}`) as string;
        const plain = requestBody(`f${mb}`, node, false);
        const redirecting = requestBody(`f${mb}`, node, true);
        const fill = await profiled(inspector, post(plain), "MISS");
        results.push({ mode: "fill", megabytes: mb, cpuMs: fill.cpuMs, wallMs: fill.wallMs, top: fill.top });
        // The commit finishes after the response: wait for the object.
        for (let tries = 0; ; tries++) {
          const answer = await post(redirecting)();
          if (answer.headers["x-hgedge-cache"] === "REDIRECT") break;
          if (tries > 100) throw new Error(`${mb} MB: the object was never committed`);
          await new Promise((r) => setTimeout(r, 200));
        }
        for (const [mode, body, expect] of [["inline", plain, "HIT"], ["redirect", redirecting, "REDIRECT"]] as const) {
          const runs: CpuProfileSummary[] = [];
          for (let i = 0; i < hits; i++) runs.push(await profiled(inspector, post(body), expect));
          runs.sort((a, b) => a.cpuMs - b.cpuMs);
          const mid = runs[runs.length >> 1] as CpuProfileSummary;
          results.push({ mode, megabytes: mb, cpuMs: mid.cpuMs, wallMs: mid.wallMs, top: mid.top });
        }
        for (const r of results.filter((x) => x.megabytes === mb)) {
          console.log(`${mb} MB ${r.mode}: ${r.cpuMs.toFixed(1)} ms CPU (${(r.cpuMs / mb).toFixed(2)} ms/MB), wall ${r.wallMs.toFixed(0)} ms; top: ${r.top.slice(0, 4).map((t) => `${t.name} ${t.ms.toFixed(1)}`).join(", ")}`);
        }
      }
    } finally {
      inspector.close();
      await edge.stop();
      await origin.stop();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const table = [
    "| object | answer | hgedge isolate CPU (ms) | CPU per MB (ms) | wall (ms) |",
    "|---|---|---:|---:|---:|",
    ...results.map((r) => `| ${r.megabytes} MB | ${r.mode} | ${r.cpuMs.toFixed(1)} | ${(r.cpuMs / r.megabytes).toFixed(3)} | ${r.wallMs.toFixed(0)} |`),
  ].join("\n");
  console.log(`\n${table}`);
  const file = await writeResult("cpu", { date: new Date().toISOString(), machine: machine(), results });
  console.log(`results: ${path.relative(process.cwd(), file)}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
