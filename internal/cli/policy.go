package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/spf13/cobra"
)

func newPolicyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Apply, show and test Cedar authorization policies"}
	apply := &cobra.Command{
		Use:   "apply FILE",
		Short: "Validate a Cedar policy file against the schema and apply it as the next version",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ps, err := c.ApplyPolicies(cmd.Context(), string(text))
			if err != nil {
				var p *api.Problem
				if errors.As(err, &p) && p.Kind() == api.KindValidation {
					return fmt.Errorf("%s: %s", args[0], p.Detail)
				}
				return err
			}
			if ps.RunState != "" && ps.RunState != api.RunPassed {
				return g.print(ps, func(w io.Writer) { fmt.Fprintln(w, waitingChange(args[0], ps.Run, ps.RunState)) })
			}
			return g.print(ps, func(w io.Writer) { fmt.Fprintf(w, "applied %s as version %d\n", args[0], ps.Version) })
		},
	}
	show := &cobra.Command{
		Use: "show", Short: "Print the user policy set in force", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ps, err := c.Policies(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(ps, func(w io.Writer) {
				if ps.Version == 0 {
					fmt.Fprintln(w, "// no user policies: only the default policy set applies")
					return
				}
				fmt.Fprintf(w, "// version %d, applied %s by %s\n%s\n", ps.Version, ps.Updated.Local().Format(time.DateTime), ps.By, strings.TrimRight(ps.Text, "\n"))
			})
		},
	}
	var t api.PolicyTestRequest
	test := &cobra.Command{
		Use:   "test --principal user:alice --action agent.read --resource Agent::bot",
		Short: "Decide a hypothetical request and show the policies that decided it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if t.Principal == "" || t.Action == "" {
				return fmt.Errorf("--principal and --action are required")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			d, err := c.TestPolicy(cmd.Context(), t)
			if err != nil {
				return err
			}
			return g.print(d, func(w io.Writer) {
				verdict := "DENY"
				if d.Allowed {
					verdict = "ALLOW"
				} else if d.Approvable {
					verdict = "DENY (approvable)"
				}
				by := strings.Join(d.Policies, ", ")
				if by == "" {
					by = "no policy matched (default deny)"
				}
				fmt.Fprintf(w, "%s  %s %s %s\ndecided by: %s\n", verdict, t.Principal, t.Action, t.Resource, by)
				for _, e := range d.Errors {
					fmt.Fprintf(w, "error: %s\n", e)
				}
			})
		},
	}
	f := test.Flags()
	f.StringVar(&t.Principal, "principal", "", "user:NAME, session:AGENT/ID, agent:NAME, admin, ...")
	f.StringVar(&t.Action, "action", "", "e.g. agent.read, session.call, egress.fetch")
	f.StringVar(&t.Resource, "resource", "", "Type::id, e.g. Agent::bot, Session::bot/s1, Host::example.com (default: the platform)")
	f.StringVar(&t.Integrity, "integrity", "", "session label: trusted or untrusted")
	f.StringVar(&t.Confidentiality, "confidentiality", "", "session label: public, private or secret")
	trusted := hostListCmd(g, "trusted-hosts", "Show, or with arguments replace, the hosts marked trusted (use --clear to empty)",
		(*client.Client).TrustedHosts, (*client.Client).ChangeTrustedHosts)
	private := hostListCmd(g, "private-hosts", "Show, or with arguments replace, the hosts whose data is private (use --clear to empty)",
		(*client.Client).PrivateHosts, (*client.Client).ChangePrivateHosts)
	cmd.AddCommand(apply, show, test, trusted, private)
	return cmd
}

// hostListCmd shows or replaces one of the platform's host-pattern lists.
func hostListCmd(g *globals, use, short string,
	get func(*client.Client, context.Context) ([]string, error),
	set func(*client.Client, context.Context, []string) (*api.TrustedHosts, error)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use + " [HOST...]",
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			clear, _ := cmd.Flags().GetBool("clear")
			if len(args) > 0 || clear {
				got, err := set(c, cmd.Context(), args)
				if err != nil {
					return err
				}
				if got.RunState != "" && got.RunState != api.RunPassed {
					fmt.Fprintln(cmd.ErrOrStderr(), waitingChange("the "+use+" change", got.Run, got.RunState))
				}
			}
			hosts, err := get(c, cmd.Context())
			if err != nil {
				return err
			}
			return g.print(api.TrustedHosts{Hosts: hosts}, func(w io.Writer) {
				for _, h := range hosts {
					fmt.Fprintln(w, h)
				}
			})
		},
	}
	cmd.Flags().Bool("clear", false, "remove every host from the list")
	return cmd
}

// waitingChange says that what's change did not apply yet: its run waits
// for a review (or is still going), and how to follow it.
func waitingChange(what, run, state string) string {
	if state == api.RunWaiting {
		return fmt.Sprintf("%s waits for review in run %s: an administrator approves it with agentcloud pipeline approve %s", what, run, run)
	}
	return fmt.Sprintf("%s is %s in run %s: agentcloud pipeline show %s", what, state, run, run)
}
