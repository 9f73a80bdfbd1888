//go:build linux

// Command initmain is the process tier's small sandbox init: package sbinit
// alone, without the rest of agentcloud. `go generate
// ./internal/sandbox/process` builds it into process/initexe, the daemon
// embeds it, and the tier's spawner executes it from a sealed memfd
// instead of re-executing the whole daemon binary for every sandbox (see
// docs/RATIONALE.md, "Why the sandbox init is a second, embedded binary").
//
// Package sbinit's init function does the work (sbinit.MaybeRun) and never
// returns in a sandbox init; main only runs when someone starts the binary
// by hand.
package main

import (
	"fmt"
	"os"

	"github.com/agentcloud/agentcloud/internal/sandbox/process/sbinit"
)

func main() {
	sbinit.MaybeRun()
	// The daemon probes the init this way once (process/initexe.go,
	// probeInitExe): keep the message and the exit status.
	fmt.Fprintln(os.Stderr, "the agentcloud sandbox init is started by the process tier, not by hand")
	os.Exit(2)
}
