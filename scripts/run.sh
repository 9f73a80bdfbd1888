#!/usr/bin/env bash
# Starts an agentcloud node on the embedded defaults, shows that it works,
# and keeps it running in the foreground until Ctrl-C.
set -euo pipefail
BIN=${1:-bin/agentcloud}
DATA=${AGENTCLOUD_DATA:-./agentcloud-data}
export AGENTCLOUD_DATA=$DATA

rm -f "$DATA/api.addr"
"$BIN" serve --data "$DATA" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid' INT TERM

echo "== waiting for the daemon"
"$BIN" status --wait 10s
echo
echo "== demo"
./scripts/demo.sh "$BIN" || echo "(demo failed; the daemon keeps running)"
echo
echo "agentcloud is running (data in $DATA, admin token in $DATA/admin.token). Ctrl-C stops it."
wait $pid
