// Command agentcloud is the single agentcloud binary: daemon and CLI.
package main

import (
	"context"
	"os"

	"github.com/agentcloud/agentcloud/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
