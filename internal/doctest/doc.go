// Package doctest keeps what a new user reads and runs true: its tests run
// every ```sh block of README.md and examples/*/README.md as written against
// a real daemon, deploy every example agent of docs/AGENT-API.md to a real
// daemon and compare its answers with the transcript beside it, run
// scripts/run.sh (what `make run` runs) with the binary built from the
// tree, and hold /openapi.json to a golden file and the Redocly linter. It
// has no code outside its tests.
package doctest
