package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/spf13/cobra"
)

func newClusterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Form a cluster of nodes and see its state",
		Long: `A cluster is several agentcloud nodes with one trust domain: the first node's
CA, admin token and secrets key hold on every member. Write the join bundle
on the first node (it is made if the data dir is new), copy it to the others
privately, and start every node with the same --cluster name:

  agentcloud --data ./a cluster join-bundle --file bundle.json
  agentcloud serve --data ./a --cluster prod --node a --cluster-listen 10.0.0.1:6222 --routes 10.0.0.2:6222
  agentcloud serve --data ./b --cluster prod --node b --cluster-listen 10.0.0.2:6222 --routes 10.0.0.1:6222 --join bundle.json`,
	}
	cmd.AddCommand(newJoinBundleCmd(g), newClusterStatusCmd(g))
	return cmd
}

func newJoinBundleCmd(g *globals) *cobra.Command {
	var file, trustDomain, caDir string
	cmd := &cobra.Command{
		Use:   "join-bundle",
		Short: "Write the join bundle of this node's trust domain (a secret)",
		Long: `join-bundle writes what a node needs to join this node's cluster: the CA
certificate and key, the JWT signing key, the secrets key and the admin
token, read from --data (created there first if the data dir is new). It is
a SECRET: whoever holds it can mint any identity and decrypt every secret.
--file writes it with mode 0600; copy it to the joining node privately, start
that node with serve --join FILE, then delete it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := config.Default()
			cfg.Data, cfg.CADir = g.data, caDir
			if trustDomain != "" {
				cfg.TrustDomain = trustDomain
			}
			var buf bytes.Buffer
			if err := daemon.WriteJoinBundle(cfg, &buf); err != nil {
				return err
			}
			if file == "" {
				_, err := g.stdout.Write(buf.Bytes())
				return err
			}
			f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("--file %s: %w (it is not overwritten: remove it first)", file, err)
			}
			if _, err := f.Write(buf.Bytes()); err != nil {
				f.Close()
				return fmt.Errorf("--file %s: %w", file, err)
			}
			return f.Close()
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "write the bundle to this new file (mode 0600) instead of stdout")
	cmd.Flags().StringVar(&trustDomain, "trust-domain", "", "the node's trust domain (default agentcloud.local, as serve)")
	cmd.Flags().StringVar(&caDir, "ca-dir", "", "the node's CA directory (default <data>/ca, as serve)")
	return cmd
}

func newClusterStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the cluster's members, their health, versions and partitions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			st, err := c.ClusterStatus(cmd.Context())
			if err != nil {
				return fmt.Errorf("cluster status of %s: %w", c.Server(), err)
			}
			return g.print(st, func(w io.Writer) {
				fmt.Fprintf(w, "cluster %s (seen from %s): %d partitions, %d without owner, %d replicas\n",
					st.Cluster, st.Node, st.Partitions, st.Unowned, st.Replicas)
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NODE\tHEALTH\tPARTITIONS\tVERSION\tAPI\tPEER")
				for _, m := range st.Members {
					health := "healthy"
					switch {
					case !m.Healthy:
						health = "DOWN"
					case m.Draining:
						health = "draining"
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", m.Node, health, m.Partitions, m.Version, m.API, m.Peer)
				}
				tw.Flush()
			})
		},
	}
}

func newNodeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "Operate on the cluster member the CLI talks to"}
	cmd.AddCommand(&cobra.Command{
		Use:   "drain",
		Short: "Hand this node's sessions to the other members before a restart",
		Long: `drain makes the node hand every partition of sessions to the other members
(each session is hibernated, then its new owner restores it) and waits until
it owns none. The node keeps serving: it forwards session requests to their
new owners. Restart it afterwards; it takes its share back when it returns.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.DrainNode(cmd.Context())
			if err != nil {
				return fmt.Errorf("drain %s: %w", c.Server(), err)
			}
			return g.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "node %s drained: it owns %d partitions\n", res.Node, res.Partitions)
			})
		},
	})
	return cmd
}
