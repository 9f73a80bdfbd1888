package cli

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func newCallCmd(g *globals) *cobra.Command {
	var method, body string
	var headers []string
	var include, preview bool
	cmd := &cobra.Command{
		Use:   "call AGENT/SESSION [PATH]",
		Short: "Send a request to an agent session and print the response body",
		Long: `Call sends one HTTP request to the session's fetch handler (the session is
created on first use) and prints the response body. --body/-d sets the request
body (and makes the method POST unless -X says otherwise); -d @FILE reads it
from a file, -d @- from standard input. --preview sends it to the session of the
agent's preview (agentcloud dev) instead of production. Exits 1 when the status
is 400 or more.

  agentcloud call counter/alice /
  agentcloud call notes/alice /notes -d '{"text":"hi"}' -H 'Content-Type: application/json'`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, id, err := splitSession(args[0])
			if err != nil {
				return err
			}
			path := "/"
			if len(args) == 2 {
				path = args[1]
			}
			var in io.Reader
			if body != "" {
				switch {
				case body == "@-":
					in = os.Stdin
				case strings.HasPrefix(body, "@"):
					f, err := os.Open(body[1:])
					if err != nil {
						return fmt.Errorf("--body %s: %w", body, err)
					}
					defer f.Close()
					in = f
				default:
					in = strings.NewReader(body)
				}
				if method == "" {
					method = http.MethodPost
				}
			}
			if method == "" {
				method = http.MethodGet
			}
			h := http.Header{}
			for _, kv := range headers {
				k, v, ok := strings.Cut(kv, ":")
				if !ok {
					return fmt.Errorf("invalid -H %q: write it as 'Name: value'", kv)
				}
				h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			call := c.Call
			if preview {
				call = c.CallPreview
			}
			resp, err := call(cmd.Context(), a, id, strings.ToUpper(method), path, in, h)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if include {
				fmt.Fprintf(g.stdout, "%s %s\n", resp.Proto, resp.Status)
				_ = resp.Header.Write(g.stdout)
				fmt.Fprintln(g.stdout)
			}
			if _, err := io.Copy(g.stdout, resp.Body); err != nil {
				return err
			}
			if resp.StatusCode >= 400 {
				return exitCode(1)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&method, "request", "X", "", "HTTP method (default GET, or POST with -d)")
	// Not --data: that is the global data directory flag.
	f.StringVarP(&body, "body", "d", "", "request body; @FILE reads a file, @- standard input")
	f.StringArrayVarP(&headers, "header", "H", nil, "request header 'Name: value' (repeatable)")
	f.BoolVarP(&include, "include", "i", false, "print the status line and headers")
	f.BoolVar(&preview, "preview", false, "call the session of the agent's preview (agentcloud dev), not production")
	return cmd
}
