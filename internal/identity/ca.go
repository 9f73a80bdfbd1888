package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Defaults for issued credentials.
const (
	DefaultX509TTL = time.Hour
	DefaultJWTTTL  = 5 * time.Minute
	rootTTL        = 10 * 365 * 24 * time.Hour
)

// File names inside the CA directory.
const (
	caCertFile = "ca.crt"
	caKeyFile  = "ca.key"
	jwtKeyFile = "jwt.key"
)

// Config configures a CA. The zero value is usable: trust domain
// agentcloud.local, real clock, default TTLs, logs discarded.
type Config struct {
	TrustDomain string           // default DefaultTrustDomain
	X509TTL     time.Duration    // default DefaultX509TTL
	JWTTTL      time.Duration    // default DefaultJWTTTL; also the maximum
	Now         func() time.Time // default time.Now
	Logger      *slog.Logger     // default discards
	Revoker     Revoker          // default: a new MemRevoker
}

func (c Config) withDefaults() (Config, spiffeid.TrustDomain, error) {
	if c.TrustDomain == "" {
		c.TrustDomain = DefaultTrustDomain
	}
	td, err := spiffeid.TrustDomainFromString(c.TrustDomain)
	if err != nil {
		return c, td, fmt.Errorf("config TrustDomain %q: %w", c.TrustDomain, err)
	}
	if c.X509TTL <= 0 {
		c.X509TTL = DefaultX509TTL
	}
	if c.JWTTTL <= 0 {
		c.JWTTTL = DefaultJWTTTL
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Revoker == nil {
		c.Revoker = NewMemRevoker(c.Now)
	}
	return c, td, nil
}

// CA is the built-in certificate authority of one trust domain. It holds an
// X.509 root that signs X.509-SVIDs and a separate key that signs JWT-SVIDs
// (both ECDSA P-256 when the CA creates them; a supplied root may also be
// Ed25519 or RSA). A CA is safe for concurrent use.
type CA struct {
	cfg    Config
	td     spiffeid.TrustDomain
	cert   *x509.Certificate
	key    crypto.Signer
	jwtKey crypto.Signer
	jwtKID string
	jwtAlg jose.SignatureAlgorithm

	x509Bundle *x509bundle.Bundle
	jwtBundle  *jwtbundle.Bundle
	verified   jwtCache // JWT-SVIDs whose signature verified (jwtcache.go)
}

// NewCA builds a CA from a supplied root certificate and key. jwtKey signs
// JWT-SVIDs; if nil, root's key is used.
func NewCA(cfg Config, root *x509.Certificate, key crypto.Signer, jwtKey crypto.Signer) (*CA, error) {
	cfg, td, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if root == nil || key == nil {
		return nil, errors.New("new ca: root certificate and key are required")
	}
	if !root.IsCA {
		return nil, errors.New("new ca: root certificate is not a CA")
	}
	if !publicKeysEqual(root.PublicKey, key.Public()) {
		return nil, errors.New("new ca: key does not match root certificate")
	}
	if jwtKey == nil {
		jwtKey = key
	}
	alg, err := jwtAlgorithm(jwtKey)
	if err != nil {
		return nil, fmt.Errorf("new ca: %w", err)
	}
	kid, err := keyID(jwtKey.Public())
	if err != nil {
		return nil, fmt.Errorf("new ca: %w", err)
	}
	ca := &CA{cfg: cfg, td: td, cert: root, key: key, jwtKey: jwtKey, jwtKID: kid, jwtAlg: alg}
	ca.x509Bundle = x509bundle.FromX509Authorities(td, []*x509.Certificate{root})
	ca.jwtBundle = jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{kid: jwtKey.Public()})
	return ca, nil
}

// LoadOrCreateCA loads the CA kept in dir, creating a new root and JWT key
// (files mode 0600, dir 0700) when none exist yet.
func LoadOrCreateCA(cfg Config, dir string) (*CA, error) {
	cfg, td, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ca dir %s: %w", dir, err)
	}
	certPath := filepath.Join(dir, caCertFile)
	if _, err := os.Stat(certPath); errors.Is(err, fs.ErrNotExist) {
		if err := createCAFiles(cfg, td, dir); err != nil {
			return nil, err
		}
		cfg.Logger.Info("created certificate authority", "dir", dir, "trust_domain", td.String())
	} else if err != nil {
		return nil, fmt.Errorf("stat %s: %w", certPath, err)
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("read ca cert: %w", err)
	}
	blk, _ := pem.Decode(certPEM)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("read ca cert %s: no CERTIFICATE block", certPath)
	}
	root, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse ca cert: %w", err)
	}
	key, err := readKey(filepath.Join(dir, caKeyFile))
	if err != nil {
		return nil, err
	}
	jwtKey, err := readKey(filepath.Join(dir, jwtKeyFile))
	if err != nil {
		return nil, err
	}
	return NewCA(cfg, root, key, jwtKey)
}

func createCAFiles(cfg Config, td spiffeid.TrustDomain, dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate ca key: %w", err)
	}
	jwtKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate jwt key: %w", err)
	}
	now := cfg.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{Organization: []string{"agentcloud"}, CommonName: "agentcloud root CA " + td.Name()},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(rootTTL),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		URIs:                  []*url.URL{td.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("create ca cert: %w", err)
	}
	if err := writeKey(filepath.Join(dir, caKeyFile), key); err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, jwtKeyFile), jwtKey); err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, caCertFile), certPEM, 0o600); err != nil {
		return fmt.Errorf("write ca cert: %w", err)
	}
	return nil
}

func writeKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal key %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return fmt.Errorf("write key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write key %s: %w", path, err)
	}
	return nil
}

func readKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("read key %s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse key %s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key %s: %T is not a signer", path, k)
	}
	return s, nil
}

// jwtAlgorithm picks the JWS algorithm for a signing key: ES256/ES384 for
// ECDSA, EdDSA for Ed25519, RS256 for RSA.
func jwtAlgorithm(k crypto.Signer) (jose.SignatureAlgorithm, error) {
	switch pub := k.Public().(type) {
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		}
		return "", fmt.Errorf("jwt key: unsupported curve %s", pub.Curve.Params().Name)
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	case *rsa.PublicKey:
		return jose.RS256, nil
	}
	return "", fmt.Errorf("jwt key: unsupported key type %T", k.Public())
}

func randSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // crypto/rand never fails on supported platforms
	}
	return n
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

// keyID derives a stable key id from the public key (SHA-256 of its SPKI).
func keyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("key id: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:16]), nil
}

// TrustDomain returns the CA's trust domain.
func (ca *CA) TrustDomain() spiffeid.TrustDomain { return ca.td }

// Certificate returns the root certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Signer returns the root key; the egress proxy uses it to mint interception
// certificates.
func (ca *CA) Signer() crypto.Signer { return ca.key }

// X509Bundle returns the X.509 trust bundle (the root).
func (ca *CA) X509Bundle() *x509bundle.Bundle { return ca.x509Bundle }

// JWTBundle returns the JWT bundle holding the JWT-SVID verification key.
func (ca *CA) JWTBundle() *jwtbundle.Bundle { return ca.jwtBundle }

// JWKS returns the JWT bundle as a JWKS document for verifiers elsewhere.
func (ca *CA) JWKS() ([]byte, error) {
	b, err := ca.jwtBundle.Marshal()
	if err != nil {
		return nil, fmt.Errorf("marshal jwks: %w", err)
	}
	return b, nil
}

// Revoker returns the revocation list consulted by VerifyJWT.
func (ca *CA) Revoker() Revoker { return ca.cfg.Revoker }

// IssueX509SVID generates a fresh P-256 key and issues an X.509-SVID for id
// valid for the configured TTL. dnsNames are added as DNS SANs (those that
// parse as IP addresses as IP SANs), which lets a node certificate also
// serve ordinary HTTPS clients that check the host name or address.
func (ca *CA) IssueX509SVID(id spiffeid.ID, dnsNames ...string) (*x509svid.SVID, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("issue x509-svid %s: %w", id, err)
	}
	cert, err := ca.SignX509SVID(id, key.Public(), ca.cfg.X509TTL, dnsNames...)
	if err != nil {
		return nil, err
	}
	return &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{cert}, PrivateKey: key}, nil
}

// SignX509SVID signs a leaf X.509-SVID for id over pub, valid for ttl (capped
// at the root's expiry).
func (ca *CA) SignX509SVID(id spiffeid.ID, pub crypto.PublicKey, ttl time.Duration, dnsNames ...string) (*x509.Certificate, error) {
	if !id.MemberOf(ca.td) {
		return nil, fmt.Errorf("issue x509-svid %s: %w", id, ErrWrongTrustDomain)
	}
	if ttl <= 0 {
		ttl = ca.cfg.X509TTL
	}
	now := ca.cfg.Now()
	notAfter := now.Add(ttl)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{Organization: []string{"agentcloud"}},
		NotBefore:             now.Add(-30 * time.Second),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id.URL()},
	}
	for _, n := range dnsNames {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("issue x509-svid %s: %w", id, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("issue x509-svid %s: %w", id, err)
	}
	return cert, nil
}
