#!/usr/bin/env bash
# Smoke test through the real Lambda runtime: the three function binaries served by
# `cargo lambda watch`, invoked with `cargo lambda invoke` and the example events, against
# market-sim over loopback HTTP and a throwaway PostgreSQL cluster.
#
# Checks: select-tickers with the example event returns one batch; fetch-batch writes exactly the
# bars market-sim reports as ground truth; a second fetch-batch inserts 0 and updates 0; a bad
# payload comes back with errorType InvalidInput; finalize-run reports `succeeded`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
export PATH="$ROOT/.venv/bin:$PATH"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/lambda-smoke.XXXXXX")
chmod 755 "$WORK"
PIDS=()
cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do
        # Each background service runs in its own process group (setsid): kill the whole group.
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    scripts/pg-down "$WORK/pg" >/dev/null 2>&1 || true
    if [ "$status" -ne 0 ]; then
        log "FAILED; service logs follow"
        tail -n 40 "$WORK"/*.log >&2 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT INT TERM

step() { printf '\n== %s\n' "$*"; }
fail() { log "FAIL: $*"; exit 1; }

# Waits until `cmd…` succeeds, for at most $1 seconds.
wait_for() {
    local limit=$1; shift
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# json_get KEY... prints the value at that path of the JSON on stdin: a number indexes an array,
# `#` is the length of what is there. No eval: the path is data.
json_get() {
    python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1:]:
    v = len(v) if k == "#" else v[int(k)] if isinstance(v, list) else v[k]
print(v)' "$@"
}

step "build the functions and market-sim"
cargo build -q -p select-tickers -p fetch-batch -p finalize-run -p market-sim -p statemachine --bins

step "throwaway PostgreSQL"
eval "$(scripts/pg-up "$WORK/pg")"
ADMIN_URL=$DATABASE_URL
psql -q "$ADMIN_URL" -c 'CREATE DATABASE smoke'
export DATABASE_URL="${ADMIN_URL%/*}/smoke"
target/debug/backfill migrate

step "market-sim"
setsid target/debug/market-sim --port 0 >"$WORK/market-sim.log" 2>&1 &
PIDS+=($!)
wait_for 30 grep -q 'listening on' "$WORK/market-sim.log" || fail "market-sim did not start"
SIM_URL=$(grep -o 'http://[0-9.:]*' "$WORK/market-sim.log" | head -n1)
echo "market-sim at $SIM_URL"

step "cargo lambda watch"
LAMBDA_PORT=$(free_port)
export YAHOO_BASE_URL=$SIM_URL POLYGON_BASE_URL=$SIM_URL POLYGON_API_KEY=test-key
export PROVIDER_REQUESTS_PER_MINUTE=6000 RUST_LOG=info
setsid cargo-lambda lambda watch --invoke-address 127.0.0.1 --invoke-port "$LAMBDA_PORT" \
    >"$WORK/watch.log" 2>&1 &
PIDS+=($!)
wait_for 60 python3 -c "import socket; socket.create_connection(('127.0.0.1', $LAMBDA_PORT), 1)" \
    || fail "cargo lambda watch did not listen on $LAMBDA_PORT"

invoke() { # function, then --data-file F or --data-ascii JSON
    local fn=$1; shift
    cargo-lambda lambda invoke "$fn" --invoke-address 127.0.0.1 --invoke-port "$LAMBDA_PORT" "$@"
}

step "select-tickers with functions/select-tickers/events/explicit-symbols.json"
SELECTED=$(invoke select-tickers --data-file functions/select-tickers/events/explicit-symbols.json)
echo "$SELECTED"
RUN_ID=$(json_get run_id <<<"$SELECTED")
[ "$(json_get batches '#' <<<"$SELECTED")" = 1 ] || fail "expected exactly one batch"
[ "$(json_get tickers <<<"$SELECTED")" = 2 ] || fail "expected two tickers"

truth_count() {
    curl -fsS "$SIM_URL/__admin/ground-truth?provider=yahoo&symbol=$1&interval=1h&start=2026-03-09&end=2026-03-11" \
        | json_get bars '#'
}
EXPECTED=$(( $(truth_count AAPL) + $(truth_count MSFT) ))
[ "$EXPECTED" -gt 0 ] || fail "market-sim reports no ground-truth bars"

step "fetch-batch (first run writes the ground truth)"
FETCHED=$(invoke fetch-batch --data-ascii "{\"run_id\":\"$RUN_ID\",\"batch\":0}")
echo "$FETCHED"
[ "$(json_get status <<<"$FETCHED")" = "done" ] || fail "expected status done"
[ "$(json_get records_inserted <<<"$FETCHED")" = "$EXPECTED" ] \
    || fail "inserted $(json_get records_inserted <<<"$FETCHED") rows, ground truth has $EXPECTED"

# Row-by-row comparison of what is stored with market-sim's ground truth.
for symbol in AAPL MSFT; do
    curl -fsS "$SIM_URL/__admin/ground-truth?provider=yahoo&symbol=$symbol&interval=1h&start=2026-03-09&end=2026-03-11" \
        >"$WORK/truth-$symbol.json"
    psql -qAt "$DATABASE_URL" -c "
        SELECT json_agg(json_build_object('ts', to_char(date AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
               'open', open_price::float8, 'high', high_price::float8, 'low', low_price::float8,
               'close', close_price::float8, 'volume', volume) ORDER BY date)
          FROM stock_price_history WHERE symbol = '$symbol'" >"$WORK/stored-$symbol.json"
    python3 - "$WORK/truth-$symbol.json" "$WORK/stored-$symbol.json" "$symbol" <<'PY'
import json, sys
truth = json.load(open(sys.argv[1]))["bars"]
stored = json.load(open(sys.argv[2])) or []
def key(b):
    ts = b["ts"].replace("+00:00", "Z")
    return (ts, round(b["open"], 4), round(b["high"], 4), round(b["low"], 4), round(b["close"], 4), b["volume"])
t, s = [key(b) for b in truth], [key(b) for b in stored]
if t != s:
    sys.exit(f"{sys.argv[3]}: stored bars differ from ground truth ({len(s)} stored, {len(t)} expected); first diff: "
             + str(next(((a, b) for a, b in zip(t, s) if a != b), None)))
print(f"{sys.argv[3]}: {len(s)} stored bars equal the ground truth")
PY
done

step "fetch-batch again (idempotent: inserts 0, updates 0)"
AGAIN=$(invoke fetch-batch --data-ascii "{\"run_id\":\"$RUN_ID\",\"batch\":0}")
echo "$AGAIN"
[ "$(json_get status <<<"$AGAIN")" = "done" ] || fail "expected status done"
# The batch is done, so nothing is refetched; reprocess=all refetches and must write nothing new.
RESUMED=$(invoke select-tickers --data-ascii "{\"run_id\":\"$RUN_ID\",\"reprocess\":\"all\"}")
BATCH=$(json_get batches 0 batch <<<"$RESUMED")
AGAIN=$(invoke fetch-batch --data-ascii "{\"run_id\":\"$RUN_ID\",\"batch\":$BATCH}")
echo "$AGAIN"
[ "$(json_get attempted <<<"$AGAIN")" = 2 ] || fail "expected both tickers refetched"
[ "$(json_get records_inserted <<<"$AGAIN")" = 0 ] || fail "second run inserted rows"
[ "$(json_get records_updated <<<"$AGAIN")" = 0 ] || fail "second run updated rows"

step "a bad payload is InvalidInput"
if BAD=$(invoke fetch-batch --data-file functions/fetch-batch/events/bad-payload.json 2>&1); then
    fail "bad payload succeeded: $BAD"
fi
echo "$BAD"
grep -q InvalidInput <<<"$BAD" || fail "bad payload did not report InvalidInput"
if BAD=$(invoke select-tickers --data-file functions/select-tickers/events/bad-start-after-end.json 2>&1); then
    fail "start after end succeeded: $BAD"
fi
grep -q InvalidInput <<<"$BAD" || fail "start after end did not report InvalidInput"

step "a payload that is not JSON, null, or names an unknown field is InvalidInput"
for fn in select-tickers fetch-batch finalize-run; do
    if BAD=$(invoke "$fn" --data-ascii 'not json' 2>&1); then
        fail "$fn accepted a non-JSON payload: $BAD"
    fi
    { grep -q InvalidInput <<<"$BAD" && grep -q 'not JSON' <<<"$BAD"; } || fail "$fn: $BAD"
done
for ev in bad-null bad-unknown-field bad-misspelt-knob bad-before-1970 bad-polygon-before-first-data; do
    if BAD=$(invoke select-tickers --data-file "functions/select-tickers/events/$ev.json" 2>&1); then
        fail "$ev succeeded: $BAD"
    fi
    grep -q InvalidInput <<<"$BAD" || fail "$ev did not report InvalidInput: $BAD"
done

step "finalize-run"
FINAL=$(invoke finalize-run --data-ascii "{\"run_id\":\"$RUN_ID\"}")
echo "$FINAL"
[ "$(json_get status <<<"$FINAL")" = succeeded ] || fail "expected run status succeeded"

printf '\nlambda smoke test passed\n'
