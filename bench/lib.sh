# Helpers shared by bench/run.sh and bench/side_by_side.sh; source it, do
# not run it. The scripts set ROOT, DURATION, CONNECTIONS, THREADS, PORT and
# BASE first; the functions below read those (and AUTH, RESULTS) when called,
# so a caller may override one for a single call: `BASE=… run NAME PATH`.

# Processes to stop and directories to remove on exit: `trap bench_cleanup EXIT`.
BENCH_PIDS=()
BENCH_DIRS=()
bench_cleanup() {
  local pid
  for pid in "${BENCH_PIDS[@]}"; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  [ "${#BENCH_DIRS[@]}" -eq 0 ] || rm -rf "${BENCH_DIRS[@]}"
  return 0
}

ensure_wrk() {
  command -v wrk >/dev/null && return
  echo "installing wrk (Debian package)…" >&2
  apt-get install -y wrk >/dev/null 2>&1 || sudo apt-get install -y wrk >/dev/null 2>&1 || {
    apt-get update >/dev/null 2>&1 || sudo apt-get update >/dev/null
    apt-get install -y wrk >/dev/null 2>&1 || sudo apt-get install -y wrk >/dev/null
  }
}

# json EXPR: reads JSON on stdin, prints the value at EXPR (e.g. '["key"]').
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# wait_ready URL LOG: waits up to 10 s for URL to answer 2xx; else shows LOG.
wait_ready() {
  local url="$1" log="$2"
  for _ in $(seq 1 100); do
    curl -fs "$url" >/dev/null && return 0
    sleep 0.1
  done
  curl -fs "$url" >/dev/null || { cat "$log" >&2; return 1; }
}

# tessera_build: sets BIN to the release binary; TESSERA_BIN, when set, is
# used as it is instead of building.
tessera_build() {
  if [ -n "${TESSERA_BIN:-}" ]; then
    BIN="$TESSERA_BIN"
    [ -x "$BIN" ] || { echo "TESSERA_BIN=$BIN is not an executable" >&2; return 1; }
  else
    cargo build --release --manifest-path "$ROOT/Cargo.toml" >&2
    BIN="$ROOT/target/release/tessera"
  fi
}

# tessera_start: `tessera serve` on a fresh SQLite database in a new temp dir
# (WORK, removed on exit) at 127.0.0.1:$PORT; sets SERVER to its pid.
tessera_start() {
  WORK="$(mktemp -d)"
  BENCH_DIRS+=("$WORK")
  export TESSERA_DATABASE_URL="sqlite://$WORK/tessera.db"
  export TESSERA_BIND="127.0.0.1:$PORT"
  export TESSERA_LOG_LEVEL="${TESSERA_LOG_LEVEL:-warn}"
  # The bench key asks for a limit far above any load here; lift the cap too.
  export TESSERA_API_RATE_LIMIT_MAX="${TESSERA_API_RATE_LIMIT_MAX:-1000000}"
  "$BIN" serve >"$WORK/server.log" 2>&1 &
  SERVER=$!
  BENCH_PIDS+=("$SERVER")
  wait_ready "$BASE/readyz" "$WORK/server.log"
}

# tessera_setup: resource servers RS256, ES256 and HS256 (scope read), and a
# confidential client for all three. Sets AUTH (its Basic header) and TOKEN
# (an RS256 access token, checked active by introspection).
tessera_setup() {
  local alg client id secret active
  for alg in RS256 ES256 HS256; do
    "$BIN" resource create --identifier "https://$alg.bench.example" --name "$alg API" --alg "$alg" --scope read >/dev/null
  done
  client="$("$BIN" client create --name bench --scope read \
    --audience https://RS256.bench.example --audience https://ES256.bench.example \
    --audience https://HS256.bench.example --json)"
  id="$(echo "$client" | json '["client_id"]')"
  secret="$(echo "$client" | json '["client_secret"]')"
  AUTH="Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
  TOKEN="$(curl -fs -H "Authorization: $AUTH" -d grant_type=client_credentials \
    -d resource=https://RS256.bench.example "$BASE/oauth/token" | json '["access_token"]')"
  active="$(curl -fs -H "Authorization: $AUTH" --data-urlencode "token=$TOKEN" "$BASE/oauth/introspect" | json '["active"]')"
  [ "$active" = "True" ] || { echo "introspection of a fresh token is not active" >&2; return 1; }
}

# tessera_api_key: a test-mode API key for admin@localhost; sets API_KEY and KEY_ID.
tessera_api_key() {
  local key_json
  key_json="$("$BIN" key create --owner admin@localhost --name bench --mode test --rate-limit 1000000 --json)"
  API_KEY="$(echo "$key_json" | json '["key"]')"
  KEY_ID="$(echo "$key_json" | json '["id"]')"
}

# run NAME PATH [BODY]: one wrk run (GET, or POST of BODY with AUTH); records it.
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

# run_v1_key_get NAME: GET /v1/api-keys/{KEY_ID} with the API key; records it.
run_v1_key_get() {
  local out
  out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $API_KEY" \
    "$BASE/v1/api-keys/$KEY_ID")"
  record "$1" "$out"
}

# run_v1_me NAME: GET /v1/me with the API key (reads nothing but the key); records it.
run_v1_me() {
  local out
  out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $API_KEY" "$BASE/v1/me")"
  record "$1" "$out"
}

# run_v1_key_verify NAME: POST /v1/keys/verify of the API key, authenticated by itself.
run_v1_key_verify() {
  local out
  out="$(BENCH_BODY="{\"key\": \"$API_KEY\"}" BENCH_CONTENT_TYPE=application/json BENCH_AUTH="Bearer $API_KEY" \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$ROOT/bench/wrk-post.lua" "$BASE/v1/keys/verify")"
  record "$1" "$out"
}

# run_list NAME LIST BODY: POSTs to /oauth/token, each with the next value of
# the file LIST put where BODY says {} (one wrk thread, LIST_DURATION).
run_list() {
  local name="$1" list="$2" body="$3" out
  out="$(BENCH_LIST="$list" BENCH_BODY="$body" wrk -t1 -c"$CONNECTIONS" -d"$LIST_DURATION" --latency \
    -s "$ROOT/bench/wrk-list.lua" "$BASE/oauth/token")"
  record "$name" "$out"
}

# record NAME WRK_OUTPUT: appends "name rps p50 p99 non2xx" to the results
# (and tells stderr, prefixed with BENCH_LABEL when set).
record() {
  local name="$1" out="$2" rps p50 p99 bad errors
  rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')"
  p50="$(echo "$out" | awk '$1 == "50%" {print $2}')"
  p99="$(echo "$out" | awk '$1 == "99%" {print $2}')"
  bad="$(echo "$out" | awk '/Non-2xx or 3xx/ {print $5}')"
  echo "$name $rps $p50 $p99 ${bad:-0}" >>"$RESULTS"
  errors="$(echo "$out" | awk '/Socket errors/ {sub(/^ *Socket errors: */, ""); print}')"
  echo "  ${BENCH_LABEL:+$BENCH_LABEL: }$name: $rps req/s${errors:+ (socket errors: $errors)}" >&2
}

# run_grants CLIENT_NAME SCOPE [SUFFIX]: a public client with SCOPE; pre-mints
# CODES codes and REFRESH refresh tokens for it with bench/mint.py (codes live
# 60 s, so minting comes just before use), then records the code exchange and
# the refresh grant as "POST /oauth/token (code SUFFIX)" and "(refresh SUFFIX)".
run_grants() {
  local client_name="$1" scope="$2" suffix="${3:-}" client verifier password
  local redirect=https://bench.example/callback
  password="$(awk '/password:/ {print $2; exit}' "$WORK/server.log")"
  client="$("$BIN" client create --name "$client_name" --public --redirect-uri "$redirect" --scope "$scope" --json \
    | json '["client_id"]')"
  verifier="$(python3 "$ROOT/bench/mint.py" "$BASE" admin@localhost "$password" "$client" "$redirect" \
    "${CODES:-8000}" "${REFRESH:-8000}" "$WORK/codes" "$WORK/refresh" "$scope")"
  run_list "POST /oauth/token (code$suffix)" "$WORK/codes" \
    "grant_type=authorization_code&code={}&redirect_uri=https%3A%2F%2Fbench.example%2Fcallback&client_id=$client&code_verifier=$verifier"
  run_list "POST /oauth/token (refresh$suffix)" "$WORK/refresh" \
    "grant_type=refresh_token&refresh_token={}&client_id=$client"
}
