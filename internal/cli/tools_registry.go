package cli

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/agentcloud/agentcloud/api"
	"github.com/spf13/cobra"
)

func newToolsAddCmd(g *globals) *cobra.Command {
	var mcpURL, openapi, baseURL, secret, header, format, query string
	var perMinute int
	var allowPrivate bool
	cmd := &cobra.Command{
		Use:   "add NAME (--mcp URL | --openapi FILE|URL) [--secret NAME [--secret-header H] [--secret-format F] | [--secret-query P]]",
		Short: "Register an upstream MCP server or OpenAPI API; its tools become NAME.<tool>",
		Long: `Register an upstream whose tools join the toolbox as NAME.<tool>:
  --mcp URL           an MCP server over Streamable HTTP
  --openapi FILE|URL  an OpenAPI 3.0/3.1 document (JSON or YAML); each operation becomes a tool
Every tool's name, description and input schema is pinned by hash now. When the
upstream later serves something different, that tool is quarantined until
"agentcloud tools approve NAME". Definitions with hidden characters are refused.

--secret names a secret (see "agentcloud secret set") the platform puts in every
upstream request, in --secret-header (default Authorization) formatted by
--secret-format ("{}" is the value; default "Bearer {}"), or with --secret-query P
as query parameter P. Callers never see it.

--allow-private lets the upstream be on a private or loopback address (a tool
server on this machine or the LAN); the daemon's own API and NATS ports stay
refused.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.ToolRegistryAddRequest{Name: args[0], MCPURL: mcpURL, BaseURL: baseURL, RatePerMinute: perMinute,
				AllowPrivate: allowPrivate}
			switch {
			case (mcpURL == "") == (openapi == ""):
				return fmt.Errorf("give exactly one of --mcp URL and --openapi FILE|URL")
			case openapi != "" && isHTTPURL(openapi):
				req.OpenAPIURL = openapi
			case openapi != "":
				b, err := os.ReadFile(openapi)
				if err != nil {
					return fmt.Errorf("--openapi: %w", err)
				}
				req.OpenAPIDocument = string(b)
			}
			changed := cmd.Flags().Changed
			switch {
			case secret == "" && (changed("secret-header") || changed("secret-format") || changed("secret-query")):
				return fmt.Errorf("--secret-header, --secret-format and --secret-query need --secret NAME")
			case query != "" && changed("secret-header"):
				return fmt.Errorf("give --secret-header or --secret-query, not both")
			case query != "":
				f := "{}"
				if changed("secret-format") {
					f = format
				}
				req.Credential = &api.ToolCredential{Secret: secret, Query: query, Format: f}
			case secret != "":
				req.Credential = &api.ToolCredential{Secret: secret, Header: header, Format: format}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			e, err := c.AddToolUpstream(cmd.Context(), req)
			if err != nil {
				return err
			}
			return g.print(e, func(w io.Writer) {
				fmt.Fprintf(w, "registered %s (%s) with %d tools pinned\n", e.Name, e.Kind, len(e.Tools))
				printRegistryTools(w, e)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&mcpURL, "mcp", "", "URL of an MCP server (Streamable HTTP)")
	f.StringVar(&openapi, "openapi", "", "OpenAPI 3.0/3.1 document: a file, or an http(s) URL")
	f.StringVar(&baseURL, "base-url", "", "call the OpenAPI operations here instead of the document's servers")
	f.StringVar(&secret, "secret", "", "name of the secret that authenticates upstream requests")
	f.StringVar(&header, "secret-header", "Authorization", "header the secret goes in")
	f.StringVar(&format, "secret-format", "Bearer {}", `header value; "{}" is replaced by the secret`)
	f.StringVar(&query, "secret-query", "", "send the secret as this query parameter instead of a header")
	f.IntVar(&perMinute, "rate", 0, "cap calls to this upstream at N a minute per node (0: no cap)")
	f.BoolVar(&allowPrivate, "allow-private", false, "allow an upstream on a private or loopback address")
	return cmd
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func newToolsApproveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "approve NAME [TOOL...]",
		Short: "Re-pin quarantined tools of an upstream (all of them, or the TOOLs named) to what it serves now, through a pipeline run",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.ApproveToolUpstream(cmd.Context(), args[0], args[1:])
			if err != nil {
				return err
			}
			return g.print(res, func(w io.Writer) {
				switch {
				case len(res.Approved) == 0:
					fmt.Fprintf(w, "nothing to approve in %s\n", args[0])
				case res.Run != "" && res.RunState != api.RunPassed:
					fmt.Fprintf(w, "pinning %s is run %s (%s): agentcloud pipeline show %s\n", strings.Join(res.Approved, ", "), res.Run, res.RunState, res.Run)
				default:
					fmt.Fprintf(w, "approved %s\n", strings.Join(res.Approved, ", "))
				}
				printRegistryTools(w, &res.Upstream)
			})
		},
	}
}

func newToolsRefreshCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "refresh NAME",
		Short: "Fetch an upstream's tool definitions now and compare them with the pins",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			e, err := c.RefreshToolUpstream(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return g.print(e, func(w io.Writer) {
				if e.RefreshError != "" {
					fmt.Fprintf(w, "refresh failed (pins kept): %s\n", e.RefreshError)
				}
				printRegistryTools(w, e)
				for _, n := range e.Notes {
					fmt.Fprintf(w, "note: %s\n", n)
				}
			})
		},
	}
}

func newToolsRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Unregister an upstream; its tools leave the toolbox",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.RemoveToolUpstream(cmd.Context(), args[0]); err != nil {
				return err
			}
			return g.print(map[string]string{"removed": args[0]}, func(w io.Writer) { fmt.Fprintf(w, "removed %s\n", args[0]) })
		},
	}
}

func newToolsRegistryCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "registry [NAME]",
		Short: "List registered upstreams (or show one) with each tool's pin and status",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if len(args) == 1 {
				e, err := c.ToolUpstream(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return g.print(e, func(w io.Writer) { printRegistryTools(w, e) })
			}
			l, err := c.ToolUpstreams(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(l, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tKIND\tURL\tTOOLS\tQUARANTINED\tCREDENTIAL")
				for _, e := range l.Upstreams {
					q := 0
					for _, t := range e.Tools {
						if t.Status == api.ToolStatusQuarantined {
							q++
						}
					}
					cred := "-"
					if e.Credential != nil {
						cred = "secret " + e.Credential.Secret + " in " + e.Credential.Header
						if e.Credential.Query != "" {
							cred = "secret " + e.Credential.Secret + " in ?" + e.Credential.Query
						}
					}
					u := e.URL
					if u == "" {
						u = "(document)"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", e.Name, e.Kind, u, len(e.Tools), q, cred)
				}
				tw.Flush()
			})
		},
	}
}

func printRegistryTools(w io.Writer, e *api.ToolRegistryEntry) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOOL\tSTATUS\tHASH\tREASON")
	for _, t := range e.Tools {
		h := t.Hash
		if len(h) > 19 {
			h = h[:19]
		}
		if h == "" {
			h = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Status, h, t.Reason)
	}
	tw.Flush()
}
