/**
 * The v2 commands hgedge understands: argument declarations and cacheability, as Mercurial 5.x
 * declares them for `exp-http-v2-0003` (wireprotov2server.py; protocol.md §4.3), and the
 * server's argument normalisation (`getargs`, wireprotov2server.py:483-520).
 *
 * The declarations are built in rather than read from each origin's capabilities: the API name
 * `exp-http-v2-0003` pins them (Mercurial bumps it on any incompatible change), and cache keys
 * must not depend on which isolate happened to see a handshake.
 */
import { bytes, text, type CborMap, type CborScalar, type CborValue } from "./cbor/values.ts";

export type ArgType = "bytes" | "int" | "list" | "dict" | "set" | "bool";

export interface ArgSpec {
  type: ArgType;
  /** An argument is required iff it declares no default. */
  required: boolean;
  /** The default Mercurial fills in when the argument is absent (absent when required). */
  default?: () => CborValue;
}

export interface CommandSpec {
  args: Record<string, ArgSpec>;
  permission: "pull" | "push";
  /**
   * Mercurial's `localversion` for commands with a cache key function; only those are
   * cacheable (their answer is a pure function of their arguments).
   */
  cacheVersion?: number;
}

const required = (type: ArgType): ArgSpec => ({ type, required: true });
const optional = (type: ArgType, fallback: () => CborValue): ArgSpec => ({ type, required: false, default: fallback });
const emptySet = () => new Set<CborScalar>();

/** Mercurial's cacheable commands (those registered with a cachekeyfn, localversion 1). */
export const CACHEABLE_COMMANDS: Record<string, CommandSpec> = {
  filedata: {
    args: {
      haveparents: optional("bool", () => false),
      nodes: required("list"),
      fields: optional("set", emptySet),
      path: required("bytes"),
    },
    permission: "pull",
    cacheVersion: 1,
  },
  filesdata: {
    args: {
      haveparents: optional("bool", () => false),
      fields: optional("set", emptySet),
      pathfilter: optional("dict", () => null),
      revisions: required("list"),
    },
    permission: "pull",
    cacheVersion: 1,
  },
  manifestdata: {
    args: {
      nodes: required("list"),
      haveparents: optional("bool", () => false),
      fields: optional("set", emptySet),
      tree: required("bytes"),
    },
    permission: "pull",
    cacheVersion: 1,
  },
};

/**
 * Commands that need push permission (5.x: only pushkey). Mercurial 5.x executes them even on
 * the read-only `ro/<command>` URL with pull permission only (protocol.md §1.2, §7 item 29a).
 */
export const PUSH_COMMANDS: ReadonlySet<string> = new Set(["pushkey"]);

export type Normalized = { ok: true; args: CborMap } | { ok: false; reason: string };

/**
 * The arguments as Mercurial's server sees them after `getargs`: unknown names or missing
 * required ones are refused (the origin answers those with a command error), every absent
 * argument gets its default, and a list given for a set-typed argument becomes a set
 * (deduplicated). Nothing else is type-checked, as in Mercurial; values are kept as sent.
 */
export function normalizeArgs(spec: CommandSpec, args: CborMap): Normalized {
  const given = new Map<string, CborValue>();
  for (const [key, value] of args) {
    if (!(key instanceof Uint8Array)) return { ok: false, reason: "argument names must be byte strings" };
    given.set(text(key), value);
  }
  const unknown = [...given.keys()].filter((name) => !(name in spec.args));
  if (unknown.length > 0) return { ok: false, reason: `unsupported argument to command: ${unknown.sort().join(", ")}` };
  const missing = Object.keys(spec.args).filter((name) => spec.args[name]?.required && !given.has(name));
  if (missing.length > 0) return { ok: false, reason: `missing required arguments: ${missing.sort().join(", ")}` };
  const normalized: CborMap = new Map();
  for (const [name, argSpec] of Object.entries(spec.args)) {
    let value = given.has(name) ? (given.get(name) as CborValue) : (argSpec.default?.() ?? null);
    if (argSpec.type === "set" && Array.isArray(value)) {
      const elements = value.filter((v): v is CborScalar => !(v instanceof Map || v instanceof Set || Array.isArray(v)));
      if (elements.length !== value.length) return { ok: false, reason: `argument ${name} must hold plain values` };
      value = new Set(dedupe(elements));
    }
    normalized.set(bytes(name), value);
  }
  return { ok: true, args: normalized };
}

/**
 * Python set semantics (the last equal element wins its place's value). Byte strings are told
 * apart by a one-byte-per-character string of their content: its memory is the content's size
 * plus a small constant, never a multiple of it (a 20-byte node is a 21-character key).
 */
function dedupe(values: CborScalar[]): CborScalar[] {
  const seen = new Map<string, CborScalar>();
  for (const v of values) seen.set(v instanceof Uint8Array ? `b${latin1(v)}` : `v${String(v)}`, v);
  return [...seen.values()];
}

function latin1(value: Uint8Array): string {
  let text = "";
  for (let i = 0; i < value.length; i++) text += String.fromCharCode(value[i] as number);
  return text;
}
