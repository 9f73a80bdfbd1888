#!/usr/bin/env bash
# fetch-quickjs.sh: fetch the pinned QuickJS-NG WASI build (npm package
# quickjs-wasi) and place its quickjs.wasm where internal/isolate embeds it.
#
# Idempotent: exits early when the wasm is already present with the pinned
# sha256. Needs npm (registry access), tar and sha256sum.
#
# Usage: scripts/fetch-quickjs.sh            (from anywhere in the repo)
set -euo pipefail

PKG="quickjs-wasi"
VERSION="3.6.2"
TARBALL_SHA256="f1f4349f19a2d849e33ea0ae9bec2e7062b8839f4eceb17c9051ddbaa2720982"
WASM_SHA256="d4c9375f2b1ca4dc95f72c8aa2982a7a9951ac8011490d79c6582df732b4bbd9"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${ROOT}/internal/isolate/quickjs/quickjs.wasm"

sha256() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -f "${DEST}" ]] && [[ "$(sha256 "${DEST}")" == "${WASM_SHA256}" ]]; then
	echo "fetch-quickjs: ${DEST#"${ROOT}"/} is up to date (${PKG}@${VERSION})"
	exit 0
fi

for tool in npm tar sha256sum; do
	command -v "${tool}" >/dev/null || { echo "fetch-quickjs: ${tool} not found in PATH" >&2; exit 1; }
done

WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT

echo "fetch-quickjs: npm pack ${PKG}@${VERSION}"
(cd "${WORK}" && npm pack --silent "${PKG}@${VERSION}" >/dev/null)
TGZ="${WORK}/${PKG}-${VERSION}.tgz"
[[ -f "${TGZ}" ]] || { echo "fetch-quickjs: npm pack produced no ${PKG}-${VERSION}.tgz" >&2; exit 1; }

GOT="$(sha256 "${TGZ}")"
if [[ "${GOT}" != "${TARBALL_SHA256}" ]]; then
	echo "fetch-quickjs: sha256 mismatch for ${PKG}-${VERSION}.tgz" >&2
	echo "  want ${TARBALL_SHA256}" >&2
	echo "  got  ${GOT}" >&2
	echo "refusing to use it: the registry served different bytes than the pinned release" >&2
	exit 1
fi

tar -xzf "${TGZ}" -C "${WORK}" package/quickjs.wasm
GOT="$(sha256 "${WORK}/package/quickjs.wasm")"
if [[ "${GOT}" != "${WASM_SHA256}" ]]; then
	echo "fetch-quickjs: sha256 mismatch for package/quickjs.wasm (want ${WASM_SHA256}, got ${GOT})" >&2
	exit 1
fi

mkdir -p "$(dirname "${DEST}")"
install -m 0644 "${WORK}/package/quickjs.wasm" "${DEST}.tmp"
mv -f "${DEST}.tmp" "${DEST}"
echo "fetch-quickjs: wrote ${DEST#"${ROOT}"/} (${PKG}@${VERSION}, sha256 ${WASM_SHA256})"
