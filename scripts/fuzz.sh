#!/usr/bin/env bash
# Coverage-guided fuzzing of Sluice's parsers: cargo-fuzz (libFuzzer) on
# the stable toolchain, without a sanitizer (docs/fuzzing.md says why).
#
#   scripts/fuzz.sh --list             the targets
#   scripts/fuzz.sh TARGET SECONDS     fuzz TARGET for SECONDS
#
# Installs the pinned cargo-fuzz when it is missing, builds the target,
# fuzzes it from the committed seeds (fuzz/corpus/TARGET, read only) and
# past failures (fuzz/regressions/TARGET) into a working corpus that
# grows from run to run (fuzz/work/TARGET, not committed), and prints
# executions, executions per second, corpus size and crashes. A crash
# stops the run: the input is kept in fuzz/artifacts/TARGET/ (not
# committed) and the script exits 1.
#
# Environment: CARGO_TARGET_DIR and CARGO_BUILD_JOBS as for cargo;
# FUZZ_WORK_DIR instead of fuzz/work.
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.2

root=$(cd "$(dirname "$0")/.." && pwd)
fuzz=$root/fuzz

targets() {
  for f in "$fuzz"/fuzz_targets/*.rs; do
    basename "$f" .rs
  done
}

usage() {
  echo "usage: $0 --list | TARGET SECONDS" >&2
  exit 2
}

if [ "${1:-}" = "--list" ]; then
  targets
  exit 0
fi
[ $# -eq 2 ] || usage
target=$1
seconds=$2
# Not `targets | grep -q`: grep leaving early fails the pipe under pipefail.
[[ " $(targets | tr '\n' ' ') " == *" $target "* ]] || { echo "$0: no target $target (--list names them)" >&2; exit 2; }
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "$0: SECONDS must be a positive whole number" >&2; exit 2; }

# The pinned cargo-fuzz, from crates.io. `--sanitizer none` below is what
# lets it run on stable.
if [ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
  cargo install --locked --force --version "$CARGO_FUZZ_VERSION" cargo-fuzz
fi
# libfuzzer-sys compiles libFuzzer, which is C++.
command -v c++ >/dev/null || { echo "$0: a C++ compiler is needed (apt-get install g++)" >&2; exit 1; }

work=${FUZZ_WORK_DIR:-$fuzz/work}/$target
artifacts=$fuzz/artifacts/$target
mkdir -p "$work" "$artifacts"
inputs=("$work" "$fuzz/corpus/$target")
[ -d "$fuzz/regressions/$target" ] && inputs+=("$fuzz/regressions/$target")

flags=(--sanitizer none --fuzz-dir "$fuzz")
cargo fuzz build "${flags[@]}" "$target"

log=$(mktemp)
started=$(mktemp)
trap 'rm -f "$log" "$started"' EXIT
crashes_before=$(find "$artifacts" -type f | wc -l)
corpus_before=$(find "$work" -type f | wc -l)
# The first directory is where libFuzzer writes what it finds; the others
# are only read. -timeout: an input that takes 10 s is a hang, a failure.
set +e
start=$(date +%s)
cargo fuzz run "${flags[@]}" "$target" "${inputs[@]}" -- \
  -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
elapsed=$(( $(date +%s) - start ))
set -e

stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
executions=$(stat number_of_executed_units)
per_second=$(stat average_exec_per_sec)
# libFuzzer reports 0 per second when a crash ends the run early.
if [ "${per_second:-0}" = 0 ] && [ -n "$executions" ] && [ "$elapsed" -gt 0 ]; then
  per_second=$(( executions / elapsed ))
fi
corpus=$(find "$work" -type f | wc -l)
seeds=$(find "${inputs[@]:1}" -type f | wc -l)
crashes=$(( $(find "$artifacts" -type f | wc -l) - crashes_before ))

echo
echo "target:      $target"
echo "seconds:     $seconds"
echo "executions:  ${executions:-unknown}"
echo "execs/s:     ${per_second:-unknown}"
echo "corpus:      $corpus inputs in ${work#"$root"/} ($((corpus - corpus_before)) new), $seeds committed"
echo "crashes:     $crashes"
if [ "$crashes" -gt 0 ]; then
  find "$artifacts" -type f -newer "$started" | sed 's/^/  /'
  echo "Minimise with: cargo fuzz tmin --sanitizer none --fuzz-dir fuzz $target FILE;"
  echo "once fixed, add it under fuzz/regressions/$target/ (replayed by cargo test)."
fi
if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
  exit 1
fi
