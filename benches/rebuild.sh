#!/usr/bin/env bash
# What the base copy (docs/BENCHMARKS.md, "Power-cut recovery") costs, against
# the build before it, measured in the same run on this machine:
#
#   benches/rebuild.sh [ROUNDS] [SETTLEMENTS]      (defaults: 3, 300000)
#
# Each round runs the baseline build, then this tree's, on fresh stores:
#  1. settle at 4 connections x 16 in flight, then one client at a time
#     (10 s each, 10,000 patients): throughput and p50;
#  2. fill to SETTLEMENTS settlements (4 x 16), then the data directory's size;
#  3. restart to serving after a clean stop, and after kill -9 (for this
#     tree: a rebuild from the base copy and the journal);
#  4. the base copies written meanwhile (count and seconds, from /metrics).
# Each round prints its figures and this tree's ratio to the baseline; the
# last lines are the medians of those ratios. BASELINE names the commit to
# compare with (default: the last one before the base copy). Building it
# takes a few minutes the first time (kept in /tmp/medassist-baseline).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-3}
settlements=${2:-300000}
baseline_rev=${BASELINE:-fd7ae71}
out=$(mktemp -d /tmp/medassist-rebuild.XXXXXX)
port=50171
metrics_port=$((port + 1))

cargo build --release --quiet
tree_bin=target/release/medassist
base_src=/tmp/medassist-baseline
if [ ! -d "$base_src" ]; then
    git worktree add --detach "$base_src" "$baseline_rev" >/dev/null
fi
(cd "$base_src" && git checkout --quiet --detach "$baseline_rev" &&
    cargo build --release --quiet --target-dir /tmp/medassist-baseline-target)
baseline_bin=/tmp/medassist-baseline-target/release/medassist

server_pid=""
start_server() { # BIN DATA_DIR LOG -> prints milliseconds to serving
    local begin
    begin=$(date +%s%N)
    "$1" serve --listen "127.0.0.1:$port" --data-dir "$2" --metrics-listen "127.0.0.1:$metrics_port" \
        --drain 0s >"$3" 2>&1 &
    server_pid=$!
    until grep -q "serving addr" "$3" 2>/dev/null; do
        kill -0 "$server_pid" 2>/dev/null || { cat "$3" >&2; exit 1; }
        sleep 0.01
    done
    echo $(( ($(date +%s%N) - begin) / 1000000 ))
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
figure() { # JSON FIELD -> the settle phase's throughput or p50
    python3 -c "import json,sys; s=[x for x in json.load(open(sys.argv[1]))['summary'] if x['scenario']=='settle'][0]; print(s['throughput'] if sys.argv[2]=='tp' else s['latency']['p50_us'])" "$1" "$2"
}

measure() { # NAME BIN -> one line of figures
    local name=$1 bin=$2 dir="$out/$1-data" log="$out/$1.log"
    rm -rf "$dir"
    start_server "$bin" "$dir" "$log" >/dev/null
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
    local disk clean unclean
    disk=$(du -sb "$dir" | cut -f1)
    clean=$(start_server "$bin" "$dir" "$log.clean")
    bench "$bin" "$out/$name-after.json" --duration 2s --warmup 0s --scenario settle
    kill_server
    unclean=$(start_server "$bin" "$dir" "$log.unclean")
    stop_server
    echo "$(figure "$out/$name-load.json" tp) $(figure "$out/$name-one.json" p50) $disk $clean $unclean $bases $base_seconds"
}

echo "== $(nproc) cores; baseline $baseline_rev against $(git rev-parse --short HEAD); $settlements settlements; figures in $out"
printf '%-8s %-6s %12s %10s %14s %10s %12s %6s %10s\n' round build "4x16 tp/s" "1c p50 µs" "disk bytes" "clean ms" "unclean ms" bases "base s"
ratios=()
for round in $(seq "$rounds"); do
    read -r b_tp b_p50 b_disk b_clean b_unclean b_bases b_secs <<<"$(measure baseline "$baseline_bin")"
    read -r t_tp t_p50 t_disk t_clean t_unclean t_bases t_secs <<<"$(measure tree "$tree_bin")"
    printf '%-8s %-6s %12.0f %10s %14s %10s %12s %6s %10s\n' "$round" baseline "$b_tp" "$b_p50" "$b_disk" "$b_clean" "$b_unclean" "$b_bases" "$b_secs"
    printf '%-8s %-6s %12.0f %10s %14s %10s %12s %6s %10s\n' "$round" tree "$t_tp" "$t_p50" "$t_disk" "$t_clean" "$t_unclean" "$t_bases" "$t_secs"
    ratios+=("$(python3 -c "import sys; b=list(map(float,sys.argv[1:6])); t=list(map(float,sys.argv[6:11])); print(' '.join(f'{x/y:.2f}' for x,y in zip(t,b)))" \
        "$b_tp" "$b_p50" "$b_disk" "$b_clean" "$b_unclean" "$t_tp" "$t_p50" "$t_disk" "$t_clean" "$t_unclean")")
    echo "         ratio tree/baseline: 4x16 tp ${ratios[-1]%% *} | 1c p50, disk, clean, unclean: ${ratios[-1]#* }"
done
python3 - "${ratios[@]}" <<'EOF'
import statistics, sys
rows = [list(map(float, r.split())) for r in sys.argv[1:]]
names = ["4x16 throughput", "one-client p50", "disk", "clean restart", "unclean restart"]
for i, name in enumerate(names):
    print(f"median ratio tree/baseline, {name}: {statistics.median(r[i] for r in rows):.2f}")
EOF
