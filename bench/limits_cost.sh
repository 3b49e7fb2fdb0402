#!/usr/bin/env bash
# What shared limits and metrics cost: GET /v1/me (one API-key check) with
# wrk for 10 s, with the limits in memory, in Redis (127.0.0.1:6379), and
# each with /metrics on. Release binary (BIN=…), one worker, loopback.
set -euo pipefail
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/tessera}
run() {
  local label=$1; shift
  local dir; dir=$(mktemp -d)
  env "$@" TESSERA_DATABASE_URL="sqlite://$dir/t.db" TESSERA_MASTER_KEY_FILE="$dir/mk" TESSERA_BIND=127.0.0.1:18181 \
    TESSERA_API_RATE_LIMIT=1000000 TESSERA_API_RATE_LIMIT_MAX=1000000 TESSERA_LOG_LEVEL=warn TESSERA_WORKERS=1 \
    "$BIN" serve > "$dir/out" 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -sf http://127.0.0.1:18181/healthz >/dev/null && break; sleep 0.1; done
  local key
  key=$(TESSERA_DATABASE_URL="sqlite://$dir/t.db" TESSERA_MASTER_KEY_FILE="$dir/mk" "$BIN" key create --owner admin@localhost --name b --mode test --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
  curl -sf -H "Authorization: Bearer $key" http://127.0.0.1:18181/v1/me >/dev/null
  local out
  out=$(wrk -t1 -c16 -d10s --latency -H "Authorization: Bearer $key" http://127.0.0.1:18181/v1/me)
  local rps p99 non2xx
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  echo "$label: ${rps} req/s, p99 ${p99}, non-2xx ${non2xx:-0}"
  kill -TERM $pid; wait $pid || true
  rm -rf "$dir"
}
run "limits in memory        "
run "limits in Redis         " TESSERA_REDIS_URL=redis://127.0.0.1:6379
run "in memory + /metrics on " TESSERA_METRICS_BIND=127.0.0.1:19191
run "Redis + /metrics on     " TESSERA_REDIS_URL=redis://127.0.0.1:6379 TESSERA_METRICS_BIND=127.0.0.1:19191
