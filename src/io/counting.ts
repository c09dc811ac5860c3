/**
 * A body passed through unchanged, counting what went out, so that the request log can say how
 * many bytes a client got and whether it got them all.
 */
import { ByteReader } from "./reader.ts";

export function countingBody(body: ReadableStream<Uint8Array>, done: (bytes: number, complete: boolean) => void): ReadableStream<Uint8Array> {
  const reader = new ByteReader(body, undefined);
  let bytes = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (error) {
        done(bytes, false);
        controller.error(error);
        return;
      }
      if (chunk.done) {
        done(bytes, true);
        controller.close();
        return;
      }
      bytes += chunk.value.byteLength;
      controller.enqueue(chunk.value);
    },
    async cancel(reason) {
      done(bytes, false);
      await reader.cancel(reason);
    },
    // Read only when the client reads: no chunk is pulled (and no fill advanced) ahead of it.
  }, { highWaterMark: 0 });
}
