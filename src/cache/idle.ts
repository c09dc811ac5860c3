/**
 * Reading from an origin that may stall: a silent origin must not hold a client, an upload or a
 * Worker invocation open forever.
 */

export class OriginStalled extends Error {
  override readonly name = "OriginStalled";
}

/** reader.read(), or an OriginStalled error (and the source cancelled) after `ms` of silence. */
export async function readWithin<T>(reader: ReadableStreamDefaultReader<T>, ms: number | undefined): Promise<ReadableStreamReadResult<T>> {
  if (ms === undefined) return reader.read();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new OriginStalled(`the origin sent nothing for ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([reader.read(), stalled]);
  } catch (error) {
    if (error instanceof OriginStalled) void reader.cancel(error.message).catch(() => undefined);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** The same stream, erroring with OriginStalled when the source is silent for `ms`. */
export function withIdleTimeout(stream: ReadableStream<Uint8Array>, ms: number): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await readWithin(reader, ms);
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (error) {
        controller.error(error);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}
