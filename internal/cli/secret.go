package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/agentcloud/agentcloud/api"
	"github.com/spf13/cobra"
)

func newSecretCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "secret", Short: "Store secrets that agent code uses as {{secret:NAME}} placeholders"}
	var (
		fromFile  string
		hosts     []string
		allowHTTP bool
	)
	set := &cobra.Command{
		Use:   "set NAME [--from-file F] --allow-host PATTERN[:PORT]... [--allow-http]",
		Short: "Create or replace a secret (value from --from-file, else stdin)",
		Long: `Store a secret encrypted at rest (AES-256-GCM). Agent code never sees it: it
writes {{secret:NAME}} in a request header and the egress proxy substitutes the value
only for https requests to the hosts allowed here (api.example.com or *.example.com,
port 443; api.example.com:8443 for another port), only for agents that list NAME in
their manifest's "secrets" and belong to the secret's owner. --allow-http also allows
plain http (port 80 unless the host names one). Whatever the upstream sends back is
scrubbed of the value.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(hosts) == 0 {
				return fmt.Errorf("missing --allow-host: name the hosts this secret may be sent to")
			}
			var (
				val []byte
				err error
			)
			if fromFile != "" {
				val, err = os.ReadFile(fromFile)
			} else {
				val, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
			}
			if err != nil {
				return fmt.Errorf("read secret value: %w", err)
			}
			value := strings.TrimRight(string(val), "\r\n")
			if value == "" {
				return fmt.Errorf("the secret value is empty")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			s, err := c.SetSecret(cmd.Context(), args[0], api.SecretRequest{Value: value, AllowHosts: hosts, AllowHTTP: allowHTTP})
			if err != nil {
				return err
			}
			return g.print(s, func(w io.Writer) {
				over := "https"
				if s.AllowHTTP {
					over = "https or http"
				}
				fmt.Fprintf(w, "secret %s set; may be sent over %s to %s\n", s.Name, over, strings.Join(s.AllowHosts, ", "))
				if s.Run != "" && s.RunState != api.RunPassed {
					fmt.Fprintf(w, "the change of its hosts is run %s (%s): agentcloud pipeline show %s\n", s.Run, s.RunState, s.Run)
				}
			})
		},
	}
	set.Flags().StringVar(&fromFile, "from-file", "", "read the value from this file (default: stdin)")
	set.Flags().StringSliceVar(&hosts, "allow-host", nil, "host pattern the secret may be sent to, optionally with :PORT (repeatable)")
	set.Flags().BoolVar(&allowHTTP, "allow-http", false, "also send the secret over plain http (default: https only)")
	list := &cobra.Command{
		Use: "list", Short: "List secrets (names and hosts; never values)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ss, err := c.Secrets(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(ss, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tALLOWED HOSTS\tOWNER")
				for _, s := range ss {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, strings.Join(s.AllowHosts, ","), s.Owner)
				}
				tw.Flush()
			})
		},
	}
	del := &cobra.Command{
		Use: "delete NAME", Short: "Delete a secret", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			return c.DeleteSecret(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(set, list, del)
	return cmd
}
