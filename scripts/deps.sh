#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
command -v runsc >/dev/null || need_apt+=(runsc)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v wat2wasm >/dev/null || need_apt+=(wabt)
command -v node >/dev/null || need_apt+=(nodejs npm)
# Debian's pytest runs the Python SDK's tests (sdk/python) in internal/doctest.
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import pytest' 2>/dev/null || need_apt+=(python3-pytest)
# pip for the sandbox test that installs a package through the egress proxy (internal/daemon TestPipInstallThroughEgressClass).
[ -x /usr/bin/python3 ] && /usr/bin/python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
# Debian's chromium for the web console's browser test (internal/daemon TestConsoleBrowser).
command -v chromium >/dev/null || need_apt+=(chromium)
# clang for wasm32-wasi builds examples/wasm-counter (C against the host ABI).
command -v clang >/dev/null || need_apt+=(clang)
command -v wasm-ld >/dev/null || need_apt+=(lld)
[ -f /usr/lib/wasm32-wasi/libc.a ] || need_apt+=(wasi-libc)
# mmdebstrap builds Debian rootfs templates (template create --from-debian; internal/sandbox/image TestDebianTemplatePip, internal/daemon TestAptInstallThroughEgressClass).
command -v mmdebstrap >/dev/null || need_apt+=(mmdebstrap)
compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a" >/dev/null || need_apt+=(libclang-rt-dev-wasm32)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "deps: installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "deps: missing ${need_apt[*]}; install them with apt-get (needs root); tests needing them will skip" >&2
  fi
fi
./scripts/fetch-quickjs.sh
go mod download
./scripts/runsc.sh || echo "deps: the pinned runsc was not installed; the gvisor tier uses Debian's runsc" >&2
# Pinned by their lockfiles: the official MCP TypeScript SDK for
# internal/daemon/tools_ts_test.go, Redocly CLI, which lints /openapi.json
# in internal/doctest/openapi_test.go, playwright-core and axe-core, which
# drive and check the web console in internal/daemon/console_browser_test.go,
# the e2b SDK for internal/daemon/e2b_sdk_test.go, and workerd.
if command -v npm >/dev/null; then
  (cd internal/daemon/testdata/console && npm ci --no-audit --no-fund --silent)
  (cd internal/daemon/testdata/mcpts && npm ci --no-audit --no-fund --silent)
  (cd internal/daemon/testdata/e2bjs && npm ci --no-audit --no-fund --silent)
  (cd internal/doctest/testdata/redocly && npm ci --no-audit --no-fund --silent)
  # The TypeScript compiler and Node types the TypeScript SDK builds with.
  (cd sdk/typescript && npm ci --no-audit --no-fund --silent)
  # workerd, the Workers runtime: the same app runs on it and on agentcloud
  # in internal/session/sessionhttp/workerd_test.go.
  (cd internal/session/sessionhttp/testdata/workerd && npm ci --no-audit --no-fund --silent)
  (cd internal/bundle/jsbuild/testdata/tsc && npm ci --no-audit --no-fund --silent) # tsc for TestTypesCompileWithTSC
  (cd internal/isolate/testdata/whatwg-url && npm ci --no-audit --no-fund --silent) # TestURLConformanceWhatwgURL
fi
