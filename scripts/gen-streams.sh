#!/usr/bin/env bash
# gen-streams.sh: build internal/isolate/streams.js, the web streams agent
# code gets (ReadableStream, WritableStream, TransformStream, the encoding
# and compression streams), from scripts/streams/entry.js and the pinned npm
# package web-streams-polyfill (scripts/gen-jslib.sh). The output is checked
# in; run this after changing either pin or entry.js.
#
# Usage: scripts/gen-streams.sh            (from anywhere in the repo)
exec "$(dirname "${BASH_SOURCE[0]}")/gen-jslib.sh" streams web-streams-polyfill
