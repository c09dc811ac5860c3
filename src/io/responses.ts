/**
 * The two shapes of Response hgedge builds by hand: a plain-text error (one format for every
 * refusal and failure hgedge answers itself) and a copy of another response with some parts
 * changed (a header added, a body replaced).
 */

/**
 * `hgedge: <message>` as UTF-8 text, never stored by any cache. Mercurial clients print a
 * text/plain error body as it is, so the message says what happened and what to do.
 */
export function plainError(status: number, message: string, headers: Record<string, string> = {}): Response {
  return new Response(`hgedge: ${message}\n`, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...headers },
  });
}

export interface ResponseChanges {
  /** Headers set (replacing any of the same name) on the copy. */
  headers?: Record<string, string>;
  /** A new body; a byte array also sets Content-Length. */
  body?: Uint8Array | ReadableStream<Uint8Array> | null;
  /** "manual" sends the body as it is even when Content-Encoding says otherwise. */
  encodeBody?: "automatic" | "manual";
}

/** The same status and headers (and body, unless replaced), with `changes` applied. */
export function copyResponse(response: Response, changes: ResponseChanges = {}): Response {
  const headers = new Headers(response.headers);
  for (const [name, value] of Object.entries(changes.headers ?? {})) headers.set(name, value);
  const body = changes.body === undefined ? response.body : changes.body;
  if (body instanceof Uint8Array) headers.set("content-length", String(body.length));
  return new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers,
    ...(changes.encodeBody ? { encodeBody: changes.encodeBody } : {}),
  });
}
