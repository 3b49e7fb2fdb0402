#!/usr/bin/env bash
# Load benchmark: the release server on a fresh SQLite database, driven by
# wrk on loopback. Prints requests/s, p50 and p99 latency per endpoint and
# each one's throughput as a fraction of /healthz from the same run.
#
#   bench/run.sh            # 10 s per endpoint, 32 connections
#   DURATION=30s CONNECTIONS=64 bench/run.sh
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-1}"
PORT="${PORT:-18080}"
BASE="http://127.0.0.1:$PORT"

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
trap bench_cleanup EXIT

ensure_wrk
tessera_build
tessera_start
tessera_setup
RESULTS="$WORK/results"

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION on $(nproc) cores; server: release, SQLite, log level $TESSERA_LOG_LEVEL" >&2
run "GET /healthz" /healthz
run "POST /oauth/token (RS256)" /oauth/token "grant_type=client_credentials&resource=https%3A%2F%2FRS256.bench.example"
run "POST /oauth/token (ES256)" /oauth/token "grant_type=client_credentials&resource=https%3A%2F%2FES256.bench.example"
run "POST /oauth/token (HS256)" /oauth/token "grant_type=client_credentials&resource=https%3A%2F%2FHS256.bench.example"
run "GET /.well-known/jwks.json" /.well-known/jwks.json
run "POST /oauth/introspect" /oauth/introspect "token=$TOKEN"

# /v1 with an API key: read a key, and verify one for a microservice.
tessera_api_key
run_v1_me "GET /v1/me (API key)"
run_v1_key_get "GET /v1/api-keys/{id} (API key)"
run_v1_key_verify "POST /v1/keys/verify"

# The code exchange and the refresh grant: single-use values, pre-minted by
# bench/mint.py (see run_grants in bench/lib.sh).
LIST_DURATION="${LIST_DURATION:-3s}"
run_grants web read
# The same with OpenID Connect: each answer also carries an RS256 ID token.
run_grants oidc "openid read" ", openid"

python3 - "$RESULTS" <<'PY'
import sys
rows = [line.strip().rsplit(" ", 4) for line in open(sys.argv[1]) if line.strip()]
base = float(rows[0][1])
print(f"{'endpoint':<30} {'req/s':>10} {'p50':>9} {'p99':>9} {'vs healthz':>11} {'non-200':>8}")
for name, rps, p50, p99, bad in rows:
    print(f"{name:<30} {float(rps):>10.0f} {p50:>9} {p99:>9} {float(rps) / base:>10.1%} {bad:>8}")
PY
