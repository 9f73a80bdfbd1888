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

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/auth"
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
		newToolsCmd(g), newMCPCmd(g), newModelsCmd(g), newUsageCmd(g))
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
	server, token := g.credentials()
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

// credentials are the daemon URL and bearer token from the global flags,
// found in the data dir when not given ("" when not found).
func (g *globals) credentials() (server, token string) {
	server, token = g.server, g.token
	if server == "" {
		if b, err := os.ReadFile(filepath.Join(g.data, daemon.URLFile)); err == nil {
			server = strings.TrimSpace(string(b)) // a --tls daemon: https://
		} else if b, err := os.ReadFile(filepath.Join(g.data, daemon.AddrFile)); err == nil {
			server = "http://" + strings.TrimSpace(string(b))
		}
	}
	if token == "" {
		if b, err := os.ReadFile(filepath.Join(g.data, auth.TokenFile)); err == nil {
			token = strings.TrimSpace(string(b))
		}
	}
	return server, token
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
