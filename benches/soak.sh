#!/usr/bin/env bash
# The soak of issue #12: a real server under mixed settle, usage and reverse
# load from several clients that also cancel requests and drop connections
# mid-request, for a long time; then every acknowledged write must be there,
# `verify` must pass, and memory and open files must have stayed flat.
#
#   benches/soak.sh [DURATION] [OUT_DIR]        # DURATION defaults to 10m
#
# Environment: MEDASSIST_BIN (a built binary; default: build release),
# SOAK_CLIENTS (8), SOAK_RATE (requests/s, 400), SOAK_SAMPLE (seconds, 5).
#
# OUT_DIR (default: a fresh directory under /tmp) receives samples.csv
# (elapsed_s,rss_kib,fds,threads,settlements every SOAK_SAMPLE seconds), soak.json (the
# driver's report), server.log, metrics.txt and summary.txt.
#
# Fails when: an acknowledged settlement or reversal is missing or
# different, `verify` fails, shutdown takes more than 10 s, open files grow
# by more than 2 per client after the warm-up (the first minute, or the
# first third of a shorter run), resident memory grows after the warm-up by
# more than a quarter beyond what the data stored meanwhile explains (the
# embedded store keeps page state in memory for what it stores: at most
# STORE_KIB_PER_SETTLEMENT, 1 KiB, per settlement; docs/BENCHMARKS.md, growth),
# or the server logs a warning or error the list below does not explain.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${1:-10m}
out=${2:-$(mktemp -d /tmp/medassist-soak.XXXXXX)}
mkdir -p "$out"
clients=${SOAK_CLIENTS:-8}
rate=${SOAK_RATE:-400}
every=${SOAK_SAMPLE:-5}
if [ -z "${MEDASSIST_BIN:-}" ]; then
    cargo build --release --quiet
    MEDASSIST_BIN="${CARGO_TARGET_DIR:-target}/release/medassist"
fi
bin=$MEDASSIST_BIN

# Warnings the server may log during a soak, and why they are expected:
# none yet. Add a pattern here only with its explanation.
explained='^$'

data="$out/data"
rm -rf "$data"
"$bin" serve --listen 127.0.0.1:0 --http-listen off --data-dir "$data" --metrics-listen 127.0.0.1:0 \
    >"$out/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 300); do
    addr=$(sed -n 's/.*serving addr=\([0-9.:]*\).*/\1/p' "$out/server.log")
    [ -n "$addr" ] && break
    sleep 0.1
done
[ -n "$addr" ] || { cat "$out/server.log"; exit 1; }
metrics=$(sed -n 's/.*serving metrics at \/metrics addr=\([0-9.:]*\).*/\1/p' "$out/server.log")

sample() {
    local start=$1
    echo "elapsed_s,rss_kib,fds,threads,settlements" >"$out/samples.csv"
    while kill -0 "$server" 2>/dev/null; do
        local rss threads fds stored
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$server/status" 2>/dev/null) || break
        threads=$(awk '/^Threads:/ {print $2}' "/proc/$server/status" 2>/dev/null) || break
        fds=$(ls "/proc/$server/fd" 2>/dev/null | wc -l)
        stored=$(curl -s "http://$metrics/metrics" 2>/dev/null |
            awk '/^medassist_settlements_total/ { n += $2 } END { print n + 0 }')
        echo "$(($(date +%s) - start)),$rss,$fds,$threads,$stored" >>"$out/samples.csv"
        sleep "$every"
    done
}
sample "$(date +%s)" &
sampler=$!

status=0
"$bin" soak --target "http://$addr" --clients "$clients" --rate "$rate" \
    --duration "$duration" --json "$out/soak.json" >/dev/null || status=$?
[ -n "$metrics" ] && curl -s "http://$metrics/metrics" >"$out/metrics.txt" 2>/dev/null || true

stop_started=$(date +%s%N)
kill -TERM "$server"
wait "$server" || status=1
trap - EXIT
stop_ms=$((($(date +%s%N) - stop_started) / 1000000))
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true

"$bin" verify --data-dir "$data" >"$out/verify.txt" || status=1

{
    echo "soak of $duration, $clients clients at $rate requests/s"
    echo "driver exit: $status; shutdown took ${stop_ms} ms"
    cat "$out/verify.txt"
    # Flatness: compare every sample after the warm-up with the first one
    # after it.
    awk -F, -v clients="$clients" -v per_settlement="${STORE_KIB_PER_SETTLEMENT:-1}" '
        NR == 1 { next }
        { t[NR] = $1; rss[NR] = $2; fds[NR] = $3; stored[NR] = $5; last = NR; end = $1 }
        END {
            warm = (end >= 180) ? 60 : int(end / 3)
            for (i = 2; i <= last; i++) if (t[i] >= warm) { base = i; break }
            if (!base) { print "too few samples"; exit 1 }
            maxrss = rss[base]; minrss = rss[base]; maxfd = fds[base]; unexplained = 0
            for (i = base; i <= last; i++) {
                if (rss[i] > maxrss) maxrss = rss[i]
                if (rss[i] < minrss) minrss = rss[i]
                if (fds[i] > maxfd) maxfd = fds[i]
                beyond = rss[i] - rss[base] - per_settlement * (stored[i] - stored[base])
                if (beyond > unexplained) unexplained = beyond
            }
            printf "samples: %d over %d s; warm-up %d s\n", last - 1, end, warm
            printf "rss_kib: at warm-up %d, min %d, max %d, last %d (growth after warm-up %.1f%%)\n", \
                rss[base], minrss, maxrss, rss[last], 100 * (maxrss - rss[base]) / rss[base]
            printf "fds: at warm-up %d, max %d, last %d\n", fds[base], maxfd, fds[last]
            bad = 0
            if (maxfd - fds[base] > 2 * clients) { print "FAIL: open files grew"; bad = 1 }
            printf "settlements stored after warm-up: %d; growth beyond %d KiB each: %d KiB (%.1f%%)\n", \
                stored[last] - stored[base], per_settlement, unexplained, 100 * unexplained / rss[base]
            if (unexplained > 0.25 * rss[base]) { print "FAIL: resident memory grew beyond what the stored data explains"; bad = 1 }
            exit bad
        }' "$out/samples.csv" || status=1
    if [ "$stop_ms" -gt 10500 ]; then echo "FAIL: shutdown took ${stop_ms} ms"; status=1; fi
    unexplained=$(grep -E ' (WARN|ERROR) ' "$out/server.log" | grep -vE "$explained" \
        | grep -v 'serving WITHOUT authentication' || true)
    if [ -n "$unexplained" ]; then
        echo "FAIL: unexplained warnings or errors in the log:"
        echo "$unexplained" | head -20
        status=1
    fi
    grep -E '^medassist_(connections|requests_rejected)' "$out/metrics.txt" 2>/dev/null || true
    [ -f "$out/soak.json" ] && cat "$out/soak.json"
    echo "result: $([ "$status" = 0 ] && echo PASS || echo FAIL); files in $out"
} | tee "$out/summary.txt"
exit "$status"
