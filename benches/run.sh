#!/usr/bin/env bash
# Reproduces every figure of docs/BENCHMARKS.md on this machine:
#
#   benches/run.sh [OUT_DIR]
#
# 1. uniform load, 4 connections x 16 in flight, 10,000 patients: the wire
#    ceiling, settle, pre-settle, usage, and the store alone (sled, no network);
# 2. one client, one request at a time: settle latency;
# 3. a hot spot: all settle load on 10 patients, then `verify` (no cap overrun);
# 4. growth: settle and usage with 100,000 patients on an empty store, then
#    again with over 1,000,000 settlements stored; resident memory sampled
#    throughout, restart time, disk per settlement, `verify`;
# 5. the PostgreSQL peer baseline (benches/postgres/run.sh) at 64 clients.
#
# Every phase runs 3 times and medians are reported; JSON reports land in
# OUT_DIR (default: a fresh directory under /tmp). Takes about 20 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-$(mktemp -d /tmp/medassist-bench.XXXXXX)}
mkdir -p "$out"
port=50161
target="http://127.0.0.1:$port"
bin=target/release/medassist
cargo build --release --quiet

server_pid=""
start_server() { # DATA_DIR LOG
    "$bin" serve --listen "127.0.0.1:$port" --http-listen off --data-dir "$1" --metrics-listen 127.0.0.1:$((port + 1)) >"$2" 2>&1 &
    server_pid=$!
    until grep -q "serving addr" "$2" 2>/dev/null; do
        kill -0 "$server_pid" 2>/dev/null || { cat "$2"; exit 1; }
        sleep 0.05
    done
}
stop_server() {
    kill -INT "$server_pid"
    wait "$server_pid" || true
}
bench() { # JSON_NAME ARGS...
    local name=$1
    shift
    "$bin" bench --target "$target" --duration 10s --warmup 2s --runs 3 --json "$out/$name.json" "$@"
}
settled_total() {
    curl -s "127.0.0.1:$((port + 1))/metrics" | awk '/^medassist_settlements_total/ { n += $2 } END { print n + 0 }'
}

echo "== machine: $(nproc) cores, $(grep MemTotal /proc/meminfo | awk '{print int($2/1024)}') MiB, $(uname -r)"

echo "== 1. uniform load"
rm -rf "$out/data-uniform"
start_server "$out/data-uniform" "$out/uniform.log"
bench uniform --patients 10000 --scenario settle --scenario presettle --scenario usage --scenario store

echo "== 2. one client, one request at a time"
bench single --connections 1 --in-flight 1 --patients 10000 --scenario settle --scenario presettle

echo "== 3. hot spot: all load on 10 patients"
bench hotspot --patients 10000 --hot-patients 10 --scenario settle
stop_server
"$bin" verify --data-dir "$out/data-uniform" | tee "$out/verify-uniform.txt"

echo "== 4. growth"
rm -rf "$out/data-growth"
start_server "$out/data-growth" "$out/growth.log"
( max=0; while kill -0 "$server_pid" 2>/dev/null; do
      rss=$(ps -o rss= -p "$server_pid" 2>/dev/null | tr -d ' ' || echo 0)
      [ "${rss:-0}" -gt "$max" ] && max=$rss && echo "$max" >"$out/rss-max-kib"
      sleep 1
  done ) &
sampler=$!
echo "-- empty store, 100,000 patients"
bench growth-empty --patients 100000 --scenario settle --scenario usage
echo "-- filling to 1,000,000 settlements"
while [ "$(settled_total)" -lt 1000000 ]; do
    "$bin" bench --target "$target" --duration 10s --warmup 0s --runs 1 --patients 100000 --scenario settle >/dev/null
    echo "   $(settled_total) settlements stored"
done

echo "-- full store"
bench growth-full --patients 100000 --scenario settle --scenario usage
stored=$(settled_total)
stop_server
wait "$sampler" 2>/dev/null || true
disk=$(du -sb "$out/data-growth" | cut -f1)
echo "stored settlements: $stored; disk: $disk bytes = $((disk / stored)) bytes per settlement"
echo "max resident memory during the growth runs: $(( $(cat "$out/rss-max-kib") / 1024 )) MiB"
restarts=()
for i in 1 2 3; do
    begin=$(date +%s%N)
    start_server "$out/data-growth" "$out/restart-$i.log"
    restarts+=("$(( ($(date +%s%N) - begin) / 1000000 ))")
    stop_server
done
echo "restart to serving (ms): ${restarts[*]}; median $(printf '%s\n' "${restarts[@]}" | sort -n | sed -n 2p)"
"$bin" verify --data-dir "$out/data-growth" | tee "$out/verify-growth.txt"

echo "== 5. PostgreSQL peer baseline"
benches/postgres/run.sh 64 10 3 10000 | tee "$out/postgres.txt"

echo "== reports in $out"
