#!/usr/bin/env bash
# The whole test suite: lint, the generated-code check, the proto breaking-change check, pytest.
# Arguments go to pytest. Every step runs; the exit status is non-zero when any failed (pytest's
# own status when pytest failed, so "no tests collected" (5) fails too).
set -uo pipefail
cd "$(dirname "$0")/.."
export BUF_CACHE_DIR="${BUF_CACHE_DIR:-$PWD/build/buf-cache}"

bold="" plain=""
if [[ -t 1 ]]; then bold=$'\033[1m' plain=$'\033[0m'; fi
declare -a summary=()
failed=0
pytest_status=0

run_step() {
  local name=$1 status start=$SECONDS
  shift
  printf '\n%s=== %s%s\n' "$bold" "$name" "$plain"
  "$@"
  status=$?
  if ((status == 0)); then
    summary+=("ok      $name ($((SECONDS - start)) s)")
  else
    summary+=("FAILED  $name (exit $status, $((SECONDS - start)) s)")
    failed=1
  fi
  return "$status"
}

# `buf breaking` against main. buf's own `--against '.git#branch=main'` cannot build main here:
# the workspace includes the git-ignored build/proto-deps. So main's buf.yaml + proto/ are taken
# with `git archive` (read-only) into build/breaking-base, next to the same pinned deps.
breaking() {
  local branch base dir=build/breaking-base
  branch=$(git symbolic-ref --short -q HEAD 2>/dev/null || echo "(detached)")
  if [[ $branch == main ]]; then
    # On main itself (CI), the last commit must not break the contract of the one before it.
    base=HEAD~1
    if ! git rev-parse --verify -q "$base" >/dev/null; then
      echo "on main with a single commit: nothing to compare against, skipped"
      return 0
    fi
  elif git rev-parse --verify -q refs/heads/main >/dev/null; then
    base=main
  elif git rev-parse --verify -q refs/remotes/origin/main >/dev/null; then
    base=origin/main
  else
    echo "no main branch in this repository: skipped"
    return 0
  fi
  if ! git cat-file -e "$base:buf.yaml" 2>/dev/null; then
    echo "$base has no buf.yaml: skipped"
    return 0
  fi
  rm -rf "$dir" && mkdir -p "$dir/build" || return 1
  git archive "$base" -- buf.yaml proto | tar -x -C "$dir" || return 1
  cp -R build/proto-deps "$dir/build/" || return 1
  echo "comparing proto/ with $base"
  .venv/bin/buf breaking --against "$dir"
}

# pytest on several processes (pytest-xdist; tests/harness/parallel.py): one per core, at most
# four (each starts its own server, database and, when asked, Redis Cluster, RabbitMQ, Chromium).
# TESSERA_TEST_PROCESSES=1, or `-n 0` in the arguments, runs it in one process.
test_processes() {
  local wanted=${TESSERA_TEST_PROCESSES:-}
  if [[ -z $wanted ]]; then
    wanted=$(nproc 2>/dev/null || echo 1)
    ((wanted > 4)) && wanted=4
  fi
  echo "$wanted"
}

run_pytest() {
  local processes
  processes=$(test_processes)
  if ((processes > 1)); then
    set -- -n "$processes" "$@"
  fi
  .venv/bin/pytest -q "$@"
  pytest_status=$?
  return "$pytest_status"
}

run_step lint make --no-print-directory lint
run_step check-gen make --no-print-directory check-gen
run_step "buf breaking" breaking
run_step "openapi lint" node_modules/.bin/redocly lint --format=stylish gen/openapi/tessera.openapi.yaml
run_step pytest run_pytest "$@"

printf '\n%s=== summary%s\n' "$bold" "$plain"
printf '  %s\n' "${summary[@]}"
if ((pytest_status != 0)); then
  exit "$pytest_status"
fi
exit "$failed"
