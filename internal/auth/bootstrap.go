// Package auth owns the bootstrap admin token that `agentcloud serve`
// writes to <data>/admin.token (mode 0600) on first start, and checks a
// presented token against it. It does not read requests (internal/security
// takes the bearer token from them) and does not authorize; that is the
// policy engine's job.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// TokenFile is the admin token's file name inside the data dir.
const TokenFile = "admin.token"

// TokenPrefix marks agentcloud bootstrap tokens so they are easy to spot in
// leaks and to tell from JWT-SVIDs.
const TokenPrefix = "acb_"

// Bootstrap is the bootstrap admin token.
type Bootstrap struct {
	token []byte
}

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
		tok := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
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

// Valid reports, in constant time, whether tok is the admin token.
func (b *Bootstrap) Valid(tok string) bool {
	return subtle.ConstantTimeCompare([]byte(tok), b.token) == 1
}
