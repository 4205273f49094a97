#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for FUZZ_SECONDS each (default 60) and reports, per target,
# the executions libFuzzer ran and the crashes it found (artifacts in fuzz/artifacts/<target>/).
# Needs the nightly toolchain and cargo-fuzz; installs them (rustup, cargo install --locked) when
# missing. Exits non-zero when any target crashed.
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-60}"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: installing the nightly toolchain (cargo-fuzz needs it)"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo +nightly install cargo-fuzz --locked
fi

export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target}"
cargo +nightly fuzz build -O >/dev/null

failed=0
printf '%-18s %14s %8s\n' target executions crashes
for target in $(cargo +nightly fuzz list); do
  mkdir -p "corpus/$target" "artifacts/$target"
  log="$(mktemp)"
  status=0
  cargo +nightly fuzz run -O "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || status=$?
  runs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')"
  crashes="$(find "artifacts/$target" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)"
  printf '%-18s %14s %8s\n' "$target" "$runs" "$crashes"
  if [[ $status -ne 0 || $crashes -ne 0 ]]; then
    failed=1
    tail -n 30 "$log"
  fi
  rm -f "$log"
done
exit "$failed"
