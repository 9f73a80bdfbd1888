package daemon

import (
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"

	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/store"
)

// NATSUserSeedFile is where a node with a NATS listener keeps the nkey user
// seed (mode 0600) the listener admits; operators' NATS tools use it too.
const NATSUserSeedFile = "nats/user.nk"

// storeOptions builds the store's options. An embedded listener always
// requires the node's nkey user; off loopback it also serves TLS with a
// node certificate from the platform CA (clients verify it with
// <data>/ca/ca.crt), and store.Open refuses it otherwise.
func (d *Daemon) storeOptions() (store.Options, error) {
	o := store.Options{Dir: d.cfg.Data, Listen: d.cfg.NATSListen, URL: d.cfg.NATSURL,
		NKeySeedFile: d.cfg.NATSNKeyFile, Logger: d.log.With("component", "store"), Metrics: d.reg}
	if err := d.clusterStoreOptions(&o); err != nil {
		return o, err
	}
	if d.cfg.NATSListen == "" {
		return o, nil
	}
	if o.NKeySeedFile == "" {
		o.NKeySeedFile = filepath.Join(d.cfg.Data, NATSUserSeedFile)
	}
	if store.IsLoopback(d.cfg.NATSListen) {
		return o, nil
	}
	tlsCfg, err := d.natsServerTLS()
	if err != nil {
		return o, err
	}
	o.ListenTLS = tlsCfg
	return o, nil
}

// natsServerTLS is the listener's TLS: the node's X.509-SVID, rotated at
// half-life, with DNS names for localhost, the node id and a named listen
// host.
func (d *Daemon) natsServerTLS() (*tls.Config, error) {
	ca, err := identity.LoadOrCreateCA(identity.Config{TrustDomain: d.cfg.TrustDomain}, d.cfg.CAPath())
	if err != nil {
		return nil, fmt.Errorf("nats listener certificate: %w", err)
	}
	id, err := identity.NewID(ca.TrustDomain(), identity.KindNode, d.cfg.NodeID)
	if err != nil {
		return nil, fmt.Errorf("node identity: %w", err)
	}
	names := []string{"localhost", d.cfg.NodeID}
	if host, _, err := net.SplitHostPort(d.cfg.NATSListen); err == nil && host != "" && net.ParseIP(host) == nil {
		names = append(names, host)
	}
	rot, err := ca.NewRotator(id, names...)
	if err != nil {
		return nil, fmt.Errorf("nats listener certificate: %w", err)
	}
	return ca.ServerTLSConfig(rot), nil
}
