/**
 * The shape of `fetch` hgedge calls through (to the origin, to probe redirect targets), so that
 * tests can put a scripted server in its place.
 */
export type FetchFunction = (url: string, init: RequestInit) => Promise<Response>;

/** The runtime's own fetch. */
export const runtimeFetch: FetchFunction = (url, init) => fetch(url, init);
