#!/usr/bin/env bash
# `make fuzz` / `make fuzz-smoke`: runs every cargo-fuzz target for FUZZ_SECONDS each, seeded
# from tests/fixtures, tests/demo and tests/scenarios (and ../shared/corpus when it exists, read
# at run time, never copied into the repository). Prints execs per target; exits non-zero when
# a target finds a crash or a hang over 10 s (the input is left in fuzz/artifacts/<target>/).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-"parse_aws parse_azure parse_gcp detect input_split"}
corpus_root=${FUZZ_CORPUS:-target/fuzz-corpus}
cargo +nightly fuzz --version >/dev/null 2>&1 || {
  echo "fuzz: cargo-fuzz is missing (cargo install cargo-fuzz; needs the nightly toolchain)"; exit 1; }

seeds() {
  find tests/fixtures tests/demo tests/scenarios -type f \( -name '*.json' -o -name '*.jsonl' \)
  if [ -d ../shared/corpus ]; then
    find ../shared/corpus -type f \( -name '*.json' -o -name '*.jsonl' \) -size -1M
  fi
}

failed=0
for target in $targets; do
  dir="$corpus_root/$target"
  mkdir -p "$dir"
  # Seeds are copied into the working corpus under their content hash: reruns add nothing twice.
  while IFS= read -r file; do
    cp -n "$file" "$dir/seed-$(sha1sum "$file" | cut -c1-16)" 2>/dev/null || true
  done < <(seeds)
  log="$corpus_root/$target.log"
  if cargo +nightly fuzz run --fuzz-dir fuzz "$target" "$dir" -- \
      -max_total_time="$seconds" -timeout=10 -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed=1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 || true)
  echo "fuzz $target: $status, ${execs:-?} execs in ${seconds}s, ${cov:-cov: ?}, corpus $(ls "$dir" | wc -l)"
  if [ "$status" = FAILED ]; then
    grep -E 'panicked|ERROR|SUMMARY|artifact' "$log" | head -n 20 || true
  fi
done
exit "$failed"
