package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/spf13/cobra"
)

func newSandboxPortForwardCmd(g *globals) *cobra.Command {
	var (
		local, path string
		public      bool
		ttl         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "port-forward ID PORT [--local ADDR] | --url [--path /app/] [--ttl 1h]",
		Short: "Reach a port of a sandbox from here (HTTP and WebSocket), or print a public signed URL of it",
		Long: `Serve ADDR (default 127.0.0.1:PORT) here and forward every request, HTTP and
WebSocket, to what listens on PORT in the sandbox, through the API with your credentials,
until interrupted. With --url, print instead a public URL of the port that needs no
credentials, limited to --path and expiring after --ttl (at most 24h). Both tiers; a
gVisor sandbox reaches its ports through its exec agent (none without python3).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			port, err := strconv.Atoi(args[1])
			if err != nil || port < 1 || port > 65535 {
				return fmt.Errorf("invalid PORT %q: want a TCP port from 1 to 65535", args[1])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if public {
				u, err := c.CreatePortURL(cmd.Context(), id, api.PortURLRequest{Port: port, Path: path, TTLS: ttl.Seconds()})
				if err != nil {
					return err
				}
				full := strings.TrimSuffix(c.Server(), "/") + u.URL
				return g.print(u, func(w io.Writer) { fmt.Fprintln(w, full) })
			}
			if local == "" {
				local = "127.0.0.1:" + strconv.Itoa(port)
			}
			ln, err := net.Listen("tcp", local)
			if err != nil {
				return fmt.Errorf("--local %s: %w", local, err)
			}
			srv := &http.Server{Handler: c.PortProxy(id, port), ReadHeaderTimeout: 10 * time.Second}
			go func() {
				<-cmd.Context().Done()
				_ = srv.Close()
			}()
			fmt.Fprintf(g.stderr, "forwarding http://%s to port %d of sandbox %s (Ctrl-C stops)\n", ln.Addr(), port, id)
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&local, "local", "", "address to serve here (default 127.0.0.1:PORT)")
	f.BoolVar(&public, "url", false, "print a public signed URL of the port instead")
	f.StringVar(&path, "path", "/", "with --url: the path prefix the URL may reach")
	f.DurationVar(&ttl, "ttl", time.Hour, "with --url: how long the URL works (at most 24h)")
	return cmd
}
