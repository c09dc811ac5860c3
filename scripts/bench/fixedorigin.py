# Benchmark-only Mercurial extension: an origin without the removed-file filesdata bug, as a
# reference for what the workaround costs. The stock server looks up every path a changeset
# touched in its manifest; hiding removed paths from changectx.files() has the same effect as
# the origin-side fix described in README.md. Used by scripts/bench/renames.ts only.
from mercurial import context, extensions


def _presentfiles(orig, self):
    manifest = self.manifest()
    return [path for path in orig(self) if path in manifest]


def extsetup(ui):
    extensions.wrapfunction(context.changectx, "files", _presentfiles)
