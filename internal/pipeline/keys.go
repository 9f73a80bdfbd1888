package pipeline

import (
	"fmt"
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
	skey, err := atomicfile.LoadOrCreate(filepath.Join(dir, LedgerKeyFile), func() ([]byte, error) {
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
	pem, err := atomicfile.LoadOrCreate(filepath.Join(dir, ProvenanceKeyFile), func() ([]byte, error) {
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
