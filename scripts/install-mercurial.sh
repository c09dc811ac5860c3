#!/usr/bin/env bash
# Installs the two real Mercurials the Node tests drive (see shared/design.md,
# "Real Mercurial in tests (verified recipe)"):
#   - Debian bookworm's `mercurial` 6.x: today's v1 client/server, from the machine's apt;
#   - Debian bullseye's `mercurial` 5.6.1: the last with wire protocol v2, unpacked into
#     .tools/hg-5.6.1 through a private apt configuration (the machine's own apt sources are
#     only read, never changed) and run with pyenv's Python 3.9.18.
# and writes the wrappers .tools/bin/hg-5.6.1 and .tools/bin/hg-6 (generated, not committed).
#
# Idempotent and quiet: prints one line per tool on success; on failure prints the failing
# command's output. Needs root (or sudo) only when bookworm's mercurial is missing.
# Override the Debian mirror with HGEDGE_DEBIAN_MIRROR=<url> if the apt sources have none.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
HG56_DIR="$TOOLS/hg-5.6.1"
APT_DIR="$TOOLS/apt"
BIN="$TOOLS/bin"
HG56_DEBS=(mercurial=5.6.1-4 mercurial-common=5.6.1-4)

die() { echo "install-mercurial: $*" >&2; exit 1; }

# Runs a command with its output in a log; shows the log only when the command fails.
quietly() {
  local log
  log="$(mktemp)"
  if ! "$@" >"$log" 2>&1; then
    echo "install-mercurial: failed: $*" >&2
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
}

# Runs a command as root: directly when we are root (CI), else through non-interactive sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    die "need root to run: $* (re-run this script as root)"
  fi
}

# The private apt state names the mirror and a half-unpacked tree is useless: neither outlives
# this script, whatever way it ends.
cleanup() { rm -rf "$APT_DIR" "$TOOLS"/hg-5.6.1.tmp.*; }
trap cleanup EXIT

# --- bookworm's mercurial 6.x ------------------------------------------------------------------
install_hg6() {
  if [ ! -x /usr/bin/hg ]; then
    quietly as_root apt-get update
    quietly as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends mercurial
  fi
  [ -x /usr/bin/hg ] || die "apt-get installed mercurial but /usr/bin/hg is missing"
}

# --- pyenv's Python 3.9.18 ---------------------------------------------------------------------
find_python39() {
  local candidates=()
  if command -v pyenv >/dev/null 2>&1; then
    candidates+=("$(pyenv root)/versions/3.9.18/bin/python3")
  fi
  candidates+=("${PYENV_ROOT:-$HOME/.pyenv}/versions/3.9.18/bin/python3" "$HOME/.pyenv/versions/3.9.18/bin/python3")
  local py
  for py in "${candidates[@]}"; do
    if [ -x "$py" ]; then
      echo "$py"
      return 0
    fi
  done
  die "Python 3.9.18 from pyenv is missing (looked for: ${candidates[*]}).
Mercurial 5.6.1's C extensions are built for CPython 3.9; install it with: pyenv install 3.9.18"
}

# --- the Debian mirror, read from the machine's apt sources ------------------------------------
# Prints the first enabled http(s) URI whose last path component is `debian` (the main archive,
# not debian-security/debian-ports), from deb822 *.sources files, then one-line *.list files.
debian_mirror() {
  if [ -n "${HGEDGE_DEBIAN_MIRROR:-}" ]; then
    echo "${HGEDGE_DEBIAN_MIRROR%/}"
    return 0
  fi
  local uri
  uri="$(
    {
      # deb822: one stanza per paragraph; skip `Enabled: no` stanzas and deb-src-only ones.
      for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk '
          function flush() { if (types ~ /(^| )deb( |$)/ && tolower(enabled) != "no") print uris; types = ""; uris = ""; enabled = "" }
          /^[ \t]*#/ { next }
          /^[ \t]*$/ { flush(); next }
          tolower($1) == "types:"   { types = substr($0, index($0, ":") + 1) }
          tolower($1) == "uris:"    { uris = substr($0, index($0, ":") + 1) }
          tolower($1) == "enabled:" { enabled = $2 }
          END { flush() }
        ' "$f"
      done
      # one-line format: deb [options] uri suite components
      for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        sed -E -n 's/^[ \t]*deb[ \t]+(\[[^]]*\][ \t]+)?([^ \t]+).*/\2/p' "$f"
      done
    } | tr -s '[:blank:]' '\n' | grep -E '^https?://' | sed -E 's#/+$##' | grep -E '/debian$' | head -n 1
  )" || true
  [ -n "$uri" ] || die "no Debian archive URI (ending in /debian) found in /etc/apt/sources.list{,.d/*}; set HGEDGE_DEBIAN_MIRROR"
  echo "$uri"
}

# --- bullseye's mercurial 5.6.1 ----------------------------------------------------------------
hg56_runs() {
  [ -x "$BIN/hg-5.6.1" ] && [ -f "$HG56_DIR/usr/bin/hg" ] \
    && "$BIN/hg-5.6.1" --version 2>/dev/null | head -n 1 | grep -q '(version 5\.6\.1)'
}

install_hg56() {
  local mirror tmp
  mirror="$(debian_mirror)"
  rm -rf "$APT_DIR"
  mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bullseye main" >"$APT_DIR/sources.list"
  # Only our own sources list, lists and cache; the machine's apt.conf.d (proxies etc.) still
  # applies. Sandbox user root: _apt may not be able to write into the project directory.
  local O=(
    -o "Dir::Etc::sourcelist=$APT_DIR/sources.list"
    -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::Lists=$APT_DIR/lists"
    -o "Dir::Cache=$APT_DIR/cache"
    -o "APT::Sandbox::User=root"
  )
  quietly apt-get "${O[@]}" update
  (cd "$APT_DIR" && quietly apt-get "${O[@]}" download "${HG56_DEBS[@]}")
  # Unpack into a scratch directory first so an interrupted run never leaves half a tree.
  tmp="$TOOLS/hg-5.6.1.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  local deb
  for deb in "$APT_DIR"/*.deb; do
    quietly dpkg-deb -x "$deb" "$tmp"
  done
  rm -rf "$HG56_DIR"
  mv "$tmp" "$HG56_DIR"
}

# --- wrappers ----------------------------------------------------------------------------------
# `hg serve -d` re-executes sys.argv[0] (the hg script itself), so the script's own shebang
# decides the interpreter of the daemon: point it at Python 3.9.18, not Debian's python3.
# The wrappers' environment (PYTHONPATH, HGRCPATH, HGPLAIN) is inherited by that re-exec.
write_wrappers() {
  local py39="$1"
  sed -i "1s|^#!.*|#!$py39|" "$HG56_DIR/usr/bin/hg"
  mkdir -p "$BIN"
  local pythonpath="$HG56_DIR/usr/lib/python3/dist-packages" hg="$HG56_DIR/usr/bin/hg"
  cat >"$BIN/hg-5.6.1" <<EOF
#!/usr/bin/env bash
# Generated by scripts/install-mercurial.sh: Debian bullseye's Mercurial 5.6.1 (wire protocol v2).
export PYTHONPATH=$(printf %q "$pythonpath")
export HGRCPATH=
export HGPLAIN=1
exec $(printf %q "$py39") $(printf %q "$hg") "\$@"
EOF
  cat >"$BIN/hg-6" <<'EOF'
#!/usr/bin/env bash
# Generated by scripts/install-mercurial.sh: the machine's (Debian bookworm) Mercurial 6.x.
unset PYTHONPATH
export HGRCPATH=
export HGPLAIN=1
exec /usr/bin/hg "$@"
EOF
  chmod 755 "$BIN/hg-5.6.1" "$BIN/hg-6"
}

# Prints the version from `hg --version`'s first line: "Mercurial Distributed SCM (version X)".
hg_version() {
  "$1" --version | head -n 1 | sed -E -n 's/.*\(version ([^)]+)\).*/\1/p'
}

main() {
  install_hg6
  local py39
  py39="$(find_python39)"
  if [ -f "$HG56_DIR/usr/bin/hg" ]; then write_wrappers "$py39"; fi
  if ! hg56_runs; then
    install_hg56
    write_wrappers "$py39"
  fi

  # Debian ships no .pyc files (its postinst compiles them) and PYTHONDONTWRITEBYTECODE may be
  # set, so without this every hg 5.6.1 run recompiles Mercurial: ~0.5 s instead of ~0.15 s.
  quietly "$py39" -m compileall -q -j0 "$HG56_DIR/usr/lib/python3/dist-packages"

  local v56 v6
  v56="$(hg_version "$BIN/hg-5.6.1")" || true
  v6="$(hg_version "$BIN/hg-6")" || true
  [ "$v56" = "5.6.1" ] || die "$BIN/hg-5.6.1 --version reports '${v56}', expected 5.6.1"
  case "$v6" in 6.*) ;; *) die "$BIN/hg-6 --version reports '${v6}', expected 6.x" ;; esac
  echo "mercurial $v56 (wire protocol v2): .tools/bin/hg-5.6.1"
  echo "mercurial $v6: .tools/bin/hg-6"
}

main "$@"
