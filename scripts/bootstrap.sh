#!/usr/bin/env bash
# Set up (or check) everything a checkout needs; idempotent, and a few seconds when nothing is
# missing. Used by `make dev` and `make test`.
#
#   1. uv (pip install --user uv when it is not on PATH), then `uv sync --frozen` -> .venv
#   2. node_modules from package-lock.json (`npm ci`) when node/npm exist and it is out of date
#   3. Debian packages for exports (chromium, fonts, poppler-utils) and for the Go client's test
#      (Debian's Go toolchain, protoc-gen-go, protoc-gen-go-grpc and the grpc/protobuf/genproto
#      libraries; see clients/go) when missing: installed when running as root with apt-get,
#      otherwise printed. TESSERA_SKIP_APT=1 skips this step.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
say() { printf 'bootstrap: %s\n' "$*"; }
warn() { printf 'bootstrap: warning: %s\n' "$*" >&2; }
die() {
  printf 'bootstrap: error: %s\n' "$*" >&2
  exit 1
}

# ---------------------------------------------------------------------------------------------
# 1. uv and the Python environment

find_uv() {
  local candidate user_base
  if candidate=$(command -v uv 2>/dev/null); then
    UV=$candidate
    return 0
  fi
  user_base=$(python3 -m site --user-base 2>/dev/null || true)
  for candidate in "$HOME/.local/bin/uv" "${user_base:+$user_base/bin/uv}" "$PWD/build/tools/uv/bin/uv"; do
    if [[ -n $candidate && -x $candidate ]]; then
      UV=$candidate
      return 0
    fi
  done
  return 1
}

install_uv() {
  command -v python3 >/dev/null 2>&1 || die "python3 is needed to install uv (or install uv: https://docs.astral.sh/uv/)"
  say "installing uv (python3 -m pip install --user uv)"
  if python3 -m pip install --user --quiet --disable-pip-version-check uv; then
    return 0
  fi
  # PEP 668 ("externally managed") Pythons refuse --user installs: use a private venv instead.
  say "pip --user was refused; installing uv into build/tools/uv"
  if python3 -m venv build/tools/uv && build/tools/uv/bin/python -m pip install --quiet --disable-pip-version-check uv; then
    return 0
  fi
  die "could not install uv; install it yourself (https://docs.astral.sh/uv/getting-started/installation/) and re-run"
}

UV=""
if ! find_uv; then
  install_uv
  find_uv || die "uv was installed but is not found (is ~/.local/bin on PATH?)"
fi
"$UV" sync --frozen --quiet || die "uv sync --frozen failed (is uv.lock in sync with pyproject.toml? run: uv lock)"

# ---------------------------------------------------------------------------------------------
# 2. node_modules (protoc-gen-es for gen/ts, and the Node.js client used by tests)

# Exit 0 when node_modules holds exactly the versions package-lock.json names (npm's own record,
# node_modules/.package-lock.json, is compared entry by entry; absent optional packages are fine).
node_modules_current() {
  [[ -f node_modules/.package-lock.json ]] || return 1
  node -e '
    const fs = require("fs");
    const want = JSON.parse(fs.readFileSync("package-lock.json", "utf8")).packages || {};
    const have = JSON.parse(fs.readFileSync("node_modules/.package-lock.json", "utf8")).packages || {};
    for (const [path, pkg] of Object.entries(want)) {
      if (!path.startsWith("node_modules/")) continue;
      const got = have[path];
      if (!got) { if (pkg.optional) continue; process.exit(1); }
      if (got.version !== pkg.version || !fs.existsSync(path)) process.exit(1);
    }
    for (const path of Object.keys(have)) if (!(path in want)) process.exit(1);
  ' 2>/dev/null
}

if [[ -f package-lock.json ]]; then
  if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    if ! node_modules_current; then
      say "npm ci"
      npm ci --no-audit --no-fund --loglevel=error || die "npm ci failed"
    fi
  else
    warn "node/npm not found: skipping node_modules (needed by scripts/gen.sh and the Node.js client tests)"
  fi
fi

# ---------------------------------------------------------------------------------------------
# 3. Chromium, fonts and poppler-utils (PDF/PNG exports and their tests); Go (clients/go);
#    h2load (nghttp2-client: the benchmarks' native gRPC load generator, bench/h2load.py)

APT_PACKAGES=(chromium fonts-dejavu-core fonts-liberation fonts-noto-cjk poppler-utils
  golang-go protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev golang-google-protobuf-dev
  golang-google-genproto-dev nghttp2-client)

dpkg_installed() {
  command -v dpkg-query >/dev/null 2>&1 || return 1
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

missing_packages() {
  local pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    case $pkg in
      chromium)
        if [[ -n ${TESSERA_CHROMIUM_PATH:-} && -x ${TESSERA_CHROMIUM_PATH:-} ]] ||
          command -v chromium >/dev/null 2>&1 || [[ -x /usr/lib/chromium/chromium ]]; then
          continue
        fi
        ;;
      poppler-utils)
        command -v pdfinfo >/dev/null 2>&1 && continue
        ;;
      nghttp2-client)
        command -v h2load >/dev/null 2>&1 && continue
        ;;
      golang-go)
        command -v go >/dev/null 2>&1 && continue
        ;;
      protoc-gen-go | protoc-gen-go-grpc)
        command -v "$pkg" >/dev/null 2>&1 && continue
        ;;
      *)
        # Fonts have no command: ask dpkg (where there is no dpkg, do not guess).
        command -v dpkg-query >/dev/null 2>&1 || continue
        dpkg_installed "$pkg" && continue
        ;;
    esac
    printf '%s\n' "$pkg"
  done
}

if [[ ${TESSERA_SKIP_APT:-0} == 1 ]]; then
  : # opted out
else
  missing=()
  while IFS= read -r pkg; do missing+=("$pkg"); done < <(missing_packages)
  if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
      mkdir -p build
      apt_log=build/apt-get.log
      say "installing ${missing[*]} (apt-get; log in $apt_log)"
      export DEBIAN_FRONTEND=noninteractive
      if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1; then
        tail -n 20 "$apt_log" >&2
        die "apt-get install failed (set TESSERA_SKIP_APT=1 to skip this step)"
      fi
    elif command -v apt-get >/dev/null 2>&1; then
      warn "missing system packages (exports and their tests need them): ${missing[*]}"
      warn "  install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}"
    else
      warn "missing: ${missing[*]} -- install Chromium, poppler (pdfinfo) and DejaVu/Liberation/Noto CJK fonts"
    fi
  fi
fi

say "ok ($((SECONDS - started)) s)"
