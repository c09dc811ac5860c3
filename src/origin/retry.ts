/**
 * Routing around the stock 5.x origin's filesdata failure on removed files (see
 * src/protocol/originbugs.ts): when the origin answers a filesdata request with exactly that
 * failure before any output, the request goes again once with `haveparents: false`, and the
 * client gets the second answer as if it were the only one. Only the first frame is held back
 * to decide. Requests the origin answers correctly are never changed, and no other error is
 * retried. Requests that failed once go straight to the working form afterwards (remembered
 * per isolate, in a RetryMemory).
 */
import { FRAMING_MEDIA_TYPE } from "../protocol/capabilities.ts";
import { encode } from "../protocol/cbor.ts";
import { concatBytes } from "../protocol/frames.ts";
import { toHex } from "../protocol/hex.ts";
import { asksForParents, isRemovedFileFailure, withoutParents } from "../protocol/originbugs.ts";
import type { ParsedRequestBody } from "../protocol/requests.ts";
import { plainError } from "../io/responses.ts";
import { logEvent as log } from "../log.ts";
import { forwardToOrigin, type OriginCall } from "./client.ts";
import { peekFirstFrame } from "./peek.ts";
import type { RetryMemory } from "./retrymemory.ts";

async function affectedId(origin: string, repo: string, args: Uint8Array): Promise<string> {
  const material = concatBytes([new TextEncoder().encode(`${origin}\n${repo}\n`), args]);
  return toHex(await crypto.subtle.digest("SHA-256", material));
}

/** Forwards a v2 command request, retrying a filesdata request that hits the origin's bug. */
export async function forwardV2Request(call: OriginCall, request: Request, repo: string, parsed: ParsedRequestBody | undefined, body: Uint8Array): Promise<Response> {
  const { config, retryMemory: memory } = call;
  const command = parsed?.commands.length === 1 ? parsed.commands[0] : undefined;
  if (!parsed || !command || !asksForParents(command)) return forwardToOrigin(call, request, body);

  const id = await affectedId(config.originUrl.href, repo, encode(command.args));
  const workingForm = () => withoutParents(body, parsed, command);
  if (memory.has(id)) {
    memory.direct += 1;
    log("warn", "filesdata-without-parents", { repo, reason: "known to hit the origin's removed-file failure" });
    return forwardToOrigin(call, request, workingForm());
  }
  const response = await forwardToOrigin(call, request, body);
  if (response.status !== 200 || response.headers.get("content-type") !== FRAMING_MEDIA_TYPE || !response.body) return response;
  // forwardToOrigin's body fails with OriginStalled when the origin falls silent.
  const peeked = await peekFirstFrame(response.body);
  if (peeked.kind === "stalled") return originStalled(config.originIdleTimeoutMs);
  if (peeked.kind === "none" || !isRemovedFileFailure(peeked.frame, command.requestId)) {
    return new Response(peeked.stream, response);
  }
  await peeked.stream.cancel("retrying without parents");
  memory.remember(id);
  memory.retries += 1;
  log("warn", "filesdata-retry", { repo, reason: "origin failed on a removed file; retrying with haveparents=false" });
  return forwardToOrigin(call, request, workingForm());
}

/** Nothing has gone to the client yet, so it can get a clean 504. */
function originStalled(ms: number): Response {
  log("warn", "origin-stalled", { ms });
  return plainError(504, `the origin sent nothing for ${ms} ms`);
}
