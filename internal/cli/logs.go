package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/spf13/cobra"
)

func newLogsCmd(g *globals) *cobra.Command {
	var (
		q      client.LogQuery
		follow bool
	)
	cmd := &cobra.Command{
		Use:   "logs AGENT [--session ID] [--preview] [-f]",
		Short: "Show an agent's console output and request errors (of its live sessions, on every member of a cluster)",
		Long: `logs shows what an agent's sessions wrote with console.* and the errors their requests
ended with (uncaught throws, timeouts, crashes), oldest first. The node keeps a bounded
stream per agent in memory: the oldest lines go first, long lines are cut, and a restart
empties it. With -f it keeps following new lines until interrupted. In a cluster the
lines of every member are gathered, and a member that does not answer is named. Reading
it takes session.read on the agent.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if follow {
				enc := json.NewEncoder(g.stdout)
				return c.FollowLogs(cmd.Context(), args[0], q, func(e api.LogEntry) error {
					if g.output == "json" {
						return enc.Encode(e)
					}
					printLogEntry(g.stdout, e, q.Session == "")
					return nil
				})
			}
			l, err := c.Logs(cmd.Context(), args[0], q)
			if err != nil {
				return err
			}
			return g.print(l, func(w io.Writer) {
				if l.Missed > 0 {
					fmt.Fprintf(w, "(%d older lines were dropped)\n", l.Missed)
				}
				if len(l.Unreachable) > 0 {
					fmt.Fprintf(w, "(members not answering, their lines are missing: %s)\n", strings.Join(l.Unreachable, ", "))
				}
				for _, e := range l.Entries {
					printLogEntry(w, e, q.Session == "")
				}
			})
		},
	}
	cmd.Flags().StringVar(&q.Session, "session", "", "only this session's lines")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep following new lines")
	cmd.Flags().BoolVar(&q.Preview, "preview", false, "the lines of the agent's preview sessions (agentcloud dev)")
	cmd.Flags().Uint64Var(&q.After, "after", 0, "start after this sequence number (of the node asked)")
	cmd.Flags().StringVar(&q.Cursor, "cursor", "", "start where an earlier answer's cursor says (-o json shows it; every member of a cluster)")
	return cmd
}

// printLogEntry writes one entry as "TIME [SESSION] LEVEL TEXT", one line
// per line of its text.
func printLogEntry(w io.Writer, e api.LogEntry, withSession bool) {
	if e.Missed > 0 {
		fmt.Fprintf(w, "(%d lines dropped)\n", e.Missed)
	}
	if e.Level == api.LogLevelUnreachable {
		fmt.Fprintf(w, "%s (%s)\n", e.Time.Local().Format(time.TimeOnly), e.Text)
		return
	}
	head := e.Time.Local().Format(time.TimeOnly) + " "
	if withSession {
		head += e.Session + " "
	}
	head += e.Level + " "
	text := e.Text
	if e.Truncated > 0 {
		text += fmt.Sprintf(" …(%d bytes cut)", e.Truncated)
	}
	for line := range strings.SplitSeq(text, "\n") {
		fmt.Fprintf(w, "%s%s\n", head, line)
	}
}
