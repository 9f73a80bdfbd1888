// Package cli implements the agentcloud command line: one file per
// subcommand, each a constructor returning a *cobra.Command. It talks to the
// daemon through client/ only, except `serve`, which starts internal/daemon.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/spf13/cobra"
)

// globals are the flags every command shares.
type globals struct {
	server string
	token  string
	data   string
	output string
	// TLS client settings (tls.go).
	caCert, clientCert, clientKey string
	stdout                        io.Writer
	stderr                        io.Writer
}

// Main runs the CLI with args (without the program name) and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ec exitCode
	if errors.As(err, &ec) {
		return int(ec)
	}
	fmt.Fprintf(stderr, "agentcloud: %s\n", describe(err))
	return 1
}

// exitCode is returned by commands that exit with a specific status.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func describe(err error) string {
	var p *api.Problem
	if errors.As(err, &p) {
		s := fmt.Sprintf("%s (%d %s)", p.Detail, p.Status, p.Kind())
		if p.Field != "" {
			s += " [field: " + p.Field + "]"
		}
		if p.Status == 401 {
			s += "\nhint: pass --token or set AGENTCLOUD_TOKEN (a local daemon's admin token is in <data>/admin.token)"
		}
		if h := tlsHint(err); h != "" {
			s += "\nhint: " + h
		}
		return s
	}
	if h := tlsHint(err); h != "" {
		return err.Error() + "\nhint: " + h
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return err.Error() + "\nhint: no daemon listens there: start one with 'agentcloud serve' (the CLI finds a local one through <data>/" + daemon.AddrFile + "; pass --data DIR or --server URL)"
	}
	return err.Error()
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "agentcloud",
		Short: "A self-hostable cloud for AI agents",
		Long: `agentcloud runs durable agent sessions, sandboxes for agent-written code,
and the tools agents use, in one binary. Start a node with 'agentcloud serve'.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			switch g.output {
			case "text", "json":
				return nil
			}
			return fmt.Errorf("invalid --output %q: want text or json", g.output)
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", os.Getenv("AGENTCLOUD_SERVER"), "daemon URL (env AGENTCLOUD_SERVER; default: <data>/api.addr, else "+client.DefaultServer+")")
	pf.StringVar(&g.token, "token", os.Getenv("AGENTCLOUD_TOKEN"), "bearer token (env AGENTCLOUD_TOKEN; default: <data>/admin.token)")
	pf.StringVar(&g.data, "data", envOr("AGENTCLOUD_DATA", "./agentcloud-data"), "data directory (env AGENTCLOUD_DATA)")
	pf.StringVar(&g.caCert, "ca-cert", os.Getenv("AGENTCLOUD_CA_CERT"), "CA to verify an https:// daemon (env AGENTCLOUD_CA_CERT; default: <data>/ca/ca.crt)")
	pf.StringVar(&g.clientCert, "client-cert", os.Getenv("AGENTCLOUD_CLIENT_CERT"), "client certificate for mTLS (env AGENTCLOUD_CLIENT_CERT; default: <data>/admin.crt)")
	pf.StringVar(&g.clientKey, "client-key", os.Getenv("AGENTCLOUD_CLIENT_KEY"), "client certificate's key (env AGENTCLOUD_CLIENT_KEY; default: <data>/admin.key)")
	pf.StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	root.AddCommand(newVersionCmd(g), newServeCmd(g), newStatusCmd(g), newDeployCmd(g), newDevCmd(g),
		newAgentsCmd(g), newSessionsCmd(g), newCallCmd(g), newBenchCmd(g),
		newSandboxCmd(g), newRunCmd(g),
		newTokenCmd(g), newIdentityCmd(g), newPolicyCmd(g), newSecretCmd(g), newApprovalsCmd(g), newAuditCmd(g),
		newToolsCmd(g), newMCPCmd(g), newModelsCmd(g), newUsageCmd(g),
		newTrafficCmd(g), newClusterCmd(g), newNodeCmd(g))
	root.AddCommand(newPipelineCmd(g), newLedgerCmd(g), newRollbackCmd(g), newTestCmd(g)) // deploy pipeline (pipeline.go, ledger.go, test.go)
	root.AddCommand(newTypesCmd(g), newInitCmd(g))                                        // authoring (types.go, init.go)
	root.AddCommand(newLogsCmd(g))                                                        // logs.go
	root.AddCommand(newTemplateCmd(g))                                                    // template.go
	root.AddCommand(newVolumeCmd(g))                                                      // volume.go
	return root
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// client builds an API client from the global flags, finding a local
// daemon's address and admin token in the data dir when not given.
func (g *globals) client() (*client.Client, error) {
	cr := g.credentials()
	return g.clientFor(cr.server, cr.token)
}

// clientFor builds an API client for server ("" = the default) and token.
func (g *globals) clientFor(server, token string) (*client.Client, error) {
	var opts []client.Option
	if server == "" {
		server = client.DefaultServer
	}
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	hc, err := g.httpClient(server)
	if err != nil {
		return nil, err
	}
	if hc != nil {
		opts = append(opts, client.WithHTTPClient(hc))
	}
	c, err := client.New(server, token, opts...)
	if err != nil {
		return nil, fmt.Errorf("invalid --server: %w", err)
	}
	return c, nil
}

// creds are the daemon URL and bearer token the CLI uses, and where they
// came from.
type creds struct {
	server, token string
	// serverFromData and tokenFromData say the value was read from the
	// data dir (and may change when a daemon starts there).
	serverFromData, tokenFromData bool
}

// credentials are the daemon URL and bearer token from the global flags,
// found in the data dir when not given ("" when not found). A daemon writes
// <data>/api.addr last, once it serves, so the address is taken from there
// only when that file exists (<data>/api.url, written just before it by a
// --tls daemon, then gives the https:// URL).
func (g *globals) credentials() creds {
	cr := creds{server: g.server, token: g.token}
	if cr.server == "" {
		if b, err := os.ReadFile(filepath.Join(g.data, daemon.AddrFile)); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			cr.server, cr.serverFromData = "http://"+strings.TrimSpace(string(b)), true
			if b, err := os.ReadFile(filepath.Join(g.data, daemon.URLFile)); err == nil && len(strings.TrimSpace(string(b))) > 0 {
				cr.server = strings.TrimSpace(string(b)) // a --tls daemon: https://
			}
		}
	}
	if cr.token == "" {
		if b, err := os.ReadFile(filepath.Join(g.data, daemon.TokenFile)); err == nil {
			cr.token, cr.tokenFromData = strings.TrimSpace(string(b)), true
		}
	}
	return cr
}

// print writes v as JSON with --output json, or calls text otherwise.
func (g *globals) print(v any, text func(w io.Writer)) error {
	if g.output == "json" {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(g.stdout)
	return nil
}
