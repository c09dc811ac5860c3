/**
 * canonicalTarget: one reading of a request's path and query, or a refusal. The differential
 * check against Mercurial's own hgweb routing is test/node/target-hgweb.test.ts.
 */
import { describe, expect, it } from "vitest";
import { canonicalTarget, encodedRepoPath, isCanonicalRepo } from "../../src/protocol/target.ts";

const V2 = "/api/exp-http-v2-0003";

function read(target: string) {
  // Never new URL(target, base): a target starting with // would name a host.
  const url = new URL(`http://edge.test${target}`);
  return canonicalTarget(url.pathname, url.search);
}

describe("canonicalTarget", () => {
  it.each([
    [`${V2}/ro/pushke%79`, "/", "pushkey"],
    [`/r%65po${V2}/ro/%6Danifestdata`, "/repo", "manifestdata"],
    [`//team//project/${V2}/ro/heads`, "/team/project", "heads"],
    [`/team/project${V2}/ro/heads/`, "/team/project", "heads"],
  ])("reads %s as one v2 command on the decoded path", (target, repo, command) => {
    const verdict = read(target);
    expect(verdict).toMatchObject({ ok: true, target: { protocol: "v2", repo, command, access: "ro", permission: "pull" } });
  });

  it("forwards the canonical path, encoded so that one decoding gives the segments back", () => {
    const verdict = read("/a%20b//c%3Fd/e%25/?cmd=heads");
    expect(verdict).toMatchObject({ ok: true, target: { segments: ["a b", "c?d", "e%"], path: "/a%20b/c%3Fd/e%25", search: "?cmd=heads", repo: "/a b/c?d/e%", protocol: "v1" } });
    expect(read("/x:y@z/$,;=+/?cmd=heads")).toMatchObject({ ok: true, target: { path: "/x:y@z/$,;=+" } });
  });

  it.each([
    [`${V2}/ro/pushkey%2F`, "encoded / or \\"],
    [`/api%2Fexp-http-v2-0003/ro/pushkey`, "encoded / or \\"],
    [`${V2}/ro%5Cpushkey`, "encoded / or \\"],
    [`${V2}/ro/pushke%2579`, "double percent-encoding"],
    [`${V2}/ro/heads%00`, "control character"],
    [`${V2}/ro/heads%0A`, "control character"],
    [`${V2}/ro/he%zzads`, "malformed percent-encoding"],
    [`${V2}/ro/heads%FF`, "not UTF-8"],
    [`${V2}/ro/pushkey/extra`, "segments after the v2 command"],
    [`${V2}/ro/api/exp-http-v2-0003/ro/pushkey`, "more than one v2 command"],
    [`/.bundles${V2}/ro/manifestdata`, "segment starting with"],
    [`/.hg/?cmd=heads`, "segment starting with"],
    [`/?cmd=heads&cmd=unbundle`, "more than one cmd"],
    [`/?cmd=heads&c%6Dd=unbundle`, "more than one cmd"],
    [`/?cmd=heads&cmd`, "more than one cmd"],
    [`/?cm%zzd=heads`, "malformed percent-encoding"],
  ])("refuses %s", (target, reason) => {
    const verdict = read(target);
    expect(verdict.ok).toBe(false);
    if (!verdict.ok) expect(verdict.reason).toContain(reason);
  });

  it("refuses dot segments the URL parser left (it resolves them; a pathname given as is may hold them)", () => {
    for (const pathname of ["/a/%2E%2E/api", "/a/./b", "/a/../b", "/a/%2e/b"]) expect(canonicalTarget(pathname, "")).toMatchObject({ ok: false, reason: "path: dot segment" });
  });

  it("reads the v1 command as parse_qsl does (+ is a space, names decoded) and knows its permission", () => {
    expect(read("/repo?c%6Dd=unbundle")).toMatchObject({ ok: true, target: { protocol: "v1", repo: "/repo", command: "unbundle", permission: "push" } });
    expect(read("/?cmd=heads&other=a+b")).toMatchObject({ ok: true, target: { protocol: "v1", repo: "/", command: "heads", permission: "pull" } });
    expect(read("/?cmd=changelog")).toMatchObject({ ok: true, target: { protocol: "other" } });
    expect(read("/file/tip/README")).toMatchObject({ ok: true, target: { protocol: "other", path: "/file/tip/README" } });
  });

  it("names repositories canonically for the admin API", () => {
    for (const good of ["/", "/a", "/a/b", "/a b"]) expect(isCanonicalRepo(good), good).toBe(true);
    for (const bad of ["", "a", "/a/", "//a", "/a//b", "/.bundles", "/a/.root", "/a/..", "/a\\b", "/a\u0000"]) expect(isCanonicalRepo(bad), bad).toBe(false);
    expect(encodedRepoPath("/a b/c?d")).toBe("/a%20b/c%3Fd");
    expect(encodedRepoPath("/")).toBe("/");
  });
});
