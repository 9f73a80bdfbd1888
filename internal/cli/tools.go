package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/agentcloud/agentcloud/api"
	"github.com/spf13/cobra"
)

func newToolsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "tools", Short: "List, search and call the toolbox's tools (the same tools /mcp serves)"}
	var limit int
	list := &cobra.Command{
		Use: "list", Short: "List every tool, sorted by name", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ts, err := c.Tools(cmd.Context(), limit)
			if err != nil {
				return err
			}
			return g.print(api.ToolList{Tools: ts}, func(w io.Writer) { printTools(w, ts) })
		},
	}
	list.Flags().IntVar(&limit, "limit", 0, "show at most this many tools (0: all)")
	var slimit int
	search := &cobra.Command{
		Use: "search WORDS...", Short: "Find tools by words in their names and descriptions, best match first", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ts, err := c.SearchTools(cmd.Context(), strings.Join(args, " "), slimit)
			if err != nil {
				return err
			}
			return g.print(api.ToolList{Tools: ts}, func(w io.Writer) { printTools(w, ts) })
		},
	}
	search.Flags().IntVar(&slimit, "limit", 20, "show at most this many tools")
	call := &cobra.Command{
		Use:   "call NAME [ARGS_JSON|-]",
		Short: "Call a tool with a JSON object of arguments (\"-\" reads them from stdin)",
		Example: `  agentcloud tools call run_code '{"language":"python","code":"print(6*7)"}'
  agentcloud tools call state_get '{"agent":"counter","session":"s1","key":"n"}'`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw := []byte("{}")
			if len(args) == 2 {
				raw = []byte(args[1])
				if args[1] == "-" {
					b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 16<<20))
					if err != nil {
						return fmt.Errorf("read arguments from stdin: %w", err)
					}
					raw = b
				}
			}
			var obj map[string]any
			if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
				return fmt.Errorf("ARGS_JSON must be a JSON object, e.g. '{\"key\":\"n\"}' (%v)", err)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.CallTool(cmd.Context(), args[0], raw)
			if err != nil {
				return err
			}
			if err := g.print(res, func(w io.Writer) { printToolResult(w, res) }); err != nil {
				return err
			}
			if res.IsError {
				return exitCode(1)
			}
			return nil
		},
	}
	cmd.AddCommand(list, search, call)
	// The registry's subcommands live in tools_registry.go.
	cmd.AddCommand(newToolsAddCmd(g), newToolsApproveCmd(g), newToolsRefreshCmd(g), newToolsRemoveCmd(g), newToolsRegistryCmd(g))
	return cmd
}

func printTools(w io.Writer, ts []api.Tool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSOURCE\tDESCRIPTION")
	for _, t := range ts {
		desc := t.Description
		if len(desc) > 90 {
			desc = desc[:87] + "..."
		}
		if t.Quarantined {
			desc = "[quarantined] " + desc
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Name, t.Source, desc)
	}
	tw.Flush()
}

func printToolResult(w io.Writer, r *api.ToolResult) {
	switch {
	case r.Error != nil:
		fmt.Fprintf(w, "error (%s): %s\n", r.Error.Code, r.Error.Message)
	case r.Text != "":
		fmt.Fprint(w, r.Text)
		if !strings.HasSuffix(r.Text, "\n") {
			fmt.Fprintln(w)
		}
	case len(r.Structured) > 0:
		fmt.Fprintln(w, string(r.Structured))
	}
}
