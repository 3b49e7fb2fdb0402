#!/usr/bin/env bash
# Side-by-side benchmark: Tessera (release, SQLite) against node-oidc-provider
# (bench/node-oidc, WORKERS processes via node:cluster), both on loopback.
# The client credentials grant (RS256 and ES256 JWT access tokens) and the
# JWKS run on each server in turn, ROUNDS times (Tessera, node, Tessera, node,
# …), averaged per server; then the Tessera-only rows as in bench/run.sh.
# Prints one table with the ratios and the goals of issue #13.
#
#   bench/side_by_side.sh                       # wrk -t2 -c64 -d10s, 2 rounds
#   DURATION=5s ROUNDS=1 bench/side_by_side.sh
#   TESSERA_BIN=target/release/tessera bench/side_by_side.sh   # skip the build
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
ROUNDS="${ROUNDS:-2}"
PORT="${PORT:-18080}"
NODE_PORT="${NODE_PORT:-18090}"
WORKERS="${WORKERS:-2}"
LIST_DURATION="${LIST_DURATION:-3s}"
BASE="http://127.0.0.1:$PORT"
NODE_BASE="http://127.0.0.1:$NODE_PORT"
NODE_DIR="$ROOT/bench/node-oidc"

# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
trap bench_cleanup EXIT

ensure_wrk
command -v node >/dev/null || { echo "node is needed (v20 or later)" >&2; exit 1; }
if [ ! -d "$NODE_DIR/node_modules" ]; then
  echo "installing node-oidc-provider (npm ci)…" >&2
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund >&2)
fi
tessera_build
tessera_start
tessera_setup

# node-oidc-provider: its two clients share one secret, chosen here.
NODE_SECRET="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
PORT="$NODE_PORT" WORKERS="$WORKERS" CLIENT_SECRET="$NODE_SECRET" NODE_ENV=production \
  node "$NODE_DIR/server.js" >"$WORK/node.log" 2>&1 &
NODE=$!
BENCH_PIDS+=("$NODE")
wait_ready "$NODE_BASE/jwks" "$WORK/node.log"
NODE_AUTH_RS256="Basic $(printf '%s:%s' bench-rs256 "$NODE_SECRET" | base64 -w0)"
NODE_AUTH_ES256="Basic $(printf '%s:%s' bench-es256 "$NODE_SECRET" | base64 -w0)"

# Both servers must answer each compared request with 200 and a JWT signed
# with the expected algorithm before anything is measured.
check_jwt() {
  local who="$1" alg="$2" url="$3" auth="$4" body="$5" answer header
  answer="$(curl -fsS -H "Authorization: $auth" -d "$body" "$url")" \
    || { echo "$who: token request for $alg failed" >&2; return 1; }
  header="$(echo "$answer" | json '["access_token"].split(".")[0]')"
  header="$(python3 -c "import base64,json,sys; s=sys.argv[1]; print(json.loads(base64.urlsafe_b64decode(s + '=' * (-len(s) % 4)))['alg'])" "$header")"
  [ "$header" = "$alg" ] || { echo "$who: asked for $alg, got a token signed with $header" >&2; return 1; }
}
# Tessera grants a client its scope without a scope parameter; node grants a
# scope only when asked. With scope=read both tokens carry the same claims
# (iss, sub, aud, client_id, scope, iat, exp, jti).
tessera_cc() { echo "grant_type=client_credentials&resource=https%3A%2F%2F$1.bench.example"; }
node_cc() { echo "grant_type=client_credentials&scope=read&resource=https%3A%2F%2F$1.bench.example"; }
for alg in RS256 ES256; do
  auth_var="NODE_AUTH_$alg"
  check_jwt Tessera "$alg" "$BASE/oauth/token" "$AUTH" "$(tessera_cc "$alg")"
  check_jwt node-oidc-provider "$alg" "$NODE_BASE/token" "${!auth_var}" "$(node_cc "$alg")"
done
jwks_keys() {
  curl -fsS "$1" | python3 -c "import json,sys; print(' '.join(k['kty'] + '/' + k.get('alg', '?') for k in json.load(sys.stdin)['keys']))"
}
echo "JWKS keys: Tessera $(jwks_keys "$BASE/.well-known/jwks.json"); node-oidc-provider $(jwks_keys "$NODE_BASE/jwks")" >&2

TESSERA_RESULTS="$WORK/tessera-results"
NODE_RESULTS="$WORK/node-results"
: >"$TESSERA_RESULTS"
: >"$NODE_RESULTS"
RESULTS="$TESSERA_RESULTS"

# compare NAME TESSERA_PATH NODE_PATH [TESSERA_BODY NODE_BODY NODE_AUTH]:
# ROUNDS × (Tessera, then node), each result recorded under NAME.
compare() {
  local name="$1" tpath="$2" npath="$3" tbody="${4:-}" nbody="${5:-}" nauth="${6:-}" round
  for round in $(seq 1 "$ROUNDS"); do
    echo "$name, round $round/$ROUNDS" >&2
    BENCH_LABEL=Tessera RESULTS="$TESSERA_RESULTS" run "$name" "$tpath" "$tbody"
    BENCH_LABEL=node RESULTS="$NODE_RESULTS" BASE="$NODE_BASE" AUTH="$nauth" run "$name" "$npath" "$nbody"
  done
}

NODE_VERSION="$(node --version)"
OIDC_VERSION="$(node -p "require('$NODE_DIR/node_modules/oidc-provider/package.json').version")"
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD)"
[ -z "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] || COMMIT="$COMMIT (with uncommitted changes)"
MACHINE="$(nproc) cores, $(uname -m)"

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS round(s); Tessera $COMMIT; node $NODE_VERSION, oidc-provider $OIDC_VERSION × $WORKERS workers" >&2
compare "client_credentials RS256" /oauth/token /token "$(tessera_cc RS256)" "$(node_cc RS256)" "$NODE_AUTH_RS256"
compare "client_credentials ES256" /oauth/token /token "$(tessera_cc ES256)" "$(node_cc ES256)" "$NODE_AUTH_ES256"
compare "JWKS" /.well-known/jwks.json /jwks

# Tessera alone, ROUNDS times each (rounds outermost, like the comparisons).
tessera_api_key
for round in $(seq 1 "$ROUNDS"); do
  echo "Tessera-only rows, round $round/$ROUNDS" >&2
  run "GET /healthz" /healthz
  run_v1_me "GET /v1/me (API key)"
  run_v1_key_get "GET /v1/api-keys/{id} (API key)"
  run_v1_key_verify "POST /v1/keys/verify"
  run "POST /oauth/introspect (JWT)" /oauth/introspect "token=$TOKEN"
done
# The code exchange and the refresh grant, on SQLite: single-use values,
# pre-minted (CODES, REFRESH; 8000 each by default), one run each.
run_grants web read

COMMIT="$COMMIT" MACHINE="$MACHINE" NODE_VERSION="$NODE_VERSION" OIDC_VERSION="$OIDC_VERSION" \
  THREADS="$THREADS" CONNECTIONS="$CONNECTIONS" DURATION="$DURATION" ROUNDS="$ROUNDS" WORKERS="$WORKERS" \
  LIST_DURATION="$LIST_DURATION" \
  python3 - "$TESSERA_RESULTS" "$NODE_RESULTS" <<'PY'
import os, sys

def load(path):
    """name -> list of (rps, p99 in ms, non-2xx), in file order."""
    runs = {}
    for line in open(path):
        if line.strip():
            name, rps, _p50, p99, bad = line.strip().rsplit(" ", 4)
            runs.setdefault(name, []).append((float(rps), ms(p99), int(bad)))
    return runs

def ms(value):
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60000.0)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * scale
    return float(value)

def avg(runs):
    n = len(runs)
    return sum(r[0] for r in runs) / n, sum(r[1] for r in runs) / n, sum(r[2] for r in runs)

def verdict(checks, bad):
    if bad:
        return "no (non-2xx)"
    return "yes" if all(checks) else "no"

tessera, node = load(sys.argv[1]), load(sys.argv[2])
healthz = avg(tessera["GET /healthz"])[0]
env = os.environ
print(f"Tessera {env['COMMIT']} against node {env['NODE_VERSION']}, oidc-provider {env['OIDC_VERSION']} "
      f"({env['WORKERS']} workers); machine: {env['MACHINE']}")
print(f"wrk -t{env['THREADS']} -c{env['CONNECTIONS']} -d{env['DURATION']} --latency; "
      f"{env['ROUNDS']} interleaved round(s) per compared endpoint (Tessera, node, …), averaged; "
      f"Tessera on SQLite; code/refresh: wrk -t1 -d{env['LIST_DURATION']}")
print()

compared = [
    ("client_credentials RS256", lambda t, n, r: [r >= 1.3, t[1] < 40], ">=1.3x, p99<40ms"),
    ("client_credentials ES256", lambda t, n, r: [r >= 3.0], ">=3x"),
    ("JWKS", lambda t, n, r: [r >= 2.5, t[0] >= 0.85 * healthz], ">=2.5x, >=85% healthz"),
]
print(f"{'endpoint':<26} {'Tessera/s':>10} {'p99':>9} {'node/s':>9} {'p99':>9} {'ratio':>7} "
      f"{'non-2xx':>8}  {'goal':<24} met?")
for name, check, goal in compared:
    t, n = avg(tessera[name]), avg(node[name])
    ratio = t[0] / n[0] if n[0] else float("inf")
    bad = f"{t[2]}/{n[2]}"
    extra = f" ({t[0] / healthz:.0%} healthz)" if name == "JWKS" else ""
    print(f"{name:<26} {t[0]:>10.0f} {t[1]:>7.2f}ms {n[0]:>9.0f} {n[1]:>7.2f}ms {ratio:>6.2f}x "
          f"{bad:>8}  {goal:<24} {verdict(check(t, n, ratio), t[2] + n[2])}{extra}")
print("(Tessera: POST /oauth/token, GET /.well-known/jwks.json; node: POST /token, GET /jwks; "
      "non-2xx: Tessera/node, summed over rounds)")
print()

only = [
    ("GET /healthz", lambda t: [], "(baseline)"),
    ("GET /v1/me (API key)", lambda t: [t[0] >= 0.5 * healthz, t[1] < 5], ">=50% healthz, p99<5ms"),
    ("GET /v1/api-keys/{id} (API key)", lambda t: [], "(reads the key's record)"),
    ("POST /v1/keys/verify", lambda t: [t[0] >= 0.5 * healthz, t[1] < 5], ">=50% healthz, p99<5ms"),
    ("POST /oauth/introspect (JWT)", lambda t: [t[0] >= 0.4 * healthz], ">=40% healthz"),
    ("POST /oauth/token (code)", lambda t: [t[0] >= 1500], ">=1500/s"),
    ("POST /oauth/token (refresh)", lambda t: [t[0] >= 1500], ">=1500/s"),
]
print(f"{'Tessera only':<32} {'req/s':>9} {'p99':>9} {'% healthz':>10} {'non-2xx':>8}  {'goal':<24} met?")
for name, check, goal in only:
    t = avg(tessera[name])
    met = "-" if name == "GET /healthz" else verdict(check(t), t[2])
    print(f"{name:<32} {t[0]:>9.0f} {t[1]:>7.2f}ms {t[0] / healthz:>10.1%} {t[2]:>8}  {goal:<24} {met}")
PY
