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
	var method, data string
	var headers []string
	var include bool
	cmd := &cobra.Command{
		Use:   "call AGENT/SESSION [PATH]",
		Short: "Send a request to an agent session and print the response body",
		Long: `Call sends one HTTP request to the session's fetch handler (the session is
created on first use) and prints the response body. -d @FILE reads the body
from a file, -d @- from standard input. Exits 1 when the status is 400 or more.`,
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
			var body io.Reader
			if data != "" {
				switch {
				case data == "@-":
					body = os.Stdin
				case strings.HasPrefix(data, "@"):
					f, err := os.Open(data[1:])
					if err != nil {
						return fmt.Errorf("-d %s: %w", data, err)
					}
					defer f.Close()
					body = f
				default:
					body = strings.NewReader(data)
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
			resp, err := c.Call(cmd.Context(), a, id, strings.ToUpper(method), path, body, h)
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
	f.StringVarP(&data, "data", "d", "", "request body; @FILE reads a file, @- standard input")
	f.StringArrayVarP(&headers, "header", "H", nil, "request header 'Name: value' (repeatable)")
	f.BoolVarP(&include, "include", "i", false, "print the status line and headers")
	return cmd
}
