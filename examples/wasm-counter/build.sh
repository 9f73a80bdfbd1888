#!/usr/bin/env bash
# Builds agent.wasm from agent.c: a wasm32-wasi reactor for the agentcloud
# host ABI. Needs clang, lld and wasi-libc (Debian: apt-get install clang lld
# wasi-libc libclang-rt-dev-wasm32). Usage: ./build.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-agent.wasm}
exec "${CLANG:-clang}" --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor \
  -O2 -Wall -Werror -Wl,--strip-all -o "$out" agent.c
