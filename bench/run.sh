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

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)…" >&2
  apt-get install -y wrk >/dev/null 2>&1 || { sudo apt-get install -y wrk >/dev/null; }
fi

cargo build --release --manifest-path "$ROOT/Cargo.toml" >&2
BIN="$ROOT/target/release/tessera"
WORK="$(mktemp -d)"
export TESSERA_DATABASE_URL="sqlite://$WORK/tessera.db"
export TESSERA_BIND="127.0.0.1:$PORT"
export TESSERA_LOG_LEVEL="${TESSERA_LOG_LEVEL:-warn}"
# The bench key asks for a limit far above any load here; lift the cap too.
export TESSERA_API_RATE_LIMIT_MAX="${TESSERA_API_RATE_LIMIT_MAX:-1000000}"

"$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do
  curl -fs "$BASE/readyz" >/dev/null && break
  sleep 0.1
done
curl -fs "$BASE/readyz" >/dev/null || { cat "$WORK/server.log"; exit 1; }

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
for alg in RS256 ES256 HS256; do
  "$BIN" resource create --identifier "https://$alg.bench.example" --name "$alg API" --alg "$alg" --scope read >/dev/null
done
CLIENT="$("$BIN" client create --name bench --scope read \
  --audience https://RS256.bench.example --audience https://ES256.bench.example \
  --audience https://HS256.bench.example --json)"
ID="$(echo "$CLIENT" | json '["client_id"]')"
SECRET="$(echo "$CLIENT" | json '["client_secret"]')"
AUTH="Basic $(printf '%s:%s' "$ID" "$SECRET" | base64 -w0)"
TOKEN="$(curl -fs -H "Authorization: $AUTH" -d grant_type=client_credentials \
  -d resource=https://RS256.bench.example "$BASE/oauth/token" | json '["access_token"]')"
ACTIVE="$(curl -fs -H "Authorization: $AUTH" --data-urlencode "token=$TOKEN" "$BASE/oauth/introspect" | json '["active"]')"
[ "$ACTIVE" = "True" ] || { echo "introspection of a fresh token is not active" >&2; exit 1; }

# run NAME PATH [BODY]: one wrk run; appends "name rps p50 p99 non200".
RESULTS="$WORK/results"
run() {
  local name="$1" path="$2" body="${3:-}" out
  if [ -n "$body" ]; then
    out="$(BENCH_BODY="$body" BENCH_AUTH="$AUTH" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
      -s "$ROOT/bench/wrk-post.lua" "$BASE$path")"
  else
    out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$BASE$path")"
  fi
  record "$name" "$out"
}

# record NAME WRK_OUTPUT: appends "name rps p50 p99 non2xx" to the results.
record() {
  local name="$1" out="$2" rps p50 p99 bad
  rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')"
  p50="$(echo "$out" | awk '$1 == "50%" {print $2}')"
  p99="$(echo "$out" | awk '$1 == "99%" {print $2}')"
  bad="$(echo "$out" | awk '/Non-2xx or 3xx/ {print $5}')"
  echo "$name $rps $p50 $p99 ${bad:-0}" >>"$RESULTS"
  echo "  $name: $rps req/s" >&2
}

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION on $(nproc) cores; server: release, SQLite, log level $TESSERA_LOG_LEVEL" >&2
run "GET /healthz" /healthz
run "POST /oauth/token (RS256)" /oauth/token "grant_type=client_credentials&resource=https%3A%2F%2FRS256.bench.example"
run "POST /oauth/token (ES256)" /oauth/token "grant_type=client_credentials&resource=https%3A%2F%2FES256.bench.example"
run "POST /oauth/token (HS256)" /oauth/token "grant_type=client_credentials&resource=https%3A%2F%2FHS256.bench.example"
run "GET /.well-known/jwks.json" /.well-known/jwks.json
run "POST /oauth/introspect" /oauth/introspect "token=$TOKEN"

# /v1 with an API key: read a key, and verify one for a microservice.
KEY_JSON="$("$BIN" key create --owner admin@localhost --name bench --mode test --rate-limit 1000000 --json)"
API_KEY="$(echo "$KEY_JSON" | json '["key"]')"
KEY_ID="$(echo "$KEY_JSON" | json '["id"]')"
out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $API_KEY" "$BASE/v1/api-keys/$KEY_ID")"
record "GET /v1/api-keys/{id} (API key)" "$out"
out="$(BENCH_BODY="{\"key\": \"$API_KEY\"}" BENCH_CONTENT_TYPE=application/json BENCH_AUTH="Bearer $API_KEY" \
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$ROOT/bench/wrk-post.lua" "$BASE/v1/keys/verify")"
record "POST /v1/keys/verify" "$out"

# The code exchange and the refresh grant: single-use values, pre-minted by
# bench/mint.py (codes live 60 s, so they are minted last, just before use).
ADMIN_PASSWORD="$(awk '/password:/ {print $2; exit}' "$WORK/server.log")"
REDIRECT=https://bench.example/callback
WEB="$("$BIN" client create --name web --public --redirect-uri "$REDIRECT" --scope read --json | json '["client_id"]')"
LIST_DURATION="${LIST_DURATION:-3s}"
CODES="${CODES:-8000}"
REFRESH="${REFRESH:-8000}"
VERIFIER="$(python3 "$ROOT/bench/mint.py" "$BASE" admin@localhost "$ADMIN_PASSWORD" "$WEB" "$REDIRECT" \
  "$CODES" "$REFRESH" "$WORK/codes" "$WORK/refresh")"
run_list() {
  local name="$1" list="$2" body="$3" out
  out="$(BENCH_LIST="$list" BENCH_BODY="$body" wrk -t1 -c"$CONNECTIONS" -d"$LIST_DURATION" --latency \
    -s "$ROOT/bench/wrk-list.lua" "$BASE/oauth/token")"
  record "$name" "$out"
}
run_list "POST /oauth/token (code)" "$WORK/codes" \
  "grant_type=authorization_code&code={}&redirect_uri=https%3A%2F%2Fbench.example%2Fcallback&client_id=$WEB&code_verifier=$VERIFIER"
run_list "POST /oauth/token (refresh)" "$WORK/refresh" "grant_type=refresh_token&refresh_token={}&client_id=$WEB"

# The same with OpenID Connect: each answer also carries an RS256 ID token.
OIDC="$("$BIN" client create --name oidc --public --redirect-uri "$REDIRECT" --scope "openid read" --json | json '["client_id"]')"
python3 "$ROOT/bench/mint.py" "$BASE" admin@localhost "$ADMIN_PASSWORD" "$OIDC" "$REDIRECT" \
  "$CODES" "$REFRESH" "$WORK/codes" "$WORK/refresh" "openid read" >/dev/null
run_list "POST /oauth/token (code, openid)" "$WORK/codes" \
  "grant_type=authorization_code&code={}&redirect_uri=https%3A%2F%2Fbench.example%2Fcallback&client_id=$OIDC&code_verifier=$VERIFIER"
run_list "POST /oauth/token (refresh, openid)" "$WORK/refresh" "grant_type=refresh_token&refresh_token={}&client_id=$OIDC"

python3 - "$RESULTS" <<'PY'
import sys
rows = [line.strip().rsplit(" ", 4) for line in open(sys.argv[1]) if line.strip()]
base = float(rows[0][1])
print(f"{'endpoint':<30} {'req/s':>10} {'p50':>9} {'p99':>9} {'vs healthz':>11} {'non-200':>8}")
for name, rps, p50, p99, bad in rows:
    print(f"{name:<30} {float(rps):>10.0f} {p50:>9} {p99:>9} {float(rps) / base:>10.1%} {bad:>8}")
PY
