#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for FUZZ_SECONDS each (default 60) and reports, per target,
# the executions libFuzzer ran and the crashes it found (artifacts in fuzz/artifacts/<target>/).
# `make fuzz` runs it; `make test` runs it with FUZZ_SECONDS=5 (a short bounded pass).
#
# cargo-fuzz is pinned (CARGO_FUZZ_VERSION in tests/harness/versions.env) and installed once from
# crates.io (`cargo install --locked`) into the version-keyed cache, like the harness's Go tools:
# $TRADING_AGENT_CACHE/bin/cargo-fuzz-<version>/. The nightly toolchain comes with the machine
# image (installed with rustup when missing). The targets build into fuzz/target/ inside the clone,
# never into a shared target dir. Exits non-zero when any target crashed.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=../tests/harness/versions.env
source "$root/tests/harness/versions.env"
seconds="${FUZZ_SECONDS:-60}"
cache="${TRADING_AGENT_CACHE:-$HOME/.cache/trading-agent}"
tool_dir="$cache/bin/cargo-fuzz-$CARGO_FUZZ_VERSION"
cargo_fuzz="$tool_dir/bin/cargo-fuzz"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: installing the nightly toolchain (cargo-fuzz needs it)"
  rustup toolchain install nightly --profile minimal
fi
if [[ ! -x "$cargo_fuzz" ]]; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION into $tool_dir"
  mkdir -p "$cache/logs"
  log="$cache/logs/cargo-fuzz-$CARGO_FUZZ_VERSION.log"
  tmp="$(mktemp -d "$cache/bin/.cargo-fuzz.XXXXXX")"
  # Its own target dir, so a CARGO_TARGET_DIR of the caller is neither used nor polluted.
  if ! CARGO_TARGET_DIR="$tmp/target" cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" \
      --locked --root "$tmp/root" >"$log" 2>&1; then
    echo "fuzz: installing cargo-fuzz failed; see $log" >&2
    tail -n 20 "$log" >&2
    rm -rf "$tmp"
    exit 1
  fi
  rm -rf "$tool_dir"
  mv "$tmp/root" "$tool_dir"
  rm -rf "$tmp"
fi

cd "$root/fuzz"
export RUSTUP_TOOLCHAIN=nightly
export CARGO_TARGET_DIR="$root/fuzz/target"
fuzz() { "$cargo_fuzz" fuzz "$@"; }
fuzz build -O >/dev/null

failed=0
total_runs=0
printf '%-18s %14s %8s\n' target executions crashes
for target in $(fuzz list); do
  mkdir -p "corpus/$target" "artifacts/$target"
  log="$(mktemp)"
  status=0
  fuzz run -O "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || status=$?
  runs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')"
  crashes="$(find "artifacts/$target" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)"
  printf '%-18s %14s %8s\n' "$target" "$runs" "$crashes"
  [[ $runs =~ ^[0-9]+$ ]] && total_runs=$((total_runs + runs))
  if [[ $status -ne 0 || $crashes -ne 0 ]]; then
    failed=1
    tail -n 30 "$log"
  fi
  rm -f "$log"
done
printf '%-18s %14s\n' total "$total_runs"
exit "$failed"
