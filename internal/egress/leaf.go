package egress

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"
)

// leafCache mints and caches interception certificates per (caller, host).
// Each caller gets its own leaf (its subject names the caller), so a leaf
// obtained by one sandbox says nothing about another.
type leafCache struct {
	ca  *x509.Certificate
	key crypto.Signer
	ttl time.Duration
	now func() time.Time

	leafKey *ecdsa.PrivateKey // shared by all leaves; never leaves the proxy

	mu    sync.Mutex // protects certs
	certs map[string]*tls.Certificate
}

func newLeafCache(ca *x509.Certificate, key crypto.Signer, ttl time.Duration, now func() time.Time) (*leafCache, error) {
	if !ca.IsCA {
		return nil, fmt.Errorf("intercept certificate is not a CA")
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("leaf key: %w", err)
	}
	return &leafCache{ca: ca, key: key, ttl: ttl, now: now, leafKey: k, certs: make(map[string]*tls.Certificate)}, nil
}

// maxLeaves bounds the cache; when full it is emptied (leaves are cheap).
const maxLeaves = 4096

func (c *leafCache) get(caller, host string) (*tls.Certificate, error) {
	key := caller + "\x00" + host
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if cert, ok := c.certs[key]; ok && now.Add(c.ttl/4).Before(cert.Leaf.NotAfter) {
		return cert, nil
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("leaf serial: %w", err)
	}
	notAfter := now.Add(c.ttl)
	if notAfter.After(c.ca.NotAfter) {
		notAfter = c.ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host, OrganizationalUnit: []string{caller}, Organization: []string{"agentcloud egress"}},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.ca, c.leafKey.Public(), c.key)
	if err != nil {
		return nil, fmt.Errorf("mint leaf for %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("mint leaf for %s: %w", host, err)
	}
	cert := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: c.leafKey, Leaf: leaf}
	if len(c.certs) >= maxLeaves {
		clear(c.certs)
	}
	c.certs[key] = cert
	return cert, nil
}
