/** The one way hgedge times out the origin: on its response headers only, naming the binding. */
import { describe, expect, it } from "vitest";
import { fetchOrigin, OriginTimeout } from "../../src/origin/client.ts";

describe("fetchOrigin", () => {
  it("gives up on the headers after the limit, with an OriginTimeout that names the binding", async () => {
    const never = (_url: string, init: RequestInit) =>
      new Promise<Response>((_resolve, reject) => init.signal?.addEventListener("abort", () => reject(init.signal?.reason)));
    const error = await fetchOrigin(never, "http://origin.test/", {}, { ms: 20, binding: "ORIGIN_TIMEOUT_MS" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OriginTimeout);
    expect((error as OriginTimeout).message).toMatch(/ORIGIN_TIMEOUT_MS; raise it/);
  });

  it("lets a body stream for as long as it takes once the headers are there", async () => {
    let push: ((chunk: Uint8Array) => void) | undefined;
    const body = new ReadableStream<Uint8Array>({ start: (controller) => void (push = (chunk) => controller.enqueue(chunk)) });
    const response = await fetchOrigin(async () => new Response(body), "http://origin.test/", {}, { ms: 20, binding: "ORIGIN_TIMEOUT_MS" });
    const reader = response.body!.getReader();
    await new Promise((resolve) => setTimeout(resolve, 60));
    push?.(new Uint8Array([1, 2, 3]));
    expect((await reader.read()).value).toEqual(new Uint8Array([1, 2, 3]));
  });

  it("passes a failure to connect on as it is (the caller answers 502)", async () => {
    const refused = async () => {
      throw new TypeError("connection refused");
    };
    await expect(fetchOrigin(refused, "http://origin.test/", {}, undefined)).rejects.toThrow("connection refused");
  });
});
