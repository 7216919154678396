#!/usr/bin/env bash
# `make bench`: throughput and peak memory of `snapwatch scan` on a generated CloudTrail mix,
# next to the time serde_json needs merely to parse the same bytes, at two input sizes so that
# flat memory can be seen.
set -euo pipefail
cd "$(dirname "$0")/../.."
records=${BENCH_RECORDS:-1000000}
dir=${BENCH_DIR:-bench-data}
mkdir -p "$dir"
command -v /usr/bin/time >/dev/null || { echo "bench: /usr/bin/time is missing (apt-get install time)"; exit 1; }

cargo build -q --release -p snapwatch-cli --bin snapwatch --example gen_cloudtrail --example parse_baseline
bin=target/release
for n in $((records / 4)) "$records"; do
  file="$dir/cloudtrail-$n.jsonl"
  [ -f "$file" ] || "$bin/examples/gen_cloudtrail" "$n" "$file"
  size=$(stat -c %s "$file")
  echo "== $n records, $((size / 1000000)) MB"
  base=$("$bin/examples/parse_baseline" "$file")
  echo "serde_json parse only (IgnoredAny): $base"
  /usr/bin/time -f "%e %M" -o "$dir/time.txt" "$bin/snapwatch" scan --format jsonl "$file" >"$dir/findings.jsonl" 2>"$dir/scan.log"
  read -r secs peak_kb <"$dir/time.txt"
  base_secs=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$base")
  findings=$(wc -l <"$dir/findings.jsonl")
  python3 - "$n" "$secs" "$peak_kb" "$base_secs" "$findings" "$size" <<'PY'
import sys
n, secs, peak_kb, base, findings, size = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
print(f"snapwatch scan: {secs:.2f} s, {n/secs:,.0f} records/s, {size/1e6/secs:.0f} MB/s, peak RSS {peak_kb/1024:.1f} MiB, "
      f"{findings} findings, {secs/base:.2f}x the parse-only time")
PY
  tail -n 2 "$dir/scan.log"
done

# ---- input layouts: a top-level array, a one-line `{"Records":[...]}` file (the CloudTrail S3
# shape) and concatenated pretty-printed documents, at the same two sizes. Time should grow
# linearly (4x records, about 4x seconds) and peak RSS stay flat: containers are streamed.
bench_layout() {
  local layout=$1 n=$2
  local file="$dir/cloudtrail-$n.$layout.json"
  [ -f "$file" ] || "$bin/examples/gen_cloudtrail" "$n" "$file" "$layout"
  local size
  size=$(stat -c %s "$file")
  /usr/bin/time -f "%e %M" -o "$dir/time.txt" "$bin/snapwatch" scan --format jsonl "$file" >"$dir/findings.jsonl" 2>"$dir/scan.log"
  local secs peak_kb
  read -r secs peak_kb <"$dir/time.txt"
  python3 - "$layout" "$n" "$secs" "$peak_kb" "$(wc -l <"$dir/findings.jsonl")" "$size" <<'PY'
import sys
layout, n, secs, peak_kb, findings, size = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
print(f"{layout:8} {n:>9,} records, {size/1e6:6.0f} MB: {secs:6.2f} s, {n/max(secs, 0.01):>9,.0f} records/s, "
      f"peak RSS {peak_kb/1024:6.1f} MiB, {findings} findings")
PY
}

echo "== input layouts"
for layout in array records pretty; do
  for n in $((records / 4)) "$records"; do
    bench_layout "$layout" "$n"
  done
done

# `measure LABEL FILE RECORDS`: time, records/s and peak RSS of one scan.
measure() {
  /usr/bin/time -f "%e %M" -o "$dir/time.txt" "$bin/snapwatch" scan --format jsonl "$2" >"$dir/findings.jsonl" 2>"$dir/scan.log"
  read -r secs peak_kb <"$dir/time.txt"
  findings=$(wc -l <"$dir/findings.jsonl")
  python3 - "$1" "$3" "$secs" "$peak_kb" "$findings" <<'PY'
import sys
label, n, secs, peak_kb, findings = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
print(f"== {label}: {secs:.2f} s, {n/max(secs, 0.01):,.0f} records/s, peak RSS {peak_kb/1024:.1f} MiB, {findings} findings")
PY
  tail -n 2 "$dir/scan.log"
}

# The same mix spread over 12 months of event time: chains are judged in their own time and
# facts older than the window behind the scan's progress are dropped, so memory stays flat.
file="$dir/cloudtrail-$records-365d.jsonl"
[ -f "$file" ] || "$bin/examples/gen_cloudtrail" "$records" "$file" --days 365
measure "12-month history, $records records" "$file" "$records"

# One snapshot with many dependents (BENCH_HUB: the sizes): evaluation must stay linear.
for n in ${BENCH_HUB:-10000 50000 100000}; do
  file="$dir/hub-$n.jsonl"
  [ -f "$file" ] || "$bin/examples/gen_cloudtrail" --hub "$n" "$file"
  measure "hub with $n dependents" "$file" "$((n + 1))"
done
