#!/usr/bin/env bash
# `make bench`: throughput and peak memory of `snapwatch scan` on a generated CloudTrail mix,
# next to the time serde_json needs merely to parse the same bytes and to the floor (grep -F,
# jq, a Python json.loads filter selecting the consumed events), at two input sizes so that flat
# memory can be seen.
set -euo pipefail
cd "$(dirname "$0")/../.."
records=${BENCH_RECORDS:-1000000}
dir=${BENCH_DIR:-bench-data}
mkdir -p "$dir"
command -v /usr/bin/time >/dev/null || { echo "bench: /usr/bin/time is missing (apt-get install time)"; exit 1; }

cargo build -q --release -p snapwatch-cli --bin snapwatch --example gen_cloudtrail --example parse_baseline
bin=target/release

# The floor: the least any detector must do is find the lines that name a consumed event. Three
# references select the records carrying a consumed AWS eventName, side by side with snapwatch
# on the same file: `grep -F` with the names as fixed patterns, `jq` selecting on .eventName, and
# Python parsing every line with json.loads. snapwatch searches the names of all three clouds.
names="$dir/consumed-aws.txt"
"$bin/snapwatch" consumed aws | python3 -c 'import json, sys; print("\n".join(e["eventName"] for e in json.load(sys.stdin)))' >"$names"
python_filter='
import json, sys
names = set(open(sys.argv[1]).read().split())
kept = 0
with open(sys.argv[2], "rb") as f:
    for line in f:
        if json.loads(line).get("eventName") in names:
            kept += 1
print(kept)
'

# `timed OUT CMD...`: runs CMD with stdout to OUT (never /dev/null: GNU grep stops at the first
# match when it sees /dev/null); sets `secs` and `peak_kb`.
timed() {
  local out=$1
  shift
  /usr/bin/time -f "%e %M" -o "$dir/time.txt" "$@" >"$out" 2>"$dir/cmd.log"
  read -r secs peak_kb <"$dir/time.txt"
}

median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }

for n in $((records / 4)) "$records"; do
  file="$dir/cloudtrail-$n.jsonl"
  [ -f "$file" ] || "$bin/examples/gen_cloudtrail" "$n" "$file"
  size=$(stat -L -c %s "$file")
  echo "== $n records, $((size / 1000000)) MB"
  base=$("$bin/examples/parse_baseline" "$file")
  echo "serde_json parse only (IgnoredAny): $base"
  # snapwatch and grep alternate, three runs each, so that both see the same machine load.
  scan_runs=() grep_runs=()
  for _ in 1 2 3; do
    timed "$dir/findings.jsonl" "$bin/snapwatch" scan --format jsonl "$file"
    scan_runs+=("$secs")
    scan_peak_kb=$peak_kb
    cp "$dir/cmd.log" "$dir/scan.log"
    timed "$dir/grep.out" grep -F -f "$names" "$file"
    grep_runs+=("$secs")
  done
  scan_secs=$(median "${scan_runs[@]}")
  grep_secs=$(median "${grep_runs[@]}")
  base_secs=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$base")
  findings=$(wc -l <"$dir/findings.jsonl")
  python3 - "$n" "$scan_secs" "$scan_peak_kb" "$base_secs" "$findings" "$size" <<'PY'
import sys
n, secs, peak_kb, base, findings, size = int(sys.argv[1]), max(float(sys.argv[2]), 0.01), int(sys.argv[3]), max(float(sys.argv[4]), 0.001), int(sys.argv[5]), int(sys.argv[6])
print(f"snapwatch scan (median of 3): {secs:.2f} s, {n/secs:,.0f} records/s, {size/1e6/secs:.0f} MB/s, peak RSS {peak_kb/1024:.1f} MiB, "
      f"{findings} findings, {secs/base:.2f}x the parse-only time")
PY
  tail -n 2 "$dir/scan.log"
  ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / max(float(sys.argv[2]), 0.01):.2f}')" "$scan_secs" "$1"; }
  echo "grep -F, $(wc -l <"$names") names (median of 3): ${grep_secs} s, $(wc -l <"$dir/grep.out") lines; snapwatch/grep = $(ratio "$grep_secs")x"
  if command -v jq >/dev/null; then
    timed "$dir/jq.out" jq -c -n --rawfile names "$names" \
      '($names | split("\n") | map(select(. != "") | {key: ., value: true}) | from_entries) as $set
       | inputs | select($set[.eventName | tostring] == true)' "$file"
    echo "jq: ${secs} s, $(wc -l <"$dir/jq.out") records; snapwatch/jq = $(ratio "$secs")x"
  else
    echo "jq: not installed, skipped (apt-get install -y jq)"
  fi
  timed "$dir/python.out" python3 -c "$python_filter" "$names" "$file"
  echo "python json.loads: ${secs} s, $(cat "$dir/python.out") records; snapwatch/python = $(ratio "$secs")x"
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
