#!/usr/bin/env bash
# Warehouse freshness under load: `spoor serve` (with its warehouse loader) takes a steady
# stream from spoor-loadgen while this script samples, every 0.5 s, how far the warehouse is
# behind the log: the age of the newest loaded message (now - max(tracks.received_at)) and the
# messages accepted but not yet loaded. Prints medians and maxima; raw samples go to bench/out/.
#
# Usage: bench/warehouse_freshness.sh
#   MODE=single CONNECTIONS=4 DURATION=20 bench/warehouse_freshness.sh
#   RATE=msgs/s sends at that rate (open loop) instead of as fast as the connections go
set -euo pipefail
cd "$(dirname "$0")/.."

MODE="${MODE:-single}"
CONNECTIONS="${CONNECTIONS:-4}"
DURATION="${DURATION:-20}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT="bench/out/warehouse-freshness-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"

cargo build --release --quiet -p spoor-cli -p spoor-loadgen
SPOOR="$TARGET_DIR/release/spoor"
LOADGEN="$TARGET_DIR/release/spoor-loadgen"

DATA="$(mktemp -d /tmp/spoor-fresh-XXXXXX)"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$DATA"
}
trap cleanup EXIT

"$SPOOR" serve --json --listen 127.0.0.1:0 --data "$DATA" > "$OUT/serve.out" 2> "$OUT/serve.log" &
SERVER_PID=$!
for _ in $(seq 100); do
    grep -q '"url"' "$OUT/serve.out" 2>/dev/null && break
    sleep 0.1
done
URL="$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    d=json.loads(l)
    if "url" in d: print(d["url"])' "$OUT/serve.out")"
KEY="$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    d=json.loads(l)
    if "firstRun" in d: print(d["firstRun"]["writeKey"])' "$OUT/serve.out")"

rate_args=()
[ -n "${RATE:-}" ] && rate_args=(--rate "$RATE")
"$LOADGEN" --url "$URL" --write-key "$KEY" --mode "$MODE" --connections "$CONNECTIONS" \
    --duration "$DURATION" --warmup 1 "${rate_args[@]}" > "$OUT/loadgen.json" &
LOADGEN_PID=$!

python3 - "$DATA" "$LOADGEN_PID" "$SPOOR" > "$OUT/samples.txt" <<'PY'
import datetime, os, sqlite3, subprocess, sys, time
data, pid, spoor = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def alive():
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False
while alive():
    time.sleep(0.5)
    try:
        # The log's end: `messages` is a virtual table over the log files, which only
        # spoor's own SQL connection knows (newest first is read from the log's end).
        head = int(subprocess.run(
            [spoor, "query", "SELECT seq FROM messages ORDER BY seq DESC LIMIT 1",
             "--data", data, "--format", "csv"],
            check=True, capture_output=True, text=True).stdout.split()[-1])
        wh = sqlite3.connect(f"file:{data}/warehouse.db?mode=ro", uri=True)
        done = int(wh.execute("SELECT value FROM warehouse_state WHERE key = 'checkpoint'").fetchone()[0])
        newest = wh.execute("SELECT max(received_at) FROM tracks").fetchone()[0]
        wh.close()
    except Exception as err:
        print("error", err, flush=True)
        continue
    if newest is None:
        continue
    t = datetime.datetime.fromisoformat(newest.replace("Z", "+00:00"))
    age = (datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()
    print(f"{age:.3f} {head - done}", flush=True)
PY
wait "$LOADGEN_PID" || true
python3 - "$OUT/samples.txt" "$OUT/loadgen.json" <<'PY'
import json, statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l[0].isdigit()]
ages = sorted(float(a) for a, _ in rows)
lags = sorted(int(b) for _, b in rows)
load = json.load(open(sys.argv[2]))
rate = load.get("messages_per_second") or load.get("msgs_per_sec") or load
print(f"load: {rate if not isinstance(rate, dict) else json.dumps(rate)[:200]}")
print(f"samples: {len(ages)}")
print(f"age of newest loaded message: median {statistics.median(ages):.2f} s, max {ages[-1]:.2f} s")
print(f"messages accepted but not loaded: median {statistics.median(lags)}, max {lags[-1]}")
PY
