// Package proctest holds the daemon's tests that run it as separate
// processes: kill -9 and restart, SIGTERM, multi-node clusters. They wait
// on processes more than they compute, so they live apart from
// internal/daemon's in-process tests and go test runs the two packages
// side by side. The package has no code of its own.
package proctest
