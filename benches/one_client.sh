#!/usr/bin/env bash
# One client, one request at a time: the settle p50 of several builds, side
# by side in one run (docs/BENCHMARKS.md, "One client's settle"):
#
#   benches/one_client.sh ROUNDS BIN...
#
# e.g. `benches/one_client.sh 5 target/release/medassist
# /tmp/medassist-baseline-target/release/medassist` (that second binary is
# the build before the audit trail, which benches/baseline.sh makes).
# Each round runs every BIN in turn on a fresh data directory, twice:
#  fresh       one client (health, settle, pre-settle), 5 s after 1 s warm-up;
#  after load  a 4 x 16 settle load of 10 s first (about 100,000 settlements
#              here), then the same one-client phases, 3 runs, medians.
# It prints each p50 with the health round trip of the same phase, then the
# median of each build's p50s and of their ratios to the first BIN's.
set -euo pipefail

rounds=$1
shift
port=50211
out=$(mktemp -d /tmp/medassist-one-client.XXXXXX)

one() { # BIN PROTOCOL -> "health_p50 settle_p50"; runs in $(...), a subshell of its own
    local bin=$1 protocol=$2 dir="$out/data" log="$out/server.log"
    rm -rf "$dir"
    "$bin" serve --listen "127.0.0.1:$port" --http-listen 127.0.0.1:0 --data-dir "$dir" \
        --drain 0s >"$log" 2>&1 &
    server=$!
    # The subshell's own trap: a failed phase does not leave the server running.
    trap 'kill "$server" 2>/dev/null || true' EXIT
    # `medassist bench` waits for a server that is starting.
    local runs=1
    if [ "$protocol" = "after-load" ]; then
        "$bin" bench --target "http://127.0.0.1:$port" --scenario settle --duration 10s \
            --warmup 2s --runs 1 >/dev/null
        runs=3
    fi
    "$bin" bench --target "http://127.0.0.1:$port" --connections 1 --in-flight 1 \
        --scenario settle --scenario presettle --duration 5s --warmup 1s \
        --runs "$runs" --json "$out/one.json" >/dev/null
    kill -INT "$server"
    wait "$server" || true
    python3 -c "
import json, sys
p50 = {s['scenario']: s['p50_us'] for s in json.load(open(sys.argv[1]))['summary']}
print(p50['health'], p50['settle'])" "$out/one.json"
}

results="$out/results"
: >"$results"
printf '%-6s %-11s %-50s %10s %10s\n' round protocol build "health µs" "settle µs"
for round in $(seq "$rounds"); do
    for protocol in fresh after-load; do
        for bin in "$@"; do
            read -r health settle <<<"$(one "$bin" "$protocol")"
            printf '%-6s %-11s %-50s %10s %10s\n' "$round" "$protocol" "$bin" "$health" "$settle"
            echo "$round $protocol $bin $settle" >>"$results"
        done
    done
done
python3 - "$results" "$@" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
bins = sys.argv[2:]
for protocol in ("fresh", "after-load"):
    p50 = {b: {int(r[0]): float(r[3]) for r in rows if r[1] == protocol and r[2] == b} for b in bins}
    for b in bins:
        ratios = [p50[b][k] / p50[bins[0]][k] for k in p50[b]]
        print(f"{protocol:10} {b}: median settle p50 {statistics.median(p50[b].values()):.0f} µs, "
              f"median ratio to the first build {statistics.median(ratios):.2f}")
PY
rm -rf "$out/data"
