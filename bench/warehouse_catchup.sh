#!/usr/bin/env bash
# Warehouse catch-up inside `spoor serve`: fills a data directory with spoor-loadgen's
# messages (batches of 100, 8 connections, FILL seconds) while the loader is off
# (--no-warehouse-loader), then starts `spoor serve` with its loader on a copy of it, with no
# ingest, and times how long the warehouse takes to catch up with the log (the checkpoint in
# warehouse_state reaching the log's last seq), sampling the process's RSS and CPU.
#
# Usage: bench/warehouse_catchup.sh
#   DATA=/tmp/spoor-catchup FILL=10 bench/warehouse_catchup.sh   (DATA is kept and reused)
#   SPOOR=/path/to/old/spoor bench/warehouse_catchup.sh          (another build, same log)
set -euo pipefail
cd "$(dirname "$0")/.."

FILL="${FILL:-10}"
DATA="${DATA:-/tmp/spoor-catchup}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
if [ -z "${SPOOR:-}" ] || [ -z "${LOADGEN:-}" ]; then
    cargo build --release --quiet -p spoor-cli -p spoor-loadgen
fi
SPOOR="${SPOOR:-$TARGET_DIR/release/spoor}"
LOADGEN="${LOADGEN:-$TARGET_DIR/release/spoor-loadgen}"

start_server() { # DIR OUT [ARGS...]
    local dir="$1" out="$2"
    shift 2
    "$SPOOR" serve --json --listen 127.0.0.1:0 --data "$dir" "$@" > "$out" 2> "$out.log" &
    SERVER_PID=$!
    for _ in $(seq 100); do
        grep -q '"url"' "$out" 2>/dev/null && break
        sleep 0.1
    done
}
json_field() { # FILE KEY...
    python3 -c 'import json,sys
for l in open(sys.argv[1]):
    d=json.loads(l)
    for k in sys.argv[2:]:
        d=d.get(k) if isinstance(d,dict) else None
    if d: print(d)' "$@"
}

if [ ! -f "$DATA/events.db" ]; then
    mkdir -p "$DATA"
    start_server "$DATA" "$DATA.fill.out" --no-warehouse-loader
    "$LOADGEN" --url "$(json_field "$DATA.fill.out" url)" \
        --write-key "$(json_field "$DATA.fill.out" firstRun writeKey)" \
        --mode batch --connections 8 --duration "$FILL" --warmup 1 > "$DATA.fill.json"
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
    rm -f "$DATA"/warehouse.db*
fi

RUN="$DATA.run"
rm -rf "$RUN"
cp -a "$DATA" "$RUN"
HEAD="$("$SPOOR" query "SELECT seq FROM messages ORDER BY seq DESC LIMIT 1" --data "$RUN" \
    --format csv | tail -n1)"
echo "# $(date -u +%FT%TZ) $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "log: $HEAD messages"
T0="$(date +%s.%N)"
start_server "$RUN" "$RUN.out"
MAXRSS=0
while :; do
    sleep 0.5
    RSS="$(awk '/VmRSS/{print $2}' "/proc/$SERVER_PID/status")"
    [ "$RSS" -gt "$MAXRSS" ] && MAXRSS="$RSS"
    DONE="$(python3 -c 'import sqlite3,sys
try:
    print(sqlite3.connect(f"file:{sys.argv[1]}/warehouse.db?mode=ro", uri=True).execute(
        "SELECT value FROM warehouse_state WHERE key = '"'"'checkpoint'"'"'").fetchone()[0])
except Exception:
    print(0)' "$RUN")"
    [ "$DONE" -ge "$HEAD" ] && break
done
T1="$(date +%s.%N)"
CPU="$(awk '{print ($14 + $15) / 100}' "/proc/$SERVER_PID/stat")"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || true
python3 -c "h,t,c,r=$HEAD,$T1-$T0,$CPU,$MAXRSS
print(f'caught up in {t:.1f} s: {h/t:,.0f} messages/s; process CPU {c:.1f} s '
      f'({c*1e6/h:.1f} us per message); peak RSS {r/1024:.0f} MiB')"
rm -rf "$RUN" "$RUN.out" "$RUN.out.log"
