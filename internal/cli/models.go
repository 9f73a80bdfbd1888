package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/spf13/cobra"
)

func newModelsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "models", Short: "Configure the model gateway: providers, aliases, prices and token budgets"}
	var (
		p      api.ModelProvider
		prices []string
	)
	add := &cobra.Command{
		Use:   "add NAME --base-url URL [--secret NAME] --models m1,alias=m2 [--priority N] [--timeout 30s] [--price MODEL=IN/OUT] [--trusted] [--allow-private]",
		Short: "Add or replace an OpenAI-compatible provider",
		Long: `Add an OpenAI-compatible provider. Its API key is a stored secret (agentcloud secret set
NAME --allow-host HOST) that the gateway puts in the Authorization header on the way out;
agents never see it. --models lists what it serves: "gpt-x" (same name upstream) or
"default=gpt-x" (requests for "default" go to gpt-x here). Providers serving the same
model are tried in --priority order (lower first) on errors, timeouts, 429 and 5xx.
--price is USD per million input/output tokens, e.g. --price gpt-x=0.15/0.60.

--trusted marks a provider you trust with private data: sessions holding private or
secret data may only call trusted providers (policy private-data-untrusted-model), and
answers from an untrusted provider lower the calling session's integrity.
--allow-private lets the provider be on a private or loopback address, such as a local
inference server: agentcloud models add local --base-url http://127.0.0.1:8000/v1
--models llama --allow-private. The daemon's own API and NATS ports stay refused.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.Name = args[0]
			if p.BaseURL == "" {
				return fmt.Errorf("missing --base-url: the provider's API root, e.g. https://api.example.com/v1")
			}
			if len(p.Models) == 0 {
				return fmt.Errorf("missing --models: the model names (or alias=upstream) this provider serves")
			}
			if p.Timeout != "" {
				if _, err := time.ParseDuration(p.Timeout); err != nil {
					return fmt.Errorf("invalid --timeout %q: want a duration like 30s", p.Timeout)
				}
			}
			for _, s := range prices {
				m, rest, ok := strings.Cut(s, "=")
				in, out, ok2 := strings.Cut(rest, "/")
				fi, err1 := strconv.ParseFloat(in, 64)
				fo, err2 := strconv.ParseFloat(out, 64)
				if !ok || !ok2 || m == "" || err1 != nil || err2 != nil {
					return fmt.Errorf("invalid --price %q: want MODEL=INPUT/OUTPUT in USD per million tokens, e.g. gpt-x=0.15/0.60", s)
				}
				if p.Prices == nil {
					p.Prices = map[string]api.ModelPrice{}
				}
				p.Prices[m] = api.ModelPrice{Input: fi, Output: fo}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			out, err := c.AddModelProvider(cmd.Context(), p)
			if err != nil {
				return err
			}
			return g.print(out, func(w io.Writer) {
				fmt.Fprintf(w, "provider %s (%s) serves %s\n", out.Name, out.BaseURL, strings.Join(out.Models, ", "))
			})
		},
	}
	f := add.Flags()
	f.StringVar(&p.BaseURL, "base-url", "", "API root of the provider, e.g. https://api.example.com/v1")
	f.StringVar(&p.Secret, "secret", "", "name of the secret holding the API key")
	f.StringSliceVar(&p.Models, "models", nil, "models served: name or alias=upstream (comma-separated or repeated)")
	f.IntVar(&p.Priority, "priority", 0, "fallback order among providers of the same model (lower first)")
	f.StringVar(&p.Timeout, "timeout", "", "per-attempt timeout (default 30s)")
	f.StringArrayVar(&prices, "price", nil, "MODEL=IN/OUT price in USD per million tokens (repeatable)")
	f.BoolVar(&p.Trusted, "trusted", false, "trust this provider with private data (sessions holding private data may call it)")
	f.BoolVar(&p.AllowPrivate, "allow-private", false, "allow a private or loopback base URL (a local inference server)")

	list := &cobra.Command{
		Use: "list", Short: "List providers in fallback order", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ps, err := c.ModelProviders(cmd.Context())
			if err != nil {
				return err
			}
			return g.print(ps, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tPRIORITY\tBASE URL\tSECRET\tTRUSTED\tPRIVATE\tMODELS")
				for _, p := range ps {
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Priority, p.BaseURL, p.Secret,
						yesNo(p.Trusted), yesNo(p.AllowPrivate), strings.Join(p.Models, ","))
				}
				tw.Flush()
			})
		},
	}
	remove := &cobra.Command{
		Use: "remove NAME", Short: "Remove a provider", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.RemoveModelProvider(cmd.Context(), args[0]); err != nil {
				return err
			}
			return g.print(map[string]string{"removed": args[0]}, func(w io.Writer) { fmt.Fprintf(w, "provider %s removed\n", args[0]) })
		},
	}
	var (
		breq   api.ModelBudgetRequest
		tokens string
	)
	budget := &cobra.Command{
		Use:   "budget --agent A [--session S] --tokens N [--reset]",
		Short: "Set an agent's (or one session's) token budget; --tokens 0 removes it",
		Long: `Set a token budget (prompt + completion tokens) for an agent or one of its sessions.
A model call first reserves an upper bound of its tokens; a call that would go over the
budget is refused with problem type budget-exceeded (HTTP 402) or BudgetExceededError in
agent code. Without --reset the tokens already used are kept.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if breq.Agent == "" {
				return fmt.Errorf("missing --agent: the agent the budget applies to")
			}
			n, err := strconv.ParseInt(strings.ReplaceAll(tokens, "_", ""), 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("invalid --tokens %q: want a whole number of tokens (0 removes the budget)", tokens)
			}
			breq.Tokens = n
			c, err := g.client()
			if err != nil {
				return err
			}
			b, err := c.SetModelBudget(cmd.Context(), breq)
			if err != nil {
				return err
			}
			return g.print(b, func(w io.Writer) {
				who := "agent " + b.Agent
				if b.Session != "" {
					who = "session " + b.Agent + "/" + b.Session
				}
				if b.Tokens == 0 {
					fmt.Fprintf(w, "budget of %s removed\n", who)
					return
				}
				fmt.Fprintf(w, "budget of %s: %d tokens, %d used\n", who, b.Tokens, b.Used)
			})
		},
	}
	bf := budget.Flags()
	bf.StringVar(&breq.Agent, "agent", "", "agent name")
	bf.StringVar(&breq.Session, "session", "", "session id (default: the whole agent)")
	bf.StringVar(&tokens, "tokens", "", "total tokens allowed (0 removes the budget)")
	bf.BoolVar(&breq.Reset, "reset", false, "zero the tokens used so far")
	var bagent string
	budgets := &cobra.Command{
		Use: "budgets [--agent A]", Short: "List token budgets and what is used", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			bs, err := c.ModelBudgets(cmd.Context(), bagent)
			if err != nil {
				return err
			}
			return g.print(bs, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "AGENT\tSESSION\tTOKENS\tUSED\tRESERVED")
				for _, b := range bs {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", b.Agent, b.Session, b.Tokens, b.Used, b.Reserved)
				}
				tw.Flush()
			})
		},
	}
	budgets.Flags().StringVar(&bagent, "agent", "", "only this agent's budgets")
	cmd.AddCommand(add, list, remove, budget, budgets)
	return cmd
}

func newUsageCmd(g *globals) *cobra.Command {
	var agent, sess, user string
	cmd := &cobra.Command{
		Use:   "usage [--agent A] [--session S] [--user KIND:NAME]",
		Short: "Model usage and cost per session (tokens, requests, cache hits, USD)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if sess != "" && agent == "" {
				return fmt.Errorf("--session needs --agent: sessions are named within an agent")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			rep, err := c.Usage(cmd.Context(), agent, sess, user)
			if err != nil {
				return err
			}
			return g.print(rep, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "AGENT\tSESSION\tUSER\tREQUESTS\tCACHED\tPROMPT\tCOMPLETION\tCOST USD")
				row := func(a, s, u string, n api.UsageCounts) {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%.6f\n", a, s, u, n.Requests, n.CacheHits, n.PromptTokens, n.CompletionTokens, n.CostUSD)
				}
				for _, r := range rep.Records {
					row(r.Agent, r.Session, r.User, r.UsageCounts)
				}
				row("TOTAL", "", "", rep.Total)
				tw.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&agent, "agent", "", "only this agent")
	cmd.Flags().StringVar(&sess, "session", "", "only this session (with --agent)")
	cmd.Flags().StringVar(&user, "user", "", "only this API caller (user:alice, admin:admin)")
	return cmd
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
