// Package auth authenticates API requests until the identity layer exists: it
// owns the bootstrap admin token that `agentcloud serve` writes to
// <data>/admin.token (mode 0600) on first start. It does not authorize; that
// is the policy engine's job.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
)

// TokenFile is the admin token's file name inside the data dir.
const TokenFile = "admin.token"

// tokenPrefix marks agentcloud bootstrap tokens so they are easy to spot in leaks.
const tokenPrefix = "acb_"

// Bootstrap accepts the bootstrap admin token as a bearer token.
type Bootstrap struct {
	token []byte
}

var _ httpapi.Authenticator = (*Bootstrap)(nil)

// LoadOrCreate reads <dataDir>/admin.token, creating it (0600) with a fresh
// random token if it does not exist. The caller holds the data dir lock.
func LoadOrCreate(dataDir string) (*Bootstrap, error) {
	path := filepath.Join(dataDir, TokenFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		var raw [32]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return nil, fmt.Errorf("generate admin token: %w", err)
		}
		tok := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
		// Written beside and renamed into place, so a client reading the
		// file sees no token or the whole token, never part of one.
		tmp := path + ".tmp"
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create admin token: %w", err)
		}
		if _, err := f.WriteString(tok + "\n"); err != nil {
			f.Close()
			return nil, fmt.Errorf("write admin token: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("sync admin token: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("close admin token: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return nil, fmt.Errorf("create admin token: %w", err)
		}
		return &Bootstrap{token: []byte(tok)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read admin token: %w", err)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("admin token %s has mode %v: make it private with chmod 600", path, st.Mode().Perm())
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return nil, fmt.Errorf("admin token %s is too short: delete it to generate a new one", path)
	}
	return &Bootstrap{token: []byte(tok)}, nil
}

// Authenticate implements httpapi.Authenticator.
func (b *Bootstrap) Authenticate(r *http.Request) (httpapi.Principal, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return httpapi.Principal{}, api.Errorf(api.KindUnauthenticated, "missing credentials: send Authorization: Bearer <token> (the admin token is in <data>/admin.token)")
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return httpapi.Principal{}, api.Errorf(api.KindUnauthenticated, "unsupported Authorization scheme: use Bearer")
	}
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), b.token) != 1 {
		return httpapi.Principal{}, api.Errorf(api.KindUnauthenticated, "invalid token")
	}
	return httpapi.Principal{ID: "admin", Kind: "admin"}, nil
}
