package pipeline_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/pipeline"
)

// TestLoadKeysClass: the keys are created once (0600) and read back the
// same at the next start; a damaged key file is refused naming the file.
func TestLoadKeysClass(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pipeline")
	lk, pk, err := pipeline.LoadKeys(dir, "agentcloud.local")
	if err != nil {
		t.Fatal(err)
	}
	lk2, pk2, err := pipeline.LoadKeys(dir, "agentcloud.local")
	if err != nil {
		t.Fatal(err)
	}
	if lk.VerifierKey() != lk2.VerifierKey() || lk.Origin() != "agentcloud.local/ledger" || string(pk.MarshalPEM()) != string(pk2.MarshalPEM()) {
		t.Fatal("the keys changed between two starts")
	}
	for _, name := range []string{pipeline.LedgerKeyFile, pipeline.ProvenanceKeyFile} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for _, name := range []string{pipeline.LedgerKeyFile, pipeline.ProvenanceKeyFile} {
		bad := t.TempDir()
		if _, _, err := pipeline.LoadKeys(bad, "agentcloud.local"); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bad, name), []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := pipeline.LoadKeys(bad, "agentcloud.local"); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("damaged %s: %v", name, err)
		}
	}
}
