#!/usr/bin/env bash
# CPU time per thread of `spoor serve` under one load-generator run: for comparing builds when
# the machine is too busy for throughput figures (a thread's CPU per message is steadier than
# messages/s). Prints each thread name's user+system ticks (1/100 s), the server's peak RSS
# (VmHWM, kB), the load generator's result, and the log's write and fsync time histograms
# from /metrics (where a slow disk shows).
#
# Usage: bench/collector_threads.sh [serve args...]
#   SPOOR=path LOADGEN=path MODE=batch|single DURATION=10 CONNECTIONS=64 RATE=msgs/s (open loop)
#   e.g. SPOOR=target/release/spoor bench/collector_threads.sh --no-warehouse-loader
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
SPOOR="${SPOOR:-$TARGET_DIR/release/spoor}"
LOADGEN="${LOADGEN:-$TARGET_DIR/release/spoor-loadgen}"
data="$(mktemp -d /tmp/spoor-threads-XXXXXX)"
log="$data.log"
"$SPOOR" serve --json --data "$data" --listen 127.0.0.1:0 "$@" >"$log" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$data" "$log" "$data.out"' EXIT
for _ in $(seq 1 100); do grep -qs '"listening"' "$log" && break; sleep 0.05; done
port="$(grep -o '"listening":"127\.0\.0\.1:[0-9]*"' "$log" | grep -o '[0-9]*"$' | tr -d '"')"
key="$(grep -o '"writeKey":"[^"]*"' "$log" | head -n1 | cut -d'"' -f4)"
rate_args=()
[ -n "${RATE:-}" ] && rate_args=(--rate "$RATE")
"$LOADGEN" --url "http://127.0.0.1:$port" --write-key "$key" --mode "${MODE:-batch}" \
    --connections "${CONNECTIONS:-64}" --duration "${DURATION:-10}" --threads 2 \
    "${rate_args[@]}" >"$data.out"
for t in /proc/"$PID"/task/*; do
    echo "$(cat "$t/comm") $(awk '{print $14 + $15}' "$t/stat")"
done | awk '{a[$1] += $2} END {for (k in a) print k, a[k]}' | sort -k2 -nr
echo "peak_rss_kb $(awk '/VmHWM/ {print $2}' "/proc/$PID/status")"
cat "$data.out"
echo
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^spoor_log_(write|fsync)_seconds_(bucket|count)' || true
kill -TERM "$PID"
wait "$PID" || true
