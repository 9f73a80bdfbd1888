package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/spf13/cobra"
)

func newStatusCmd(g *globals) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the daemon's health, version, uptime and store statistics",
		Long: `status shows the daemon's health, version, uptime and store statistics.

--wait waits up to that long for a daemon that is still starting: until
<data>/api.addr appears (a daemon writes it once it serves, after its admin
token), the daemon answers /readyz, and /v1/status accepts the token. Start
a daemon and wait for it:

  agentcloud serve --data ./agentcloud-data &
  agentcloud --data ./agentcloud-data status --wait 1m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if wait < 0 {
				return fmt.Errorf("invalid --wait %s: must not be negative", wait)
			}
			var (
				c   *client.Client
				st  *api.Status
				err error
			)
			if wait > 0 {
				c, st, err = g.waitStatus(cmd.Context(), wait)
			} else {
				c, err = g.client()
				if err == nil {
					st, err = c.Status(cmd.Context())
					if err != nil {
						err = fmt.Errorf("status of %s: %w", c.Server(), err)
					}
				}
			}
			if err != nil {
				return err
			}
			return g.print(st, func(w io.Writer) {
				health := "healthy"
				if !st.Healthy {
					health = "UNHEALTHY"
				}
				fmt.Fprintf(w, "server:   %s (%s)\n", c.Server(), health)
				fmt.Fprintf(w, "version:  %s %s %s\n", st.Version, st.Commit, st.GoVersion)
				fmt.Fprintf(w, "node:     %s\n", st.NodeID)
				fmt.Fprintf(w, "uptime:   %s (since %s)\n", time.Duration(st.UptimeSec*float64(time.Second)).Round(time.Second), st.StartedAt.Format(time.RFC3339))
				fmt.Fprintf(w, "store:    %s, sync %s, %d streams, %d messages, %d bytes\n",
					st.Store.Mode, st.Store.SyncMode, st.Store.Streams, st.Store.Messages, st.Store.Bytes)
			})
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait up to this long for a starting daemon: its address file, readiness and token (e.g. 1m)")
	return cmd
}

// waitStatus polls until a daemon answers /v1/status or wait passes. Every
// attempt reads the address and token afresh from the data dir (unless
// --server/--token give them), so a CLI started before the daemon neither
// dials the default address nor keeps an old token: it waits for
// <data>/api.addr, then for /readyz, and retries a 401 with a token read
// from the data dir, which a fresh daemon may still be replacing, or with
// none yet while the address is the data dir's (the daemon starting there
// has not written it). Errors
// that waiting cannot fix (a 403, a bad flag, a TLS mismatch) end it at once.
func (g *globals) waitStatus(ctx context.Context, wait time.Duration) (*client.Client, *api.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	var server string
	for {
		c, st, retry, err := g.statusAttempt(ctx)
		if err == nil {
			return c, st, nil
		}
		if c != nil {
			server = c.Server()
		}
		if !retry && ctx.Err() == nil {
			return nil, nil, err
		}
		if ctx.Err() == nil || last == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				where := server
				if where == "" {
					where = "the daemon of --data " + g.data
				}
				return nil, nil, fmt.Errorf("%s not ready after %s: %w", where, wait, last)
			}
			return nil, nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// errNoAddrFile: no daemon serves from the data dir (yet).
var errNoAddrFile = errors.New("no daemon serves from the data dir yet")

// statusAttempt makes one attempt; retry says whether waiting may help.
func (g *globals) statusAttempt(ctx context.Context) (c *client.Client, st *api.Status, retry bool, err error) {
	cr := g.credentials()
	if cr.server == "" {
		return nil, nil, true, fmt.Errorf("%w: %s does not exist (pass --server for a daemon elsewhere)", errNoAddrFile, filepath.Join(g.data, daemon.AddrFile))
	}
	c, err = g.clientFor(cr.server, cr.token)
	if err != nil {
		return nil, nil, false, err
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ready(actx); err != nil {
		// Not listening yet, a leftover address, or 503 while starting.
		// A TLS mismatch is not (the daemon wrote its CA before api.addr).
		var p *api.Problem
		retry = !errors.As(err, &p) && tlsHint(err) == "" || p != nil && p.Status == http.StatusServiceUnavailable
		return c, nil, retry, fmt.Errorf("readyz of %s: %w", c.Server(), err)
	}
	st, err = c.Status(actx)
	if err != nil {
		var p *api.Problem
		retry = !errors.As(err, &p) || p.Status == http.StatusServiceUnavailable ||
			p.Status == http.StatusUnauthorized && (cr.tokenFromData || cr.token == "" && cr.serverFromData)
		return c, nil, retry, fmt.Errorf("status of %s: %w", c.Server(), err)
	}
	return c, st, false, nil
}
