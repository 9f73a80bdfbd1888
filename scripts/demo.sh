#!/usr/bin/env bash
# A short tour against a running local daemon: deploy two example agents,
# call their sessions, hibernate one and watch its global counter survive.
set -euo pipefail
BIN=${1:-bin/agentcloud}
run() { echo "\$ agentcloud $*"; "$BIN" "$@"; echo; }
run version
run deploy examples/hello
run deploy examples/counter
run call hello/demo /
run call counter/demo /
run call counter/demo /
run sessions hibernate counter/demo
run call counter/demo /
run sessions list --agent counter
run run -- python3 -c 'print("hello from a sandbox:", 6*7)'
run tools list
run tools call run_code '{"language":"python","code":"print(sum(range(10)))"}'
