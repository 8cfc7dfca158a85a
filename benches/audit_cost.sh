#!/usr/bin/env bash
# What the audit trail costs (issue 18, item 2; docs/BENCHMARKS.md, "The audit
# trail's cost (issue 18)"), end to end on one fresh data directory:
#
#   benches/audit_cost.sh [OUT_DIR]
#
# 1. GetAnnualUsage at 4 connections x 16 in flight, 10,000 patients, 3 runs
#    of 10 s: each run's ratio to its own wire ceiling (health Check at the
#    same concurrency). Target: >= 0.60 x.
# 2. One client, one request at a time: settle p50, 3 runs, and the health
#    p50 of the same runs. Target: <= 0.50 ms.
# 3. Disk: before and after each of the two phases the server is stopped and
#    the trail measured: records (`medassist audit verify`, which also checks
#    the chain) and bytes of `audit/` in the data directory; the difference
#    in bytes over the difference in records is the trail's cost per call.
#    Every bench invocation first loads its 10,000 patients (one UpsertPerson
#    call, so one record, each), so the phases' records mix those with the
#    measured calls; benches/audit_frames.py splits the trail by call.
#
# The server runs in open mode on loopback (principal `open`): a token's
# principal (`token:` + 16 hex digits) and its name make each record longer
# by about the length of those strings. Takes about 3 minutes after the build.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-$(mktemp -d /tmp/medassist-audit-cost.XXXXXX)}
mkdir -p "$out"
port=50181
target="http://127.0.0.1:$port"
bin=${CARGO_TARGET_DIR:-target}/release/medassist
data="$out/data"
cargo build --release --quiet

server_pid=""
start_server() { # LOG
    "$bin" serve --listen "127.0.0.1:$port" --http-listen off --data-dir "$data" >"$1" 2>&1 &
    server_pid=$!
    until grep -q "serving addr" "$1" 2>/dev/null; do
        kill -0 "$server_pid" 2>/dev/null || { cat "$1"; exit 1; }
        sleep 0.05
    done
}
stop_server() {
    kill -INT "$server_pid"
    wait "$server_pid" || true
}
trail() { # -> "records bytes" of the stopped server's audit trail
    local records
    records=$("$bin" audit verify --data-dir "$data" |
        sed -n 's/.*: \([0-9]*\) records checked.*/\1/p')
    echo "${records:-0} $(du -sb "$data/audit" | cut -f1)"
}
bench() { # JSON ARGS...
    local json=$1
    shift
    "$bin" bench --target "$target" --patients 10000 --duration 10s --warmup 2s --runs 3 \
        --json "$out/$json" "$@"
}
per_run() { # JSON SCENARIO -> one line per run, then the medians
    python3 - "$out/$1" "$2" <<'PY'
import json, statistics, sys
phases = json.load(open(sys.argv[1]))["phases"]
want = sys.argv[2]
health = [p for p in phases if p["scenario"] == "health"]
scen = [p for p in phases if p["scenario"] == want]
rows = []
for run, (h, s) in enumerate(zip(health, scen), 1):
    rows.append((s["throughput"], h["throughput"], s["ratio_to_ceiling"],
                 s["p50_us"], h["p50_us"], s["p99_us"]))
    print(f"  run {run}: {want} {s['throughput']:.0f}/s, ceiling {h['throughput']:.0f}/s, "
          f"ratio {s['ratio_to_ceiling']:.2f} x; {want} p50 {s['p50_us']} us "
          f"(p99 {s['p99_us']} us), health p50 {h['p50_us']} us")
m = [statistics.median(r[i] for r in rows) for i in range(6)]
print(f"  median: {want} {m[0]:.0f}/s, ceiling {m[1]:.0f}/s, ratio {m[2]:.2f} x; "
      f"{want} p50 {m[3]:.0f} us (p99 {m[5]:.0f} us), health p50 {m[4]:.0f} us")
PY
}
cost() { # NAME BEFORE AFTER -> bytes per call and per million calls
    read -r r0 b0 <<<"$2"
    read -r r1 b1 <<<"$3"
    echo "  $1: $((r1 - r0)) records, $((b1 - b0)) bytes of audit/:" \
        "$(( (b1 - b0) / (r1 - r0) )) bytes per call," \
        "$(( (b1 - b0) * 1000000 / (r1 - r0) / 1000000 )) MB per million calls"
}

echo "== $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $("$bin" --version); reports in $out"
rm -rf "$data"
start_server "$out/server-0.log"
stop_server
before=$(trail)

echo "== 1. GetAnnualUsage, 4 x 16, 10,000 patients (target >= 0.60 x the wire ceiling)"
start_server "$out/server-usage.log"
bench usage.json --connections 4 --in-flight 16 --scenario usage
stop_server
after_usage=$(trail)
per_run usage.json usage

echo "== 2. one client, one request at a time: settle (target p50 <= 0.50 ms)"
start_server "$out/server-settle.log"
bench settle.json --connections 1 --in-flight 1 --scenario settle
stop_server
after_settle=$(trail)
per_run settle.json settle

echo "== 3. the audit trail on disk"
cost "usage phase (10,000 upserts + GetAnnualUsage)" "$before" "$after_usage"
cost "settle phase (10,000 upserts + Settle)" "$after_usage" "$after_settle"
cost "both" "$before" "$after_settle"
python3 benches/audit_frames.py "$data" | tee "$out/frames.txt"
echo "  data directory: $(du -sb "$data" | cut -f1) bytes (audit/ $(du -sb "$data/audit" | cut -f1)," \
    "journal $(du -sb "$data"/journal* 2>/dev/null | awk '{ n += $1 } END { print n + 0 }'))"
