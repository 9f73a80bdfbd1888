// Command agentcloud is the single agentcloud binary: daemon and CLI.
package main

import (
	"context"
	"os"

	"github.com/agentcloud/agentcloud/internal/cli"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
)

func main() {
	process.MaybeRunInit() // a process-tier sandbox init is this binary re-executed
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
