package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentcloud/agentcloud/internal/atomicfile"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/pipeline/provenance"
)

// Key files of a node's pipeline, in its key dir (0600, like the CA's
// key).
const (
	LedgerKeyFile     = "ledger.key"     // note signer key of the ledger's checkpoints
	ProvenanceKeyFile = "provenance.pem" // Ed25519 key of the release provenance
)

// LoadKeys loads the ledger's and the provenance's keys from dir, creating
// the ones missing; the ledger key's name is TRUST_DOMAIN/ledger.
func LoadKeys(dir, trustDomain string) (*ledger.Key, *provenance.Key, error) {
	skey, err := loadOrCreateKey(dir, LedgerKeyFile, func() ([]byte, error) {
		s, _, err := ledger.GenerateKey(trustDomain + "/ledger")
		return []byte(s), err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("ledger key: %w", err)
	}
	lk, err := ledger.ParseKey(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, nil, fmt.Errorf("ledger key %s: %w", filepath.Join(dir, LedgerKeyFile), err)
	}
	pem, err := loadOrCreateKey(dir, ProvenanceKeyFile, func() ([]byte, error) {
		k, err := provenance.GenerateKey()
		if err != nil {
			return nil, err
		}
		return k.MarshalPEM(), nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("provenance key: %w", err)
	}
	pk, err := provenance.ParseKey(pem)
	if err != nil {
		return nil, nil, fmt.Errorf("provenance key %s: %w", filepath.Join(dir, ProvenanceKeyFile), err)
	}
	return lk, pk, nil
}

// loadOrCreateKey reads name in dir, or writes what create returns there
// first (atomically, 0600).
func loadOrCreateKey(dir, name string, create func() ([]byte, error)) ([]byte, error) {
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	if b, err = create(); err != nil {
		return nil, err
	}
	return b, atomicfile.Write(path, b, 0o600)
}
