#!/usr/bin/env bash
# This tree against a baseline build, measured in the same run on this
# machine (docs/BENCHMARKS.md, "The audit trail and the base copy"):
#
#   benches/baseline.sh [ROUNDS] [SETTLEMENTS]      (defaults: 3, 300000)
#
# Each round runs the baseline build, then this tree's, on fresh stores:
#  1. the wire ceiling (health Check) and GetAnnualUsage at 4 connections x
#     16 in flight, and the usage ratio to the ceiling of the same phase;
#  2. settle at 4 x 16, then one client one request at a time: throughput
#     and p50 (10 s each, 10,000 patients);
#  3. fill to SETTLEMENTS settlements, then the data directory's size and,
#     for this tree, the audit trail's bytes per call;
#  4. restart to serving after a clean stop, and after kill -9 (for this
#     tree: a rebuild from the base copy and the journal);
#  5. the base copies written meanwhile (count and seconds, from /metrics).
# Each round prints its figures and this tree's ratio to the baseline; the
# last lines are the medians of those ratios. BASELINE names the commit to
# compare with (default: the last one before the base copy and the audit
# trail). Building it takes a few minutes the first time (kept in
# /tmp/medassist-baseline); BASELINE_BIN names a baseline binary built
# already (a release build of BASELINE) and skips that build.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-3}
settlements=${2:-300000}
baseline_rev=${BASELINE:-fd7ae71}
out=$(mktemp -d /tmp/medassist-baseline.XXXXXX)
port=50171
metrics_port=$((port + 1))

cargo build --release --quiet
tree_bin=target/release/medassist
baseline_bin=${BASELINE_BIN:-/tmp/medassist-baseline-target/release/medassist}
if [ -z "${BASELINE_BIN:-}" ]; then
    base_src=/tmp/medassist-baseline
    if [ ! -d "$base_src" ]; then
        git worktree add --detach "$base_src" "$baseline_rev" >/dev/null
    fi
    (cd "$base_src" && git checkout --quiet --detach "$baseline_rev" &&
        cargo build --release --quiet --target-dir /tmp/medassist-baseline-target)
fi

server_pid=""
started_ms=""
start_server() { # BIN DATA_DIR LOG -> sets server_pid, and started_ms to the milliseconds to serving
    local begin
    begin=$(date +%s%N)
    "$1" serve --listen "127.0.0.1:$port" --http-listen 127.0.0.1:0 --data-dir "$2" --metrics-listen "127.0.0.1:$metrics_port" \
        --drain 0s >"$3" 2>&1 &
    server_pid=$!
    until grep -q "serving addr" "$3" 2>/dev/null; do
        kill -0 "$server_pid" 2>/dev/null || { cat "$3" >&2; exit 1; }
        sleep 0.01
    done
    started_ms=$(( ($(date +%s%N) - begin) / 1000000 ))
}
stop_server() { kill -INT "$server_pid"; wait "$server_pid" || true; }
kill_server() { kill -9 "$server_pid"; wait "$server_pid" 2>/dev/null || true; }
metric() { # NAME -> summed value of the metric's samples
    curl -s "127.0.0.1:$metrics_port/metrics" | awk -v m="$1" '$1 ~ "^"m { n += $2 } END { print n + 0 }'
}
bench() { # BIN JSON ARGS...
    local bin=$1 json=$2
    shift 2
    "$bin" bench --target "http://127.0.0.1:$port" --duration 10s --warmup 2s --runs 1 \
        --patients 10000 --json "$json" "$@" >/dev/null
}
figure() { # JSON SCENARIO FIELD -> throughput, p50 or ratio to the ceiling
    python3 -c "
import json, sys
s = [x for x in json.load(open(sys.argv[1]))['summary'] if x['scenario'] == sys.argv[2]][0]
print({'tp': s['throughput'], 'p50': s['p50_us'], 'ratio': s['ratio_to_ceiling']}[sys.argv[3]])
" "$1" "$2" "$3"
}

measure() { # NAME BIN -> one line of figures
    local name=$1 bin=$2 dir="$out/$1-data" log="$out/$1.log"
    rm -rf "$dir"
    start_server "$bin" "$dir" "$log"
    bench "$bin" "$out/$name-usage.json" --scenario usage
    bench "$bin" "$out/$name-load.json" --scenario settle
    bench "$bin" "$out/$name-one.json" --connections 1 --in-flight 1 --scenario settle
    while [ "$(metric medassist_settlements_total)" -lt "$settlements" ]; do
        "$bin" bench --target "http://127.0.0.1:$port" --duration 10s --warmup 0s --runs 1 \
            --patients 100000 --scenario settle >/dev/null
    done
    local bases base_seconds
    bases=$(metric 'medassist_store_base_copies_total')
    base_seconds=$(metric 'medassist_store_base_copy_duration_seconds_sum')
    stop_server
    local disk audit records clean unclean
    disk=$(du -sb "$dir" | cut -f1)
    audit=$(du -sb "$dir/audit" 2>/dev/null | cut -f1 || echo 0)
    # The baseline has no trail (and no `audit verify`): 0 records.
    records=$("$bin" audit verify --data-dir "$dir" 2>/dev/null |
        sed -n 's/.*: \([0-9]*\) records checked.*/\1/p' || true)
    # Not in a $(...): that subshell would keep server_pid from the kill below.
    start_server "$bin" "$dir" "$log.clean"
    clean=$started_ms
    # Settles after the restart, so the kill -9 below interrupts a live store.
    "$bin" bench --target "http://127.0.0.1:$port" --duration 2s --warmup 0s --runs 1 \
        --patients 10000 --scenario settle >/dev/null
    kill_server
    start_server "$bin" "$dir" "$log.unclean"
    unclean=$started_ms
    stop_server
    echo "$(figure "$out/$name-usage.json" usage ratio) $(figure "$out/$name-load.json" settle tp)" \
        "$(figure "$out/$name-one.json" settle p50) $disk $clean $unclean $bases $base_seconds" \
        "$(( audit / (${records:-0} > 0 ? ${records:-0} : 1) ))"
}

echo "== $(nproc) cores; baseline $baseline_rev against $(git rev-parse --short HEAD); $settlements settlements; figures in $out"
printf '%-6s %-8s %10s %10s %10s %14s %9s %10s %6s %8s %12s\n' round build "usage/ceil" "4x16 tp/s" \
    "1c p50 µs" "disk bytes" "clean ms" "unclean ms" bases "base s" "audit B/call"
ratios=()
for round in $(seq "$rounds"); do
    read -r b_usage b_tp b_p50 b_disk b_clean b_unclean b_bases b_secs b_audit <<<"$(measure baseline "$baseline_bin")"
    read -r t_usage t_tp t_p50 t_disk t_clean t_unclean t_bases t_secs t_audit <<<"$(measure tree "$tree_bin")"
    for row in "baseline $b_usage $b_tp $b_p50 $b_disk $b_clean $b_unclean $b_bases $b_secs $b_audit" \
               "tree $t_usage $t_tp $t_p50 $t_disk $t_clean $t_unclean $t_bases $t_secs $t_audit"; do
        # shellcheck disable=SC2086
        printf '%-6s %-8s %10.2f %10.0f %10s %14s %9s %10s %6s %8.1f %12s\n' "$round" $row
    done
    ratios+=("$(python3 -c "import sys; b=list(map(float,sys.argv[1:7])); t=list(map(float,sys.argv[7:13])); print(' '.join(f'{x/y:.2f}' for x,y in zip(t,b)))" \
        "$b_usage" "$b_tp" "$b_p50" "$b_disk" "$b_clean" "$b_unclean" \
        "$t_usage" "$t_tp" "$t_p50" "$t_disk" "$t_clean" "$t_unclean")")
    echo "       tree/baseline: ${ratios[-1]}"
done
python3 - "${ratios[@]}" <<'PY'
import statistics, sys
rows = [list(map(float, r.split())) for r in sys.argv[1:]]
names = ["usage ratio to ceiling", "4x16 settle throughput", "one-client settle p50", "disk",
         "clean restart", "unclean restart"]
for i, name in enumerate(names):
    print(f"median tree/baseline, {name}: {statistics.median(r[i] for r in rows):.2f}")
PY
