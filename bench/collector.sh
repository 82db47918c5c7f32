#!/usr/bin/env bash
# Collector benchmark: `spoor serve` with the durable store beside the same server with a null
# store, for single-message requests (/v1/track) and 100-message batches (/v1/batch), driven by
# spoor-loadgen on loopback. Prints a table of medians; raw results go to bench/out/.
#
# Three server configurations:
#   null       --store null: acknowledges without storing (the HTTP and Spec path only)
#   durable    the durable SQLite log with fsync'd group commit, --no-warehouse-loader
#              (the collector's write path, which the issue's goals are about)
#   durable+wh the default `spoor serve`: durable, and the warehouse loader deriving the
#              warehouse tables in the same process while it serves
#
# Usage: bench/collector.sh            (3 runs, 15 s per case, 64 connections)
#   RUNS=1 DURATION=5 CONNECTIONS=64 LOADGEN_THREADS=2 STORES=durable bench/collector.sh
#   SPOOR=/path/to/old/spoor LOADGEN=/path/to/spoor-loadgen bench/collector.sh   (no build)
#   RATE_FRACTION=0.5 (default) and FIXED_RATES="20000 40000": after the closed-loop batch
#   cases, each durable store is also run open-loop (spoor-loadgen --rate) at that fraction
#   of the same run's null-store rate and at each fixed rate, for the latency at a given
#   throughput (a closed loop's latency is only connections x batch / throughput).
#
# Each case gets a fresh server and data directory, so the peak RSS (VmHWM) is the case's own.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-3}"
DURATION="${DURATION:-15}"
CONNECTIONS="${CONNECTIONS:-64}"
LOADGEN_THREADS="${LOADGEN_THREADS:-2}"
STORES="${STORES:-null durable durable+wh}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT="bench/out/collector-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"

# SPOOR=path LOADGEN=path run given binaries (e.g. a build of an older commit) without building.
if [ -z "${SPOOR:-}" ] || [ -z "${LOADGEN:-}" ]; then
    cargo build --release --quiet -p spoor-cli -p spoor-loadgen
fi
SPOOR="${SPOOR:-$TARGET_DIR/release/spoor}"
LOADGEN="${LOADGEN:-$TARGET_DIR/release/spoor-loadgen}"

SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

# run_case STORE MODE RUN [RATE]: starts a fresh server, runs the load, appends one JSON line.
# With RATE the load is open-loop at RATE messages/s (mode recorded as MODE-fixed-rate).
run_case() {
    local store="$1" mode="$2" run="$3" rate="${4:-}"
    local data log key url port store_args=() rate_args=() label="$2"
    if [ -n "$rate" ]; then
        rate_args=(--rate "$rate")
        label="$mode-at-$rate"
    fi
    data="$(mktemp -d /tmp/spoor-bench-XXXXXX)"
    log="$OUT/server-$store-$label-$run.log"
    local loadgen_out="$OUT/loadgen-$store-$label-$run.json"
    case "$store" in
        null) store_args=(--store null) ;;
        durable) store_args=(--no-warehouse-loader) ;;
        durable+wh) store_args=() ;;
    esac
    "$SPOOR" serve --json --data "$data" --listen 127.0.0.1:0 "${store_args[@]}" >"$log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 200); do
        if grep -q '"listening"' "$log"; then break; fi
        sleep 0.05
    done
    # With --json the server prints {"firstRun": {..., "writeKey": KEY, ...}} and then
    # {"listening": "127.0.0.1:PORT", "url": ...}.
    port="$(grep -o '"listening":"127\.0\.0\.1:[0-9]*"' "$log" | grep -o '[0-9]*"$' | tr -d '"')"
    key="$(grep -o '"writeKey":"[^"]*"' "$log" | head -n1 | cut -d'"' -f4)"
    if [ -z "$port" ] || [ -z "$key" ]; then
        echo "the server did not print its address and write key:" >&2
        cat "$log" >&2
        exit 1
    fi
    url="http://127.0.0.1:$port"
    "$LOADGEN" --url "$url" --write-key "$key" --mode "$mode" --connections "$CONNECTIONS" \
        --duration "$DURATION" --threads "$LOADGEN_THREADS" "${rate_args[@]}" >"$loadgen_out"
    local rss_kb stored cpu_ticks
    rss_kb="$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")"
    # utime + stime of the whole server process (fields 14 and 15 of /proc/PID/stat).
    cpu_ticks="$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")"
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=""
    stored=""
    if [ "$store" != null ]; then
        stored="$("$SPOOR" query "SELECT count(*) AS n FROM messages" --data "$data" --format csv | tail -n1)"
    fi
    python3 - "$loadgen_out" "$store" "$run" "$rss_kb" "$stored" \
        "$cpu_ticks" "$(getconf CLK_TCK)" "$label" "$rate" \
        >>"$OUT/results.jsonl" <<'PY'
import json, sys
path, store, run, rss_kb, stored, cpu_ticks, ticks_per_s, label, rate = sys.argv[1:]
result = json.load(open(path))
result["mode"] = label
if rate:
    result["offered_rate"] = float(rate)
cpu_s = int(cpu_ticks) / int(ticks_per_s)
# Server CPU per message over its whole life (warm-up included, so slightly pessimistic).
total = result["messages"] * (1 + 1 / result["duration_s"])
result.update(store=store, run=int(run), peak_rss_mb=round(int(rss_kb) / 1024, 1),
              stored=int(stored) if stored else None, server_cpu_s=round(cpu_s, 2),
              server_cpu_us_per_message=round(cpu_s * 1e6 / max(total, 1), 2),
              loadgen_cpu_us_per_message=round((result.get("loadgen_cpu_s") or 0) * 1e6
                                               / max(total, 1), 2))
print(json.dumps(result))
PY
    rm -rf "$data"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" \
    | tee "$OUT/machine.txt"
echo "runs=$RUNS duration=${DURATION}s connections=$CONNECTIONS loadgen_threads=$LOADGEN_THREADS" \
    | tee -a "$OUT/machine.txt"
for run in $(seq 1 "$RUNS"); do
    for mode in batch single; do
        for store in $STORES; do
            echo "run $run: $store store, $mode ..." >&2
            run_case "$store" "$mode" "$run"
        done
        # Latency at a given throughput: open loop at RATE_FRACTION of this run's null rate
        # and at each of FIXED_RATES messages/s, where a closed loop's latency would only be
        # CONNECTIONS x 100 messages / throughput (Little's law).
        rate=""
        if [[ " $STORES " == *" null "* ]]; then
            rate="$(python3 -c 'import json,sys
rows=[json.loads(l) for l in open(sys.argv[1])]
r=[x for x in rows if x["store"]=="null" and x["mode"]==sys.argv[2] and x["run"]==int(sys.argv[3])]
print(round(r[-1]["messages_per_s"]*float(sys.argv[4])))' "$OUT/results.jsonl" "$mode" "$run" "${RATE_FRACTION:-0.5}")"
        fi
        if [ "$mode" = batch ]; then
            for fixed in $rate ${FIXED_RATES:-}; do
                for store in $STORES; do
                    [ "$store" = null ] && continue
                    echo "run $run: $store store, $mode at $fixed messages/s ..." >&2
                    run_case "$store" "$mode" "$run" "$fixed"
                done
            done
        fi
    done
done

python3 - "$OUT/results.jsonl" "$CONNECTIONS" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
def med(store, mode, key):
    values = [r[key] if not isinstance(key, tuple) else r[key[0]][key[1]]
              for r in rows if r["store"] == store and r["mode"] == mode]
    return statistics.median(values)
print()
print(f"{'case':<26}{'messages/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'peak RSS MB':>13}"
      f"{'server CPU us/msg':>19}{'loadgen CPU us/msg':>20}{'errors':>8}")
stores = []
for r in rows:
    if r["store"] not in stores:
        stores.append(r["store"])
modes = ["batch", "single"] + sorted({r["mode"] for r in rows if "-at-" in r["mode"]},
                                    key=lambda m: float(m.split("-at-")[1]))
for mode in modes:
    for store in stores:
        if not any(r["store"] == store and r["mode"] == mode for r in rows):
            continue
        errors = sum(r["requests_failed"] + r["connection_errors"]
                     for r in rows if r["store"] == store and r["mode"] == mode)
        print(f"{store + ' ' + mode:<26}{med(store, mode, 'messages_per_s'):>12,.0f}"
              f"{med(store, mode, ('latency_ms', 'p50')):>9.2f}{med(store, mode, ('latency_ms', 'p99')):>9.2f}"
              f"{med(store, mode, 'peak_rss_mb'):>13.1f}"
              f"{med(store, mode, 'server_cpu_us_per_message'):>19.1f}"
              f"{med(store, mode, 'loadgen_cpu_us_per_message'):>20.1f}{errors:>8}")
print()
for store in [s for s in stores if s != "null" and "null" in stores]:
    for mode, goal in (("batch", 0.5), ("single", 0.4)):
        ratio = med(store, mode, "messages_per_s") / max(med("null", mode, "messages_per_s"), 1)
        print(f"{store}/null {mode}: {ratio:.2f} (goal >= {goal})")
    print(f"{store} batch p99, closed loop: {med(store, 'batch', ('latency_ms', 'p99')):.1f} ms "
          f"(Little's law floor {int(sys.argv[2]) * 100 * 1000 / med(store, 'batch', 'messages_per_s'):.0f} ms mean)")
    for mode in [m for m in modes if "-at-" in m]:
        if any(r["store"] == store and r["mode"] == mode for r in rows):
            print(f"{store} batch p99 at {med(store, mode, 'offered_rate'):,.0f} messages/s "
                  f"offered (open loop): {med(store, mode, ('latency_ms', 'p99')):.1f} ms "
                  f"(goal <= 50), achieved {med(store, mode, 'messages_per_s'):,.0f}/s")
print(f"peak RSS max: {max(r['peak_rss_mb'] for r in rows):.1f} MB (goal <= 200)")
# Every acknowledged message must be in the store (warm-up and tail requests make it more).
for r in rows:
    if r["stored"] is not None and r["stored"] < r["messages"]:
        print(f"WARNING: {r['store']} {r['mode']} run {r['run']}: {r['messages']} acknowledged "
              f"but only {r['stored']} stored")
PY
echo "raw results: $OUT" >&2
