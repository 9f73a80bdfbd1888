package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ClusterOptions makes the embedded server one member of a NATS cluster
// with clustered JetStream: buckets and streams are replicated
// (Options.Replicas) and survive the loss of a minority of the members.
type ClusterOptions struct {
	// Name is the cluster's name; every member uses the same one.
	Name string
	// Node is this member's name, unique in the cluster.
	Node string
	// Listen is where the member accepts routes from the others
	// (host:port; port 0 picks a free one, see ClusterAddr).
	Listen string
	// Routes are the other members' route addresses
	// (nats-route://host:port or host:port). A member needs at least one
	// reachable member; the cluster gossips the rest.
	Routes []string
	// TLS secures routes both ways; it must require and verify the peer's
	// certificate (mutual TLS with node SVIDs). Routes are never plain.
	TLS *tls.Config
	// ElectionTimeout is the shortest time a follower of a stream waits
	// for its dead leader before it campaigns (0: DefaultElectionTimeout;
	// see raft.go). It is the floor of a failover.
	ElectionTimeout time.Duration
	// StaggerElections gives this member's election timer its own part of
	// the timeout's range, by its rank among the members its routes name
	// (ElectionSlot, raft.go), so two survivors never split a vote. The
	// timing is per process: set it only where the process runs this one
	// clustered store (a daemon), not where several members share one
	// (tests), whose timers would all draw from one narrow part.
	StaggerElections bool
}

// validate refuses a cluster member that would accept routes from anyone.
func (c *ClusterOptions) validate() error {
	switch {
	case c.Name == "":
		return errors.New("store cluster: name is empty")
	case c.Node == "":
		return errors.New("store cluster: node name is empty")
	case c.Listen == "":
		return errors.New("store cluster: listen address is empty")
	case c.TLS == nil:
		return fmt.Errorf("store cluster %s: refusing routes without mutual TLS", c.Name)
	case c.TLS.ClientAuth != tls.RequireAndVerifyClientCert && c.TLS.ClientAuth != tls.RequireAnyClientCert:
		return fmt.Errorf("store cluster %s: route TLS must require a client certificate", c.Name)
	case c.TLS.ClientAuth == tls.RequireAnyClientCert && c.TLS.VerifyPeerCertificate == nil:
		return fmt.Errorf("store cluster %s: route TLS must verify the client certificate", c.Name)
	case c.ElectionTimeout != 0 && (c.ElectionTimeout < MinElectionTimeout || c.ElectionTimeout > MaxElectionTimeout):
		return fmt.Errorf("store cluster %s: election timeout %v, want 0 (%v) or from %v to %v",
			c.Name, c.ElectionTimeout, DefaultElectionTimeout, MinElectionTimeout, MaxElectionTimeout)
	}
	return nil
}

// applyCluster configures sopts for c.
func applyCluster(sopts *server.Options, c *ClusterOptions) error {
	if err := c.validate(); err != nil {
		return err
	}
	host, portText, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("store cluster listen address %q: %w", c.Listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("store cluster listen port %q: %w", portText, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	routes := make([]*url.URL, 0, len(c.Routes))
	for _, r := range c.Routes {
		u, err := routeURL(r)
		if err != nil {
			return err
		}
		routes = append(routes, u)
	}
	sopts.ServerName = "agentcloud-" + c.Node
	sopts.Cluster = server.ClusterOpts{
		Name:       c.Name,
		Host:       host,
		Port:       port,
		TLSConfig:  c.TLS,
		TLSTimeout: 5,
	}
	sopts.Routes = routes
	return nil
}

// routeURL parses one route address.
func routeURL(s string) (*url.URL, error) {
	raw := s
	if !containsScheme(s) {
		raw = "nats-route://" + s
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Port() == "" {
		return nil, fmt.Errorf("store cluster route %q: want nats-route://host:port", s)
	}
	if u.Scheme != "nats-route" && u.Scheme != "nats" && u.Scheme != "tls" {
		return nil, fmt.Errorf("store cluster route %q: scheme %q, want nats-route", s, u.Scheme)
	}
	if u.User != nil {
		return nil, fmt.Errorf("store cluster route %q: credentials in a route URL are not used; routes authenticate with TLS", s)
	}
	return u, nil
}

func containsScheme(s string) bool {
	for i := range len(s) {
		if s[i] == ':' {
			return i+2 < len(s) && s[i+1] == '/' && s[i+2] == '/'
		}
		if !(s[i] >= 'a' && s[i] <= 'z' || s[i] == '-' || s[i] == '+') {
			return false
		}
	}
	return false
}

// ClusterAddr is the address the embedded server accepts routes on, or nil
// outside cluster mode.
func (s *Store) ClusterAddr() net.Addr {
	if s.ns == nil || s.opts.Cluster == nil {
		return nil
	}
	return s.ns.ClusterAddr()
}

// ClusterPeers names the other cluster members the embedded server has a
// route to now (a member may hold several route connections to one peer).
func (s *Store) ClusterPeers() []string {
	if s.ns == nil {
		return nil
	}
	rz, err := s.ns.Routez(nil)
	if err != nil {
		return nil
	}
	var out []string
	for _, r := range rz.Routes {
		if r.RemoteName != "" && !slices.Contains(out, r.RemoteName) {
			out = append(out, r.RemoteName)
		}
	}
	slices.Sort(out)
	return out
}

// waitJetStream asks for the account's JetStream information until it
// answers: a clustered server answers only once the members have elected
// a meta leader.
func (s *Store) waitJetStream(ctx context.Context) error {
	c, _ := s.current()
	if s.opts.Cluster == nil {
		_, err := c.js.AccountInfo(ctx)
		return err
	}
	for {
		// A request sent before the leader is known is not answered, so
		// each attempt has its own short deadline.
		actx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := c.js.AccountInfo(actx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
