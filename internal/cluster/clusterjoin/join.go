// Package clusterjoin holds the join material of a cluster: every member
// is one trust domain, so they share the CA (root certificate and key, JWT
// signing key), the secrets key and the admin token. The first node makes
// them; a member writes them into a join bundle (Write, `agentcloud
// cluster join-bundle`), and a joining node installs the bundle into its
// data dir before its store opens (Install, `serve --join FILE`) instead of
// inventing its own.
package clusterjoin

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentcloud/agentcloud/internal/atomicfile"
	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/identity"
	"github.com/agentcloud/agentcloud/internal/secrets"
	"github.com/agentcloud/agentcloud/internal/strictjson"
)

// Format names the join bundle's format.
const Format = "agentcloud-join-bundle/1"

// maxJoinBundle caps a join bundle file.
const maxJoinBundle = 64 << 10

// joinBundle is the JSON of a join bundle. It is a secret: whoever has it
// can mint any identity and read every secret.
type joinBundle struct {
	Format      string `json:"format"`
	TrustDomain string `json:"trust_domain"`
	// CACert, CAKey and JWTKey are the PEM files of <ca dir>.
	CACert string `json:"ca_crt"`
	CAKey  string `json:"ca_key"`
	JWTKey string `json:"jwt_key"`
	// SecretsKey is <data>/secrets.key (base64 in JSON).
	SecretsKey []byte `json:"secrets_key"`
	// AdminToken is <data>/admin.token.
	AdminToken string `json:"admin_token"`
}

// Files of the CA dir (identity's names).
const (
	caCertName  = "ca.crt"
	caKeyName   = "ca.key"
	jwtKeyName  = "jwt.key"
	secretsName = "secrets.key"
)

// files maps each file of the bundle to its path and content.
func (b *joinBundle) files(cfg config.Config) []struct {
	path string
	data []byte
} {
	ca := cfg.CAPath()
	return []struct {
		path string
		data []byte
	}{
		{filepath.Join(ca, caCertName), []byte(b.CACert)},
		{filepath.Join(ca, caKeyName), []byte(b.CAKey)},
		{filepath.Join(ca, jwtKeyName), []byte(b.JWTKey)},
		{filepath.Join(cfg.Data, secretsName), b.SecretsKey},
		{filepath.Join(cfg.Data, auth.TokenFile), []byte(b.AdminToken + "\n")},
	}
}

// Write writes the join bundle of the node whose configuration
// is cfg to w. A new data dir gets its material first (CA, secrets key,
// admin token: what the node's first start would make), so the first node
// of a new cluster and the ones joining it can start together.
func Write(cfg config.Config, w io.Writer) error {
	if err := createTrustMaterial(cfg); err != nil {
		return fmt.Errorf("join bundle: %w", err)
	}
	read := os.ReadFile
	b := joinBundle{Format: Format, TrustDomain: cfg.TrustDomain}
	var err error
	var cert, key, jwt, tok []byte
	ca := cfg.CAPath()
	for _, f := range []struct {
		dst  *[]byte
		path string
	}{{&cert, filepath.Join(ca, caCertName)}, {&key, filepath.Join(ca, caKeyName)}, {&jwt, filepath.Join(ca, jwtKeyName)},
		{&b.SecretsKey, filepath.Join(cfg.Data, secretsName)}, {&tok, filepath.Join(cfg.Data, auth.TokenFile)}} {
		if *f.dst, err = read(f.path); err != nil {
			return fmt.Errorf("join bundle: %w", err)
		}
	}
	b.CACert, b.CAKey, b.JWTKey, b.AdminToken = string(cert), string(key), string(jwt), strings.TrimSpace(string(tok))
	if err := b.check(); err != nil {
		return fmt.Errorf("join bundle of %s: %w", cfg.Data, err)
	}
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	out = append(out, '\n')
	_, err = w.Write(out)
	return err
}

// createTrustMaterial creates what is missing of the node's CA, secrets
// key and admin token.
func createTrustMaterial(cfg config.Config) error {
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return err
	}
	if _, err := identity.LoadOrCreateCA(identity.Config{TrustDomain: cfg.TrustDomain}, cfg.CAPath()); err != nil {
		return err
	}
	if _, err := secrets.LoadOrCreateKey(filepath.Join(cfg.Data, secretsName)); err != nil {
		return err
	}
	_, err := auth.LoadOrCreate(cfg.Data)
	return err
}

// parseJoinBundle reads and checks a join bundle.
func parseJoinBundle(data []byte) (*joinBundle, error) {
	if len(data) > maxJoinBundle {
		return nil, fmt.Errorf("%d bytes, more than a join bundle's %d", len(data), maxJoinBundle)
	}
	var b joinBundle
	if err := strictjson.Decode(data, &b); err != nil {
		return nil, err
	}
	if err := b.check(); err != nil {
		return nil, err
	}
	return &b, nil
}

// check verifies every part of the bundle: the format, a CA certificate of
// the trust domain whose key is ca_key, a JWT key, a secrets key of the
// right size and an admin token.
func (b *joinBundle) check() error {
	if b.Format != Format {
		return fmt.Errorf("format %q: want %q (made by 'agentcloud cluster join-bundle')", b.Format, Format)
	}
	blk, _ := pem.Decode([]byte(b.CACert))
	if blk == nil || blk.Type != "CERTIFICATE" {
		return errors.New("ca_crt: want a PEM CERTIFICATE")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return fmt.Errorf("ca_crt: %w", err)
	}
	if !cert.IsCA {
		return errors.New("ca_crt: not a CA certificate")
	}
	if len(cert.URIs) != 1 || cert.URIs[0].Scheme != "spiffe" || cert.URIs[0].Host != b.TrustDomain {
		return fmt.Errorf("ca_crt: not the root of trust domain %q", b.TrustDomain)
	}
	key, err := parseKey("ca_key", b.CAKey)
	if err != nil {
		return err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return errors.New("ca_key: not the key of ca_crt")
	}
	if _, err := parseKey("jwt_key", b.JWTKey); err != nil {
		return err
	}
	if len(b.SecretsKey) != secrets.KeySize {
		return fmt.Errorf("secrets_key: %d bytes, want %d", len(b.SecretsKey), secrets.KeySize)
	}
	if !strings.HasPrefix(b.AdminToken, auth.TokenPrefix) || len(b.AdminToken) < 16 || len(b.AdminToken) > 256 ||
		strings.ContainsAny(b.AdminToken, " \t\r\n") {
		return fmt.Errorf("admin_token: want an %s token", auth.TokenPrefix)
	}
	return nil
}

func parseKey(field, s string) (crypto.Signer, error) {
	blk, _ := pem.Decode([]byte(s))
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: want a PEM PRIVATE KEY", field)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	sg, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: %T is not a signing key", field, k)
	}
	return sg, nil
}

// Install installs the join bundle of config join into the data dir
// before the store opens, and reports whether it wrote anything. A data
// dir that already has the same material (a restart with the same --join)
// is left as it is; one with other material (its own CA, secrets key or
// admin token) is refused.
func Install(cfg config.Config) (bool, error) {
	if cfg.Join == "" {
		return false, nil
	}
	b, err := readJoinFile(cfg.Join)
	if err != nil {
		return false, err
	}
	if b.TrustDomain != cfg.TrustDomain {
		return false, fmt.Errorf("join bundle %s is for trust domain %q, but trust_domain is %q: set --trust-domain %s",
			cfg.Join, b.TrustDomain, cfg.TrustDomain, b.TrustDomain)
	}
	files := b.files(cfg)
	var missing int
	for _, f := range files {
		have, err := os.ReadFile(f.path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing++
		case err != nil:
			return false, fmt.Errorf("join: %w", err)
		case !bytes.Equal(bytes.TrimSpace(have), bytes.TrimSpace(f.data)):
			return false, fmt.Errorf("join: data dir %s already has a different %s (it was started on its own, or joined another cluster): use an empty data dir to join", cfg.Data, f.path)
		}
	}
	if missing == 0 {
		return false, nil
	}
	if err := os.MkdirAll(cfg.CAPath(), 0o700); err != nil {
		return false, fmt.Errorf("join: %w", err)
	}
	for _, f := range files {
		if err := atomicfile.Write(f.path, f.data, 0o600); err != nil {
			return false, fmt.Errorf("join: %w", err)
		}
	}
	return true, nil
}

// readJoinFile reads a join bundle file, refusing one others may read.
func readJoinFile(path string) (*joinBundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("join bundle: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("join bundle: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("join bundle %s has mode %v: it holds the cluster's CA key and secrets key; make it private with chmod 600", path, st.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxJoinBundle+1))
	if err != nil {
		return nil, fmt.Errorf("join bundle: %w", err)
	}
	b, err := parseJoinBundle(data)
	if err != nil {
		return nil, fmt.Errorf("join bundle %s: %w", path, err)
	}
	return b, nil
}
