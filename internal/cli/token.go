package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/spf13/cobra"
)

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create and revoke bearer tokens (JWT-SVIDs)"}
	var (
		subject  string
		ttl      time.Duration
		audience []string
		e2b      bool
		name     string
		role     string
	)
	create := &cobra.Command{
		Use:   "create [--subject user:alice | --role metrics-reader] [--ttl 24h] [--audience AUD]... | --e2b [--name N]",
		Short: "Issue a token for a subject (user:NAME, agent:NAME, session:AGENT/ID, sandbox:ID, node:NAME or a SPIFFE ID)",
		Long: `Issue a JWT-SVID for a subject. Administrators may issue one for anyone;
a user may issue one for itself only (the default subject: the caller), and
it expires no later than the credential the user called with. A token created
with a token carries that token's id (and its chain): revoking it revokes this
one too. The token is
printed alone on stdout, so it can be captured: TOKEN=$(agentcloud token create ...).
Its audience defaults to "agentcloud" (this API); a token for another audience is
refused by the API.

With --e2b it issues instead an API key of the E2B-compatible API (/e2b) for
yourself: e2b_ and 40 hex digits, for the e2b SDKs' E2B_API_KEY. It acts as
you, does not expire, and is shown once; only its hash is stored.

With --role metrics-reader (administrators) it issues a token for the
metrics-reader role (user:metrics-reader): it may read GET /metrics and
nothing else, for a Prometheus scraper.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if e2b {
				if subject != "" || role != "" || len(audience) > 0 || cmd.Flags().Changed("ttl") {
					return fmt.Errorf("--e2b issues a key for yourself that does not expire: drop --subject, --ttl and --audience")
				}
				k, err := c.CreateE2BKey(cmd.Context(), api.E2BKeyRequest{Name: name})
				if err != nil {
					return err
				}
				return g.print(k, func(w io.Writer) { fmt.Fprintln(w, k.Key) })
			}
			if role != "" {
				if role != "metrics-reader" {
					return fmt.Errorf("--role %q: the one role is metrics-reader (a token that may read /metrics and nothing else)", role)
				}
				if subject != "" {
					return fmt.Errorf("--role metrics-reader issues the role's own token (user:metrics-reader): drop --subject")
				}
				subject = "user:metrics-reader"
			}
			if subject == "" {
				who, err := c.WhoAmI(cmd.Context())
				if err != nil {
					return fmt.Errorf("no --subject given and cannot tell who you are: %w", err)
				}
				subject = who.Principal
			}
			req := api.TokenRequest{Subject: subject, Audience: audience}
			if ttl > 0 {
				req.TTL = ttl.String()
			}
			t, err := c.CreateToken(cmd.Context(), req)
			if err != nil {
				return err
			}
			return g.print(t, func(w io.Writer) { fmt.Fprintln(w, t.Token) })
		},
	}
	create.Flags().StringVar(&subject, "subject", "", "who the token is for, e.g. user:alice (default: yourself)")
	create.Flags().DurationVar(&ttl, "ttl", time.Hour, "lifetime (at most 24h)")
	create.Flags().StringSliceVar(&audience, "audience", nil, "audience (repeatable; default agentcloud)")
	create.Flags().BoolVar(&e2b, "e2b", false, "issue an API key of the E2B-compatible API (X-API-Key) for yourself")
	create.Flags().StringVar(&name, "name", "", "with --e2b: a label for the key")
	create.Flags().StringVar(&role, "role", "", "metrics-reader: a token that may read /metrics and nothing else (instead of --subject)")

	cmd.AddCommand(create, newTokenRevokeCmd(g))
	return cmd
}

func newTokenRevokeCmd(g *globals) *cobra.Command {
	var id, e2bID string
	revoke := &cobra.Command{
		Use:   "revoke [TOKEN | --id JTI]",
		Short: "Revoke a token, and every token minted with it, on every node (give the token, or its id)",
		Long: `Revoke a token on every node. Tokens created with it (agentcloud token create
called with it, and tokens created with those) are refused from then on too.
Users may revoke tokens issued to them or at their request; administrators any.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if e2bID != "" {
				c, err := g.client()
				if err != nil {
					return err
				}
				if err := c.RevokeE2BKey(cmd.Context(), e2bID); err != nil {
					return err
				}
				fmt.Fprintln(g.stderr, "revoked")
				return nil
			}
			req := api.RevokeRequest{ID: id}
			if len(args) == 1 {
				req.Token = args[0]
			}
			if req.Token == "" && req.ID == "" {
				return fmt.Errorf("give the token to revoke, or --id with its id (jti)")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if err := c.RevokeToken(cmd.Context(), req); err != nil {
				return err
			}
			fmt.Fprintln(g.stderr, "revoked")
			return nil
		},
	}
	revoke.Flags().StringVar(&id, "id", "", "token id (jti) to revoke")
	revoke.Flags().StringVar(&e2bID, "e2b", "", "id of an E2B API key to revoke (GET /v1/e2b/keys lists them)")
	return revoke
}
