package cli

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/agentcloud/agentcloud/client"
	"github.com/spf13/cobra"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read the append-only audit stream (administrators)"}
	var q client.AuditQuery
	list := &cobra.Command{
		Use:   "list [--session AGENT/ID] [--type T] [--from SEQ] [--limit N]",
		Short: "List audit events: auth, decision, label, approval, secret, egress, policy, token",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			l, err := c.Audit(cmd.Context(), q)
			if err != nil {
				return err
			}
			return g.print(l, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SEQ\tTIME\tTYPE\tOUTCOME\tPRINCIPAL\tSESSION\tACTION\tRESOURCE\tREASON")
				for _, e := range l.Events {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Local().Format(time.DateTime+".000"),
						e.Type, e.Outcome, e.Principal, e.Session, e.Action, e.Resource, e.Reason)
				}
				tw.Flush()
				fmt.Fprintf(w, "next: --from %d\n", l.Next)
			})
		},
	}
	f := list.Flags()
	f.StringVar(&q.Session, "session", "", "only events of this session (AGENT/ID)")
	f.StringVar(&q.Type, "type", "", "only events of this type")
	f.Uint64Var(&q.From, "from", 0, "first sequence number")
	f.IntVar(&q.Limit, "limit", 100, "at most this many events (max 1000)")
	cmd.AddCommand(list)
	return cmd
}
