#!/usr/bin/env bash
# medassist on PostgreSQL against pgbench running the same settlement
# transaction (settle.sql) on the same server, in the same run:
#
#   benches/postgres/compare.sh [RUNS] [SECONDS] [OUT_DIR]
#
# Each run, in turn:
#   1. pgbench, 64 clients (the 4 connections x 16 in flight of medassist's
#      bench): transactions a second;
#   2. pgbench, 1 client: the median latency of one transaction (from its
#      per-transaction log);
#   3. one medassist instance on a fresh database: `medassist bench` 4x16
#      settle, with the requests answered per commit, then 1x1 settle (p50),
#      in pgbench's order: one client on tables the 64 have just filled;
#   4. two instances on one fresh database: two `medassist bench` processes
#      at once, 2x16 each (the same 64 in flight in all), their sum.
# pgbench runs without a warm-up; each `medassist bench` phase after a 2 s
# one. Prints each run with its ratios (medassist against pgbench, two
# instances against one, in that run), then the medians of the per-run
# figures (defaults: 3 runs of 10 s): the rows of docs/BENCHMARKS.md. Uses
# the local server (127.0.0.1:5432, trust auth) and its own databases,
# dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

runs=${1:-3}
seconds=${2:-10}
out=${3:-$(mktemp -d /tmp/medassist-pg-compare.XXXXXX)}
mkdir -p "$out"
patients=10000
export PGOPTIONS="-c client_min_messages=warning" PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
server_url="postgresql://$PGUSER@$PGHOST:$PGPORT"
cargo build --release --quiet
bin=target/release/medassist

fresh_db() { # NAME
    psql -q -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
addr=""
start_instance() { # DATABASE LOG: starts a server, sets $addr
    : >"$2"
    "$bin" serve --listen 127.0.0.1:0 --http-listen off --metrics-listen 127.0.0.1:0 \
        --database-url "$server_url/$1" --drain 0s >"$2" 2>&1 &
    pids+=($!)
    addr=""
    for _ in $(seq 300); do
        addr=$(sed -n 's/.*serving addr=\([0-9.:]*\).*/\1/p' "$2")
        [ -n "$addr" ] && return
        sleep 0.1
    done
    cat "$2" >&2
    exit 1
}
stop_instances() {
    for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; wait "$pid" || true; done
    pids=()
}
bench() { # TARGET JSON ARGS...
    local target=$1 json=$2
    shift 2
    "$bin" bench --target "http://$target" --duration "${seconds}s" --warmup 2s --runs 1 \
        --patients "$patients" --scenario settle --json "$json" "$@" >/dev/null
}
summary() { # JSON FIELD: the settle phase's FIELD
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["summary"]; print(round(next(p[sys.argv[2]] for p in s if p["scenario"]=="settle")))' "$1" "$2"
}
settle_rate() { summary "$1" throughput; }
settle_p50() { summary "$1" p50_us; }

vs_pgbench=() vs_one=() over_p50=() commits=()
for run in $(seq 1 "$runs"); do
    fresh_db medassist_bench
    psql -q -d medassist_bench -c "ALTER DATABASE medassist_bench SET synchronous_commit = on" >/dev/null
    psql -q -d medassist_bench -v patients="$patients" -f benches/postgres/schema.sql >/dev/null
    psql -q -d medassist_bench -c "CHECKPOINT" >/dev/null
    tps=$(pgbench -n -d medassist_bench -c 64 -j 2 -T "$seconds" -D patients="$patients" \
        -f benches/postgres/settle.sql 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    rm -f "$out"/pglog*
    pgbench -n -d medassist_bench -c 1 -T "$seconds" -D patients="$patients" \
        -f benches/postgres/settle.sql -l --log-prefix="$out/pglog" >/dev/null 2>&1
    p1=$(cat "$out"/pglog* | awk '{ print $3 }' | median)

    fresh_db medassist_bench_one
    start_instance medassist_bench_one "$out/one-$run.log"
    bench "$addr" "$out/one-$run.json"
    # Requests answered per commit over the roster preload and the phase.
    metrics=$(sed -n 's/.*serving metrics at \/metrics addr=\([0-9.:]*\).*/\1/p' "$out/one-$run.log")
    per_commit=$(curl -s "http://$metrics/metrics" | awk '
        /^medassist_store_flush_requests_sum/ { sum = $2 }
        /^medassist_store_flush_requests_count/ { count = $2 }
        END { printf "%.0f", sum / count }')
    bench "$addr" "$out/single-$run.json" --connections 1 --in-flight 1
    stop_instances

    fresh_db medassist_bench_two
    start_instance medassist_bench_two "$out/two-a-$run.log"
    a=$addr
    start_instance medassist_bench_two "$out/two-b-$run.log"
    b=$addr
    bench "$a" "$out/two-a-$run.json" --connections 2 &
    first=$!
    bench "$b" "$out/two-b-$run.json" --connections 2
    wait "$first"
    stop_instances
    "$bin" verify --database-url "$server_url/medassist_bench_two" >"$out/verify-two-$run.txt"

    tps=${tps%.*} one=$(settle_rate "$out/one-$run.json") p50=$(settle_p50 "$out/single-$run.json")
    two=$(( $(settle_rate "$out/two-a-$run.json") + $(settle_rate "$out/two-b-$run.json") ))
    vs_pgbench+=("$(python3 -c "print(f'{$one/$tps:.2f}')")")
    vs_one+=("$(python3 -c "print(f'{$two/$one:.2f}')")")
    over_p50+=("$(printf '%+d' $(( p50 - p1 )))") commits+=("$per_commit")
    echo "run $run: pgbench 64 clients $tps tx/s, 1 client p50 $p1 us;" \
        "medassist one instance $one settles/s = ${vs_pgbench[-1]}x pgbench ($per_commit requests" \
        "per commit), 1 client p50 $p50 us = pgbench ${over_p50[-1]} us;" \
        "two instances $two settles/s = ${vs_one[-1]}x one"
done
echo "medians over $runs runs of ${seconds} s, of each run's own figure:"
echo "  one instance, 4x16, against pgbench at 64 clients: $(printf '%s\n' "${vs_pgbench[@]}" | median)x"
echo "  two instances, 2x(2x16), against one instance:     $(printf '%s\n' "${vs_one[@]}" | median)x"
echo "  one client p50, against pgbench's one client:      $(printf '%s\n' "${over_p50[@]}" | median) us"
echo "  requests per commit, one instance:                 $(printf '%s\n' "${commits[@]}" | median)"
for db in medassist_bench medassist_bench_one medassist_bench_two; do
    psql -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
done
