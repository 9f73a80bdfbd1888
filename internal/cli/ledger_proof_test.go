package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
)

// tamper changes one thing in a proof file (decoded as generic JSON).
type tamper struct {
	name string
	edit func(m map[string]any)
	want string
}

func proofTampers() []tamper {
	entry := func(m map[string]any) map[string]any { return m["entry"].(map[string]any) }
	proof := func(m map[string]any) map[string]any { return m["proof"].(map[string]any) }
	flipB64 := func(s string) string {
		b, _ := base64.StdEncoding.DecodeString(s)
		b[len(b)/2] ^= 1
		return base64.StdEncoding.EncodeToString(b)
	}
	return []tamper{
		{"entry bytes", func(m map[string]any) { entry(m)["raw"] = flipB64(entry(m)["raw"].(string)) }, "the entry was changed"},
		{"entry bytes and hash", func(m map[string]any) {
			raw, _ := base64.StdEncoding.DecodeString(entry(m)["raw"].(string))
			raw = []byte(strings.Replace(string(raw), `"type"`, `"type" `, 1))
			entry(m)["raw"] = base64.StdEncoding.EncodeToString(raw)
			entry(m)["entry"] = json.RawMessage(raw)
			entry(m)["hash"] = "" // recomputed below
		}, "not in the tree"},
		{"readable entry", func(m map[string]any) { entry(m)["entry"] = map[string]any{"type": "change"} }, "not its exact bytes"},
		{"proof hash", func(m map[string]any) {
			hs := proof(m)["hashes"].([]any)
			hs[0] = strings.Repeat("0", 64)
		}, "not in the tree"},
		{"proof hash dropped", func(m map[string]any) { proof(m)["hashes"] = proof(m)["hashes"].([]any)[1:] }, "not in the tree"},
		{"proof hash not hex", func(m map[string]any) { proof(m)["hashes"].([]any)[0] = "zz" }, "64 hex digits"},
		{"too many hashes", func(m map[string]any) {
			hs := make([]any, 200)
			for i := range hs {
				hs[i] = strings.Repeat("a", 64)
			}
			proof(m)["hashes"] = hs
		}, "at most"},
		{"index", func(m map[string]any) { proof(m)["index"] = 1.0 }, "the file's entry is"},
		{"index and entry index", func(m map[string]any) { proof(m)["index"] = 1.0; entry(m)["index"] = 1.0 }, "not in the tree"},
		{"tree size", func(m map[string]any) { proof(m)["tree_size"] = proof(m)["tree_size"].(float64) + 1 }, "signed checkpoint for"},
		{"checkpoint root", func(m map[string]any) {
			cp := proof(m)["checkpoint"].(string)
			lines := strings.SplitN(cp, "\n", 4)
			lines[2] = flipB64(lines[2])
			proof(m)["checkpoint"] = strings.Join(lines, "\n")
		}, "signature does not verify"},
		{"checkpoint signature", func(m map[string]any) {
			cp := proof(m)["checkpoint"].(string)
			i := strings.LastIndex(cp, " ")
			proof(m)["checkpoint"] = cp[:i+1] + flipB64(strings.TrimSpace(cp[i+1:])) + "\n"
		}, "signature does not verify"},
		{"no checkpoint", func(m map[string]any) { delete(proof(m), "checkpoint") }, "no signed checkpoint"},
		{"no entry", func(m map[string]any) { delete(m, "entry") }, `needs both`},
		{"unknown field", func(m map[string]any) { m["extra"] = 1 }, "not what agentcloud ledger prove prints"},
	}
}

// TestLedgerVerifyProofClass: `ledger prove` against a daemon, then
// `ledger verify-proof --key` with the daemon stopped (offline): the proof
// verifies with the pinned key; every tampering — the entry's bytes, its
// readable copy, a proof hash, the index, the tree size, the checkpoint's
// root or signature — and another log's key fail naming what is wrong;
// malformed files and keys are refused with a message, never a crash.
func TestLedgerVerifyProofClass(t *testing.T) {
	for _, k := range []string{"AGENTCLOUD_SERVER", "AGENTCLOUD_TOKEN", "AGENTCLOUD_CA_CERT", "AGENTCLOUD_CLIENT_CERT", "AGENTCLOUD_CLIENT_KEY"} {
		t.Setenv(k, "")
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	cfg := config.Default()
	cfg.Data, cfg.Listen = t.TempDir(), "127.0.0.1:0"
	cfg.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
	d, err := daemon.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// A deploy records its chain (change, test, policy, provenance, rollout).
	if code, out, errs := runCLI(t, "--data", cfg.Data, "deploy", "../../examples/hello"); code != 0 {
		t.Fatalf("deploy: %d %s %s", code, out, errs)
	}
	dir := t.TempDir()
	code, key, errs := runCLI(t, "--data", cfg.Data, "ledger", "key")
	if code != 0 || strings.Count(key, "+") < 2 {
		t.Fatalf("ledger key: %d %q %s", code, key, errs)
	}
	keyFile := filepath.Join(dir, "ledger.pub")
	if err := os.WriteFile(keyFile, []byte(key), 0o644); err != nil {
		t.Fatal(err)
	}
	code, proofJSON, errs := runCLI(t, "--data", cfg.Data, "ledger", "prove", "0")
	if code != 0 {
		t.Fatalf("ledger prove: %d %s", code, errs)
	}
	_ = d.Shutdown(ctx) // offline from here on

	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("proof.json", []byte(proofJSON))
	for _, k := range []string{keyFile, strings.TrimSpace(key)} {
		code, out, errs := runCLI(t, "ledger", "verify-proof", good, "--key", k)
		if code != 0 || !strings.Contains(out, "entry 0") {
			t.Fatalf("verify-proof --key %.30s: %d %s %s", k, code, out, errs)
		}
	}
	if code, out, _ := runCLI(t, "-o", "json", "ledger", "verify-proof", good, "--key", keyFile); code != 0 || !strings.Contains(out, `"ok": true`) {
		t.Fatalf("verify-proof -o json: %d %s", code, out)
	}

	for _, c := range proofTampers() {
		var m map[string]any
		if err := json.Unmarshal([]byte(proofJSON), &m); err != nil {
			t.Fatal(err)
		}
		c.edit(m)
		if e, ok := m["entry"].(map[string]any); ok && e["hash"] == "" {
			raw, _ := base64.StdEncoding.DecodeString(e["raw"].(string))
			e["hash"] = leafHex(raw)
		}
		b, _ := json.Marshal(m)
		code, out, errs := runCLI(t, "ledger", "verify-proof", write("t.json", b), "--key", keyFile)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%s: exit %d %s %s, want an error mentioning %q", c.name, code, out, errs, c.want)
		}
	}

	// Another log's key, malformed keys and files.
	_, otherKey, _ := note.GenerateKey(rand.Reader, strings.SplitN(strings.TrimSpace(key), "+", 2)[0])
	_, foreignKey, _ := note.GenerateKey(rand.Reader, "other.example/ledger")
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"same origin, other key": {[]string{good, "--key", otherKey}, "signature does not verify"},
		"other log's key":        {[]string{good, "--key", foreignKey}, "signature does not verify"},
		"no key":                 {[]string{good}, "--key is required"},
		"malformed key":          {[]string{good, "--key", "a+b+c"}, "--key"},
		"missing key file":       {[]string{good, "--key", filepath.Join(dir, "nope")}, "no such file"},
		"missing proof file":     {[]string{filepath.Join(dir, "nope.json"), "--key", keyFile}, "no such file"},
		"not JSON":               {[]string{write("bad.json", []byte("{\"entry\":")), "--key", keyFile}, "not what agentcloud ledger prove prints"},
		"null":                   {[]string{write("null.json", []byte("null")), "--key", keyFile}, "needs both"},
		"oversized":              {[]string{write("big.json", make([]byte, maxProofFile+10)), "--key", keyFile}, "not a proof file"},
	} {
		code, out, errs := runCLI(t, append([]string{"ledger", "verify-proof"}, c.args...)...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%s: exit %d %s %s, want an error mentioning %q", name, code, out, errs, c.want)
		}
	}
}

// FuzzVerifyProof: no proof file or key makes the verifier panic, and
// nothing but the untouched proof verifies.
func FuzzVerifyProof(f *testing.F) {
	skey, vkey, _ := note.GenerateKey(rand.Reader, "fuzz.example/ledger")
	signer, _ := note.NewSigner(skey)
	raw := []byte(`{"type":"audit"}`)
	leaf := leafHex(raw)
	cp, _ := note.Sign(&note.Note{Text: "fuzz.example/ledger\n1\n" + base64.StdEncoding.EncodeToString(mustHex(leaf)) + "\n"}, signer)
	good, _ := json.Marshal(proofFile{Entry: &apiRecord{Index: 0, Hash: leaf, Raw: raw, Entry: raw}, Proof: &apiProof{TreeSize: 1, Hashes: []string{}, Checkpoint: string(cp)}})
	if _, err := verifyProof(good, vkey); err != nil {
		f.Fatalf("the seed proof does not verify: %v", err)
	}
	f.Add(good, vkey)
	f.Add([]byte(`{"entry":{},"proof":{}}`), vkey)
	f.Add([]byte(`{"entry":{"raw":"AA=="},"proof":{"checkpoint":"x\n\n— a b\n"}}`), "a+b+c")
	f.Add([]byte(`null`), "")
	f.Fuzz(func(t *testing.T, data []byte, key string) {
		v, err := verifyProof(data, key)
		if err != nil {
			return
		}
		// Only the genuine entry verifies, against the genuine checkpoint.
		var pf proofFile
		_ = json.Unmarshal(data, &pf)
		if !v.OK || pf.Entry == nil || string(pf.Entry.Raw) != string(raw) || v.TreeSize != 1 || v.Hash != leaf {
			t.Fatalf("a changed proof verified: %s", data)
		}
	})
}

type (
	apiRecord = api.LedgerRecord
	apiProof  = api.LedgerInclusionProof
)

func leafHex(raw []byte) string {
	h := tlog.RecordHash(raw)
	return hex.EncodeToString(h[:])
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
