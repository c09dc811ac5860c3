# A Mercurial extension that builds a deterministic, realistic-looking repository for the
# benchmarks: a tree of source-like text files edited a few at a time, files added over time,
# a handful of larger binary blobs, two branches and tags. No file is ever removed or renamed
# (stock 5.x origins cannot serve such a history over wire protocol v2).
#
#   hg --config extensions.makerepo=scripts/bench/makerepo.py -R REPO hgedge-makerepo [REVS]
import random

from mercurial import context, registrar

cmdtable = {}
command = registrar.command(cmdtable)

WORDS = (b"buffer frame stream client server request response cache object node revision "
         b"manifest changeset parent delta encode decode length offset index commit branch "
         b"merge tag bookmark phase status error return value result count total size").split()


def line(rng):
    indent = b"    " * rng.randint(0, 3)
    words = b" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
    return indent + words + b";\n"


def textfile(rng, lines):
    return b"".join(line(rng) for _ in range(lines))


def edit(rng, data):
    lines = data.splitlines(True)
    for _ in range(rng.randint(1, 6)):
        at = rng.randint(0, max(0, len(lines) - 1))
        if lines and rng.random() < 0.4:
            lines[at] = line(rng)
        else:
            lines[at:at] = [line(rng) for _ in range(rng.randint(1, 20))]
    return b"".join(lines)


@command(b"hgedge-makerepo", [], b"[REVS]", norepo=False)
def makerepo(ui, repo, revs=b"400"):
    """build a deterministic benchmark history of REVS changesets"""
    rng = random.Random(1)
    total = int(revs)
    files = {}
    for i in range(120):
        files[b"src/mod%02d/file%03d.c" % (i % 12, i)] = textfile(rng, rng.randint(40, 400))
    tip = {b"default": repo.nullid if hasattr(repo, "nullid") else b"\0" * 20}
    with repo.wlock(), repo.lock(), repo.transaction(b"makerepo"):
        for rev in range(total):
            branch = b"stable" if rev > total // 2 and rev % 5 == 0 else b"default"
            if branch not in tip:
                tip[branch] = tip[b"default"]
            changed = set()
            if rev == 0:
                changed = set(files)
            else:
                for path in rng.sample(sorted(files), rng.randint(1, 4)):
                    files[path] = edit(rng, files[path])
                    changed.add(path)
                if rev % 10 == 0:
                    path = b"src/new/file%04d.c" % rev
                    files[path] = textfile(rng, rng.randint(20, 200))
                    changed.add(path)
                if rev % 60 == 30:
                    path = b"assets/blob%04d.bin" % rev
                    files[path] = bytes(rng.getrandbits(8) for _ in range(rng.randint(50_000, 250_000)))
                    changed.add(path)
            snapshot = dict(files)

            def filectx(repo_, memctx, path, snapshot=snapshot):
                return context.memfilectx(repo_, memctx, path, snapshot[path])

            ctx = context.memctx(repo, (tip[branch], None), b"change %d" % rev, sorted(changed), filectx,
                                 user=b"bench <bench@example.org>", date=(rev * 3600, 0),
                                 extra={b"branch": branch})
            tip[branch] = repo.commitctx(ctx)
    ui.status(b"%d changesets, %d files\n" % (total, len(files)))
