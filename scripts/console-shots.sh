#!/usr/bin/env bash
# Regenerates the screenshots of the web console in docs/img/ (linked from
# the README): runs the browser test, which deploys, calls, opens a sandbox
# and approves a release in Debian's chromium, saving each main view.
#   scripts/console-shots.sh          needs chromium, node and the npm test
#                                     packages (scripts/deps.sh installs them)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/img
go test -count=1 -run '^TestConsoleBrowser$' ./internal/daemon -args -console-shots "$PWD/docs/img"
ls docs/img/console-*.png
