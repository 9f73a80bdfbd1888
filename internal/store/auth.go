package store

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// LoadOrCreateNKey returns the public key of the NATS user whose seed is
// in path, creating a new user seed (mode 0600) when the file is absent.
// The embedded server's listener admits only this user; the store's own
// connection and operators' tools (`nats --nkey FILE`) authenticate with it.
func LoadOrCreateNKey(path string) (string, error) {
	seed, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return "", fmt.Errorf("create nats user key: %w", err)
		}
		if seed, err = kp.Seed(); err != nil {
			return "", fmt.Errorf("nats user seed: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", fmt.Errorf("create %s: %w", filepath.Dir(path), err)
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, append(seed, '\n'), 0o600); err != nil {
			return "", fmt.Errorf("write nats user seed: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return "", fmt.Errorf("write nats user seed: %w", err)
		}
	} else if err != nil {
		return "", fmt.Errorf("read nats user seed %s: %w", path, err)
	}
	kp, err := nkeys.ParseDecoratedNKey(seed)
	if err != nil {
		return "", fmt.Errorf("nats user seed %s: %w", path, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", fmt.Errorf("nats user seed %s: %w", path, err)
	}
	if !nkeys.IsValidPublicUserKey(pub) {
		return "", fmt.Errorf("nats user seed %s: not a user key", path)
	}
	return pub, nil
}

// IsLoopback reports whether a host:port listens on loopback only.
func IsLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// listenAuth configures the embedded listener: one nkey user, and TLS off
// loopback. A listener without authentication is never started.
func (s *Store) listenAuth(sopts *server.Options) error {
	if s.opts.NKeySeedFile == "" {
		return fmt.Errorf("nats listener %s: refusing to listen without authentication: set an nkey seed file", s.opts.Listen)
	}
	pub, err := LoadOrCreateNKey(s.opts.NKeySeedFile)
	if err != nil {
		return err
	}
	sopts.Nkeys = []*server.NkeyUser{{Nkey: pub}}
	if s.opts.ListenTLS != nil {
		sopts.TLSConfig = s.opts.ListenTLS
		sopts.TLS = true
		sopts.TLSTimeout = 2
	} else if !IsLoopback(s.opts.Listen) {
		return fmt.Errorf("nats listener %s: refusing to listen off loopback without TLS", s.opts.Listen)
	}
	return nil
}

// clientAuth is how the store's own connection authenticates.
func (s *Store) clientAuth() ([]nats.Option, error) {
	var o []nats.Option
	if s.opts.NKeySeedFile != "" {
		nk, err := nats.NkeyOptionFromSeed(s.opts.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nats user seed: %w", err)
		}
		o = append(o, nk)
	}
	if s.opts.URL != "" && s.opts.ClientTLS != nil {
		o = append(o, nats.Secure(s.opts.ClientTLS))
	}
	return o, nil
}
