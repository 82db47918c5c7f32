#!/usr/bin/env bash
# Connector benchmark (issue 4): deliver N track events from an NDJSON file to a local
# `spoor serve` with `spoor batch`, with the official segment-analytics-python and
# @segment/analytics-node in the same run, and compare with wrk posting prebuilt
# 100-message batches to the same null-store server.
#
#   bench/connector.sh                      # 1,000,000 events for spoor; see OFFICIAL_EVENTS
#   EVENTS=200000 OFFICIAL_EVENTS=50000 ROUNDS=1 bench/connector.sh
#
# Prints one JSON line per measurement and a summary table; the figures go in
# docs/BENCHMARKS.md. Installs what it needs (idempotent): wrk (apt), a Python venv and
# node_modules under $CARGO_TARGET_DIR/bench-connector.
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${EVENTS:-1000000}
OFFICIAL_EVENTS=${OFFICIAL_EVENTS:-$EVENTS}
ROUNDS=${ROUNDS:-3}
WRK_SECONDS=${WRK_SECONDS:-10}
TARGET=${CARGO_TARGET_DIR:-target}
WORK=$TARGET/bench-connector
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
export WORK

# --- What the benchmark needs ------------------------------------------------------------
cargo build --release -p spoor-cli >&2
SPOOR=$(cd "$TARGET/release" && pwd)/spoor
export SPOOR
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } >&2
[ -x "$WORK/venv/bin/python" ] || python3 -m venv "$WORK/venv"
"$WORK/venv/bin/python" -c 'import segment.analytics' 2>/dev/null \
  || "$WORK/venv/bin/pip" install -q 'segment-analytics-python==2.4.0' >&2
if [ ! -d "$WORK/node/node_modules/@segment/analytics-node" ]; then
  mkdir -p "$WORK/node"
  (cd "$WORK/node" && { [ -f package.json ] || npm init -y >/dev/null; } \
    && npm install --silent '@segment/analytics-node@3.1.0') >&2
fi

# --- Input ---------------------------------------------------------------------------------
EVENTS_FILE=$WORK/events-$EVENTS.ndjson
[ -s "$EVENTS_FILE" ] || python3 bench/connector_gen.py "$EVENTS" > "$EVENTS_FILE"
OFFICIAL_FILE=$WORK/events-$OFFICIAL_EVENTS.ndjson
export EVENTS_FILE OFFICIAL_FILE
[ -s "$OFFICIAL_FILE" ] || python3 bench/connector_gen.py "$OFFICIAL_EVENTS" > "$OFFICIAL_FILE"
BODY=$WORK/batch-100.json
python3 - "$BODY" <<'PY'
import json, sys
items = [{"type": "track", "userId": "user-%d" % i, "event": "Product Viewed",
          "properties": {"product_id": "p-%d" % i, "price": 19.99, "category": "shoes", "position": i % 50},
          "timestamp": "2024-05-01T12:00:00.000Z"} for i in range(100)]
open(sys.argv[1], "w").write(json.dumps({"batch": items}, separators=(",", ":")))
PY

# --- A collector ---------------------------------------------------------------------------
SERVER_PID=
start_server() { # $1 = null | sqlite
  local data=$WORK/data-$1
  rm -rf "$data"
  "$SPOOR" serve --json --listen 127.0.0.1:0 --data "$data" --store "$1" > "$WORK/serve.out" 2>"$WORK/serve.err" &
  SERVER_PID=$!
  for _ in $(seq 100); do grep -q '"url"' "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
  URL=$(python3 -c 'import json,sys; [print(json.loads(l)["url"]) for l in open(sys.argv[1]) if "\"url\"" in l]' "$WORK/serve.out")
  KEY=$(python3 -c 'import json,sys; [print(json.loads(l)["firstRun"]["writeKey"]) for l in open(sys.argv[1]) if "firstRun" in l]' "$WORK/serve.out")
}
stop_server() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
trap stop_server EXIT
accepted() { curl -s "$URL/metrics" | awk '/^spoor_messages_accepted_total/ {s+=$2} END {print s+0}'; }

# --- One measured sender -------------------------------------------------------------------
# measure NAME STORE EVENTS 'COMMAND': COMMAND runs under bash with $URL and $KEY exported
# (the server's), and must `exec` the sender so /usr/bin/time sees its RSS. Prints {"sender","store","events","seconds","eventsPerSecond","peakRssMb","accepted"}
measure() {
  local name=$1 store=$2 n=$3 command=$4
  start_server "$store"
  export URL KEY
  local before; before=$(accepted)
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -v bash -c "$command" > "$WORK/$name.out" 2> "$WORK/$name.time" || { echo "$name failed:" >&2; tail -5 "$WORK/$name.time" >&2; }
  end=$(date +%s.%N)
  local rss; rss=$(awk -F: '/Maximum resident set size/ {print $2+0}' "$WORK/$name.time")
  local after; after=$(accepted)
  stop_server
  python3 - "$name" "$store" "$n" "$start" "$end" "$rss" "$((after - before))" <<'PY'
import json, sys
name, store, n, start, end, rss, acc = sys.argv[1:]
secs = float(end) - float(start)
print(json.dumps({"sender": name, "store": store, "events": int(n), "seconds": round(secs, 2),
                  "eventsPerSecond": round(int(n) / secs), "peakRssMb": round(int(rss) / 1024, 1),
                  "accepted": int(acc)}))
PY
}

wrk_run() { # STORE: prints {"sender":"wrk", ...} events/s = requests/s x 100
  start_server "$1"
  local auth; auth="Basic $(printf '%s:' "$KEY" | base64 -w0)"
  BENCH_BODY=$BODY BENCH_AUTH=$auth wrk -t2 -c16 -d"${WRK_SECONDS}s" -s bench/connector_wrk.lua "$URL" > "$WORK/wrk.out" 2>&1 || true
  stop_server
  python3 - "$1" "$WORK/wrk.out" <<'PY'
import json, re, sys
text = open(sys.argv[2]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
print(json.dumps({"sender": "wrk", "store": sys.argv[1], "requestsPerSecond": round(rps),
                  "eventsPerSecond": round(rps * 100)}))
PY
}

RESULTS=$WORK/results.jsonl
: > "$RESULTS"
for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  wrk_run null | tee -a "$RESULTS"
  measure spoor-batch null "$EVENTS" 'SPOOR_ENDPOINT=$URL SPOOR_WRITE_KEY=$KEY exec "$SPOOR" batch "$EVENTS_FILE" --json' | tee -a "$RESULTS"
done
measure spoor-batch sqlite "$EVENTS" 'SPOOR_ENDPOINT=$URL SPOOR_WRITE_KEY=$KEY exec "$SPOOR" batch "$EVENTS_FILE" --json' | tee -a "$RESULTS"
measure analytics-python null "$OFFICIAL_EVENTS" 'exec "$WORK/venv/bin/python" bench/connector_python.py "$OFFICIAL_FILE" "$URL" "$KEY"' | tee -a "$RESULTS"
measure analytics-node null "$OFFICIAL_EVENTS" 'NODE_PATH=$WORK/node/node_modules exec node bench/connector_node.mjs "$OFFICIAL_FILE" "$URL" "$KEY"' | tee -a "$RESULTS"

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(sender, store):
    xs = [r["eventsPerSecond"] for r in rows if r["sender"] == sender and r["store"] == store]
    return statistics.median(xs) if xs else None
print("\nsender              store   events/s (median)   peak RSS MB   accepted/events")
print_rows = {}
for r in rows:
    key = (r["sender"], r["store"])
    print_rows.setdefault(key, []).append(r)
for (sender, store), rs in print_rows.items():
    eps = statistics.median([r["eventsPerSecond"] for r in rs])
    rss = max((r.get("peakRssMb", 0) for r in rs), default=0)
    acc = ", ".join("%s/%s" % (r.get("accepted", "-"), r.get("events", "-")) for r in rs)
    print("%-19s %-7s %17s   %11s   %s" % (sender, store, f"{eps:,.0f}", rss if sender != "wrk" else "-", acc))
spoor, wrk = med("spoor-batch", "null"), med("wrk", "null")
official = max(x for x in [med("analytics-python", "null"), med("analytics-node", "null")] if x)
print(f"\nspoor batch / faster official library: {spoor / official:.1f}x (goal 10x)")
print(f"spoor batch / wrk (null store):        {spoor / wrk:.2f} (goal >= 0.5)")
PY
