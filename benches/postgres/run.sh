#!/usr/bin/env bash
# The PostgreSQL peer baseline for docs/BENCHMARKS.md: the settlement
# transaction of settle.sql driven by pgbench.
#
#   benches/postgres/run.sh [CLIENTS] [SECONDS] [RUNS] [PATIENTS]
#
# Defaults: 64 clients (medassist's 4 connections x 16 in flight), 10 s,
# 3 runs, 10,000 patients. Uses the local server (127.0.0.1:5432, trust
# auth) and its own database, medassist_bench. Prints each run's TPS and
# the median.
set -euo pipefail
cd "$(dirname "$0")"

clients=${1:-64}
seconds=${2:-10}
runs=${3:-3}
patients=${4:-10000}
export PGOPTIONS="-c client_min_messages=warning" PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}

psql -q -d postgres -c "DROP DATABASE IF EXISTS medassist_bench" >/dev/null
psql -q -d postgres -c "CREATE DATABASE medassist_bench" >/dev/null
psql -q -d medassist_bench -c "ALTER DATABASE medassist_bench SET synchronous_commit = on" >/dev/null
tps=()
for run in $(seq 1 "$runs"); do
    psql -q -d medassist_bench -v patients="$patients" -f schema.sql >/dev/null
    psql -q -d medassist_bench -c "CHECKPOINT" >/dev/null
    out=$(pgbench -n -d medassist_bench -c "$clients" -j 2 -T "$seconds" -D patients="$patients" -f settle.sql 2>&1)
    value=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out")
    latency=$(sed -n 's/^latency average = \(.*\)$/\1/p' <<<"$out")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
    echo "run $run: $value transactions/s, latency average $latency, failed ${failed:-0}"
    tps+=("$value")
done
median=$(printf '%s\n' "${tps[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
echo "postgresql settle, $clients clients, median of $runs: $median transactions/s"
psql -q -d postgres -c "DROP DATABASE medassist_bench" >/dev/null
