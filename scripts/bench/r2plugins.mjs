/**
 * Two miniflare plugins (loaded by miniflare itself, hence plain JavaScript) that move the local
 * R2 bucket out of hgedge's workerd process, so that a benchmark can tell hgedge's own CPU and
 * memory from the R2 simulator's (on Cloudflare, R2 is a network service, not in the isolate's
 * process). workerd's R2 binding speaks HTTP to the service it names, so the bucket can be any
 * HTTP service, another process included:
 *
 * - `hgedge-r2-external` (in hgedge's wrangler dev, through `[[unsafe.bindings]]`): binds the R2
 *   binding to an external HTTP service, `options.address` (host:port).
 * - `hgedge-r2-raw` (in the R2 process's own miniflare, scripts/bench/r2process.ts): a service
 *   binding straight to miniflare's simulated bucket service (`options.service`), so that a
 *   one-line Worker there can hand each R2 request on unchanged.
 */

const externalServiceName = (address) => `hgedge-bench-r2-external:${address}`;

export const plugins = {
  "hgedge-r2-external": {
    options: undefined,
    getBindings(bindings) {
      return (bindings ?? []).map((b) => ({ name: b.name, r2Bucket: { name: externalServiceName(b.options.address) } }));
    },
    getNodeBindings() {
      return {};
    },
    getServices({ options }) {
      const addresses = [...new Set((options ?? []).map((b) => b.options.address))];
      return addresses.map((address) => ({ name: externalServiceName(address), external: { address, http: {} } }));
    },
  },
  "hgedge-r2-raw": {
    options: undefined,
    getBindings(bindings) {
      return (bindings ?? []).map((b) => ({ name: b.name, service: { name: b.options.service } }));
    },
    getNodeBindings() {
      return {};
    },
    getServices() {
      return [];
    },
  },
};
