#!/usr/bin/env bash
# Starts an agentcloud node on the embedded defaults, shows that it works,
# and keeps it running in the foreground until Ctrl-C. Whatever happens, the
# daemon this script started stops when the script ends.
#
#   scripts/run.sh [BIN]     BIN defaults to bin/agentcloud
#   AGENTCLOUD_DATA          data dir (default ./agentcloud-data)
#   AGENTCLOUD_LISTEN        API address (default 127.0.0.1:7070)
#   AGENTCLOUD_RUN_WAIT      how long to wait for the daemon (default 2m)
set -euo pipefail
abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/${1#./}" ;; esac; }
BIN=$(abs "${1:-bin/agentcloud}")
DATA=$(abs "${AGENTCLOUD_DATA:-./agentcloud-data}")
export AGENTCLOUD_DATA=$DATA
cd "$(dirname "$0")/.." # the demo deploys examples/

# api.addr exists while a daemon serves from the data dir: do not start a
# second one (it could not lock the data dir) nor run the demo against it.
if [ -e "$DATA/api.addr" ] && "$BIN" --data "$DATA" status >/dev/null 2>&1; then
  echo "agentcloud: a daemon already serves from $DATA ($(cat "$DATA/api.addr")); stop it first or set AGENTCLOUD_DATA to another directory" >&2
  exit 1
fi

pid=
stop() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    echo "== stopping the daemon (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  exit "$rc"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$BIN" serve --data "$DATA" &
pid=$!

echo "== waiting for the daemon"
# status --wait waits for <data>/api.addr, which the daemon writes once it
# serves; if the daemon exits first (a bad setting, the port in use), stop.
"$BIN" --data "$DATA" status --wait "${AGENTCLOUD_RUN_WAIT:-2m}" &
waiter=$!
finished= rc=0
wait -n -p finished "$pid" "$waiter" || rc=$?
if [ "$finished" = "$pid" ]; then
  pid=
  kill "$waiter" 2>/dev/null || true
  echo "agentcloud: the daemon exited during start-up with status $rc (its log is above)" >&2
  exit 1
fi
[ "$rc" = 0 ] || exit "$rc"
echo
echo "== demo"
./scripts/demo.sh "$BIN" || echo "(demo failed; the daemon keeps running)"
echo
echo "web console: http://$(cat "$DATA/api.addr")/ui/ (sign in with the admin token: cat $DATA/admin.token)"
echo "agentcloud is running (data in $DATA, admin token in $DATA/admin.token). Ctrl-C stops it."
wait "$pid"
