#!/usr/bin/env bash
# test-packages.sh prints the module's packages in the order `make test`
# hands them to `go test`: the longest-running first, then the rest.
# go test starts its package runs in the order given, so the long ones
# start while the short ones fill the other slots, rather than all waiting
# at the end. The list is a schedule, not a selection: every package of
# ./... is printed once, and one missing from SLOW still runs.
set -euo pipefail
cd "$(dirname "$0")/.."
mod=$(go list -m)
SLOW=(
  internal/daemon internal/daemon/proctest internal/doctest internal/session internal/sandbox/gvisor
  internal/sandbox/image internal/pipeline internal/ledger internal/rollout
  internal/bench internal/cli internal/sandbox/process internal/store internal/isolate
)
declare -A seen
for p in "${SLOW[@]}"; do
  [ -d "$p" ] || continue
  echo "$mod/$p"
  seen[$mod/$p]=1
done
go list ./... | while read -r p; do
  [ -n "${seen[$p]:-}" ] || echo "$p"
done
