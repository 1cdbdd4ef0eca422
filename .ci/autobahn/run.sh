#!/usr/bin/env bash
# Runs the Autobahn|Testsuite (wstest 0.8.2) on loopback, both sides, and gates on its reports.
# Servers: the fuzzing client against two echo servers, in one job:
#   - ws-channels:       `echo` example, channel /raw: every text and binary message echoed
#                        through the runtime (routing, connection task, writer queue);
#   - tokio-tungstenite: `autobahn_baseline` example, the bare library the runtime is built on.
# Cases: fuzzingclient.json (1–7, 9.1, 9.2, 10).
# Clients: the fuzzing server, echoed by the `autobahn_client` example twice, one after the
# other: through the library's Client (agent ws-channels-client) and through a bare
# tokio-tungstenite client (tokio-tungstenite-client). Cases: fuzzingserver.json (1–7,
# 9.1.1–9.2.3, 10).
# The gate (gate.py), for each side, fails on any case of ws-channels that fails, and on any
# non-OK verdict of it that the baseline does not share.
#
# Usage: .ci/autobahn/run.sh   (from anywhere; .ci/run calls it)
#   AUTOBAHN_PROFILE=dev   use the debug build instead of --release
#   AUTOBAHN_TIMEOUT=N     seconds for the servers and for wstest (default 600)
# Installs wstest into target/autobahn first (install.sh; reused when present). If it cannot,
# this fails under CI=true and otherwise says loudly that the suite was skipped.
# Reports: target/autobahn/reports/{servers,clients}/index.html (and index.json, what the gate
# reads).
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
DIR=$PWD/target/autobahn
LIMIT=${AUTOBAHN_TIMEOUT:-600}
OURS=ws-channels
BASELINE=tokio-tungstenite

if ! .ci/autobahn/install.sh "$DIR"; then
  if [ "${CI:-}" = true ]; then
    echo "error: autobahn: wstest could not be installed (above); the conformance suite must run in CI" >&2
    exit 1
  fi
  echo "################################################################################"
  echo "SKIPPED autobahn: wstest could not be installed (above); the conformance suite did not run"
  echo "################################################################################"
  exit 0
fi

case "${AUTOBAHN_PROFILE:-release}" in
  release) flag=--release; profile_dir=release ;;
  dev) flag=; profile_dir=debug ;;
  *) echo "error: AUTOBAHN_PROFILE is release or dev" >&2; exit 1 ;;
esac
cargo build $flag -p ws-channels-examples --example echo --example autobahn_baseline --example autobahn_client
bin=${CARGO_TARGET_DIR:-target}/$profile_dir/examples

pids=()
stop_servers() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_servers EXIT

# Starts example $1 on an ephemeral loopback port and sets `addr` to its ws:// address (not
# in a subshell: the pid must reach `pids`).
serve() {
  local log="$DIR/$1.log"
  addr=""
  timeout "$LIMIT" "$bin/$1" 127.0.0.1:0 >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do
    addr=$(sed -n 's/^listening on //p' "$log")
    [ -n "$addr" ] && return
    sleep 0.1
  done
  echo "error: autobahn: example $1 did not print its address:" >&2
  cat "$log" >&2
  return 1
}
serve echo
ours_url=$addr/raw
serve autobahn_baseline
baseline_url=$addr

rm -rf "$DIR/reports"
python3 - "$DIR" "$OURS" "$ours_url" "$BASELINE" "$baseline_url" <<'PY'
import json, sys
out, ours, ours_url, baseline, baseline_url = sys.argv[1:]
spec = json.load(open(".ci/autobahn/fuzzingclient.json"))
spec["outdir"] = out + "/reports/servers"
spec["servers"] = [{"agent": ours, "url": ours_url}, {"agent": baseline, "url": baseline_url}]
json.dump(spec, open(out + "/fuzzingclient.json", "w"), indent=2)
PY
echo "== wstest -m fuzzingclient: $OURS at $ours_url, $BASELINE at $baseline_url"
suite=$SECONDS
rc=0
(cd "$DIR" && timeout "$LIMIT" ./wstest -m fuzzingclient -s fuzzingclient.json >wstest.log 2>&1) || rc=$?
if [ "$rc" -ne 0 ]; then
  tail -n 20 "$DIR/wstest.log" >&2
  [ "$rc" -eq 124 ] && echo "error: autobahn: wstest did not finish within ${LIMIT}s" >&2
  echo "error: autobahn: wstest exited with $rc (log: target/autobahn/wstest.log)" >&2
  exit 1
fi
echo "suite ran in $((SECONDS - suite))s (both servers); report: target/autobahn/reports/servers/index.html"
stop_servers
trap - EXIT
status=0
python3 .ci/autobahn/gate.py "$DIR/fuzzingclient.json" "$DIR/reports/servers/index.json" "$OURS" "$BASELINE" \
  || status=$?

# The client side. wstest's fuzzing server needs a port of its own: a free one, asked of the OS.
OURS_CLIENT=ws-channels-client
BASELINE_CLIENT=tokio-tungstenite-client
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 - "$DIR" "$port" <<'PY'
import json, sys
out, port = sys.argv[1:]
spec = json.load(open(".ci/autobahn/fuzzingserver.json"))
spec["url"] = "ws://127.0.0.1:" + port
spec["outdir"] = out + "/reports/clients"
json.dump(spec, open(out + "/fuzzingserver.json", "w"), indent=2)
PY
(cd "$DIR" && exec timeout "$LIMIT" ./wstest -m fuzzingserver -s fuzzingserver.json >wstest-server.log 2>&1) &
pids=($!)
trap stop_servers EXIT
for _ in $(seq 300); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
  sleep 0.1
done
echo "== wstest -m fuzzingserver on ws://127.0.0.1:$port: $OURS_CLIENT, then $BASELINE_CLIENT"
suite=$SECONDS
for agent in "$OURS_CLIENT" "$BASELINE_CLIENT --baseline"; do
  # shellcheck disable=SC2086 # the agent and its flag are two words
  timeout "$LIMIT" "$bin/autobahn_client" "ws://127.0.0.1:$port" $agent >"$DIR/${agent%% *}.log" 2>&1 || {
    tail -n 20 "$DIR/${agent%% *}.log" >&2
    echo "error: autobahn: the client ${agent%% *} did not finish (log: target/autobahn/${agent%% *}.log)" >&2
    exit 1
  }
done
echo "client suite ran in $((SECONDS - suite))s (both clients); report: target/autobahn/reports/clients/index.html"
stop_servers
trap - EXIT
python3 .ci/autobahn/gate.py "$DIR/fuzzingserver.json" "$DIR/reports/clients/index.json" "$OURS_CLIENT" \
  "$BASELINE_CLIENT" || status=$?
echo "autobahn step: $((SECONDS - start))s in all"
exit "$status"
