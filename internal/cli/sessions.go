package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/spf13/cobra"
)

// splitSession parses AGENT/SESSION.
func splitSession(s string) (string, string, error) {
	a, id, ok := strings.Cut(s, "/")
	if !ok || a == "" || id == "" || strings.Contains(id, "/") {
		return "", "", fmt.Errorf("invalid session %q: write it as AGENT/SESSION, e.g. counter/alice", s)
	}
	return a, id, nil
}

func newSessionsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "sessions", Short: "List, show, hibernate and delete agent sessions"}
	var agent string
	list := &cobra.Command{
		Use: "list [--agent NAME]", Short: "List an agent's sessions, or those of every agent you may read", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var ss []api.Session
			if agent == "" {
				ss, err = c.AllSessions(cmd.Context())
			} else {
				ss, err = c.Sessions(cmd.Context(), agent)
			}
			if err != nil {
				return err
			}
			return g.print(ss, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				if agent == "" {
					fmt.Fprint(tw, "AGENT\t")
				}
				fmt.Fprintln(tw, "SESSION\tSTATE\tLAST ACTIVE\tSIZE\tALARM")
				for _, s := range ss {
					if agent == "" {
						fmt.Fprintf(tw, "%s\t", s.Agent)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.State, s.LastActive.Local().Format(time.DateTime), sessionSize(s), alarmText(s))
				}
				tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&agent, "agent", "", "agent name (default: every agent)")
	one := func(use, short string, run func(cmd *cobra.Command, a, id string) (*api.Session, error)) *cobra.Command {
		return &cobra.Command{Use: use + " AGENT/SESSION", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				a, id, err := splitSession(args[0])
				if err != nil {
					return err
				}
				s, err := run(cmd, a, id)
				if err != nil || s == nil {
					return err
				}
				return g.print(s, func(w io.Writer) {
					fmt.Fprintf(w, "session:     %s/%s\nstate:       %s\nversion:     %s\ncreated:     %s\nlast active: %s\nsize:        %s\nalarm:       %s\n",
						s.Agent, s.ID, s.State, shortDigest(s.Version), s.Created.Local().Format(time.DateTime),
						s.LastActive.Local().Format(time.DateTime), sessionSize(*s), alarmText(*s))
				})
			}}
	}
	show := one("show", "Show one session", func(cmd *cobra.Command, a, id string) (*api.Session, error) {
		c, err := g.client()
		if err != nil {
			return nil, err
		}
		return c.Session(cmd.Context(), a, id)
	})
	hib := one("hibernate", "Hibernate a live session now", func(cmd *cobra.Command, a, id string) (*api.Session, error) {
		c, err := g.client()
		if err != nil {
			return nil, err
		}
		return c.Hibernate(cmd.Context(), a, id)
	})
	del := one("delete", "Delete a session with its state, snapshot and alarm", func(cmd *cobra.Command, a, id string) (*api.Session, error) {
		c, err := g.client()
		if err != nil {
			return nil, err
		}
		if err := c.DeleteSession(cmd.Context(), a, id); err != nil {
			return nil, err
		}
		fmt.Fprintf(g.stderr, "deleted %s/%s\n", a, id)
		return nil, nil
	})
	cmd.AddCommand(list, show, hib, del)
	return cmd
}

func sessionSize(s api.Session) string {
	if s.State == "live" {
		return fmt.Sprintf("%d KiB live", s.MemoryBytes>>10)
	}
	return fmt.Sprintf("%d B snapshot", s.SnapshotBytes)
}

func alarmText(s api.Session) string {
	if s.Alarm == nil {
		return "-"
	}
	return s.Alarm.Local().Format(time.DateTime)
}
