#!/usr/bin/env bash
# gen-urlpattern.sh: build internal/isolate/urlpattern.js, the URLPattern
# agent code gets, from scripts/urlpattern/entry.js and the pinned npm
# package urlpattern-polyfill (scripts/gen-jslib.sh). The output is checked
# in; run this after changing either pin or entry.js.
#
# Usage: scripts/gen-urlpattern.sh            (from anywhere in the repo)
exec "$(dirname "${BASH_SOURCE[0]}")/gen-jslib.sh" urlpattern urlpattern-polyfill
