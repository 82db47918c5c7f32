#!/usr/bin/env bash
# Warehouse benchmark: loader throughput into SQLite (and PostgreSQL when
# SPOOR_TEST_POSTGRES_URL is set) from a generated log of mixed messages (20 event names,
# pages, screens, identifies, groups, aliases), then the median time of every report over
# that data. Prints the results and keeps them in bench/out/.
#
# Usage: bench/warehouse.sh                 (1,000,000 messages, 5 runs per report)
#   MESSAGES=100000 RUNS=3 bench/warehouse.sh
set -euo pipefail
cd "$(dirname "$0")/.."

MESSAGES="${MESSAGES:-1000000}"
RUNS="${RUNS:-5}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT="bench/out/warehouse-$(date -u +%Y%m%dT%H%M%SZ).txt"
mkdir -p bench/out

cargo build --release --quiet -p spoor-warehouse --example warehouse_bench
args=(--messages "$MESSAGES" --runs "$RUNS")
if [ -n "${SPOOR_TEST_POSTGRES_URL:-}" ]; then
    args+=(--postgres "$SPOOR_TEST_POSTGRES_URL")
fi
{
    echo "# $(date -u +%FT%TZ) $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    "$TARGET_DIR/release/examples/warehouse_bench" "${args[@]}"
} | tee "$OUT"
