#!/usr/bin/env bash
# A short tour against a running local daemon: health, identity, status.
set -euo pipefail
BIN=${1:-bin/agentcloud}
echo "\$ agentcloud version"; "$BIN" version
echo "\$ agentcloud status -o json"; "$BIN" status -o json
