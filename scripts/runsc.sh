#!/usr/bin/env bash
# Installs the pinned gVisor runsc (with the systrap platform) at
# /usr/local/lib/agentcloud/runsc, where the gvisor sandbox tier looks first
# (internal/sandbox/gvisor DefaultRunsc). Built from source through the Go
# module proxy; the module's checksum is checked against the Go checksum
# database (go's default) and against the hash pinned below. Idempotent.
set -euo pipefail
VERSION=v0.0.0-20260905035102-160fafc42237            # gvisor.dev/gvisor, keep in step with RunscVersion
SUM='h1:AU5+CtCvnBnxdZRNcZt1NfSLqgkXZVT3N/u6u1aXg44='    # its module hash (go.sum form)
DIR=${AGENTCLOUD_RUNSC_DIR:-/usr/local/lib/agentcloud}
if [ -x "$DIR/runsc" ] && [ "$(cat "$DIR/runsc.version" 2>/dev/null)" = "$VERSION" ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] && [ ! -w "$(dirname "$DIR")" ]; then
  echo "runsc: cannot write $DIR (run as root)" >&2
  exit 1
fi
# Checksum verification on, whatever the environment says.
unset GONOSUMDB GONOSUMCHECK GOINSECURE GOPRIVATE GONOVERIFY
export GOFLAGS=-mod=mod GOSUMDB=sum.golang.org
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" # outside any module: nothing here edits a go.mod
got=$(go mod download -json "gvisor.dev/gvisor@$VERSION" | sed -n 's/^[[:space:]]*"Sum": "\(.*\)",*$/\1/p')
if [ "$got" != "$SUM" ]; then
  echo "runsc: gvisor.dev/gvisor@$VERSION has checksum '$got', want $SUM" >&2
  exit 1
fi
echo "runsc: building gvisor.dev/gvisor/runsc@$VERSION (a few minutes)"
# Static, as gVisor ships it: the sandbox re-executes itself inside an empty
# chroot, where no dynamic loader is.
CGO_ENABLED=0 GOBIN=$tmp go install "gvisor.dev/gvisor/runsc@$VERSION"
mkdir -p "$DIR"
install -m 0755 "$tmp/runsc" "$DIR/runsc.new"
mv "$DIR/runsc.new" "$DIR/runsc"
echo "$VERSION" > "$DIR/runsc.version"
"$DIR/runsc" --version | head -1
