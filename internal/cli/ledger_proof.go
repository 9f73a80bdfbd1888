package cli

// Offline proof checking (ledger_proof.go): `agentcloud ledger verify-proof
// FILE --key KEY` checks what `agentcloud ledger prove ENTRY` printed with
// nothing but the ledger's verifier key — no daemon, no network: the
// checkpoint's signature (golang.org/x/mod/sumdb/note), that the proof is
// for the checkpoint's tree, and that the RFC 6962 path leads from the
// entry's exact bytes to the checkpoint's root (golang.org/x/mod/sumdb/tlog).

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentcloud/agentcloud/api"
)

// proofFile is what `ledger prove` prints and `ledger verify-proof` reads.
type proofFile struct {
	Entry *api.LedgerRecord         `json:"entry"`
	Proof *api.LedgerInclusionProof `json:"proof"`
}

// Limits of a proof file: a tree of 2^63 entries needs at most 63 hashes;
// an entry is at most 1 MiB (base64 in the file).
const (
	maxProofFile   = 4 << 20
	maxProofHashes = 128
)

// verifiedProof is what a proof established.
type verifiedProof struct {
	OK       bool   `json:"ok"`
	Index    uint64 `json:"index"`
	Hash     string `json:"hash"`
	TreeSize uint64 `json:"tree_size"`
	Root     string `json:"root"`
	Origin   string `json:"origin"`
}

// verifyProof checks a proof file against the verifier key vkey.
func verifyProof(data []byte, vkey string) (verifiedProof, error) {
	var pf proofFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pf); err != nil {
		return verifiedProof{}, fmt.Errorf("the proof file is not what agentcloud ledger prove prints: %w", err)
	}
	if pf.Entry == nil || pf.Proof == nil {
		return verifiedProof{}, errors.New(`the proof file needs both "entry" and "proof"`)
	}
	if pf.Proof.Checkpoint == "" {
		return verifiedProof{}, errors.New("the proof carries no signed checkpoint: make it again with agentcloud ledger prove")
	}
	verifier, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return verifiedProof{}, fmt.Errorf("--key: %w (want the ledger's verifier key, as agentcloud ledger key prints it)", err)
	}
	n, err := note.Open([]byte(pf.Proof.Checkpoint), note.VerifierList(verifier))
	if err != nil {
		return verifiedProof{}, fmt.Errorf("the checkpoint's signature does not verify with this key: %w", err)
	}
	origin, size, root, err := parseCheckpoint(n.Text)
	if err != nil {
		return verifiedProof{}, err
	}
	if origin != verifier.Name() {
		return verifiedProof{}, fmt.Errorf("the checkpoint is of log %q, the key of %q", origin, verifier.Name())
	}
	p := pf.Proof
	if p.TreeSize != size {
		return verifiedProof{}, fmt.Errorf("the proof is for a tree of %d entries, the signed checkpoint for %d", p.TreeSize, size)
	}
	if p.Index != pf.Entry.Index {
		return verifiedProof{}, fmt.Errorf("the proof is for entry %d, the file's entry is %d", p.Index, pf.Entry.Index)
	}
	if p.Index >= size {
		return verifiedProof{}, fmt.Errorf("entry %d is beyond the tree of %d entries", p.Index, size)
	}
	if len(p.Hashes) > maxProofHashes {
		return verifiedProof{}, fmt.Errorf("the proof has %d hashes: at most %d", len(p.Hashes), maxProofHashes)
	}
	path := make([]tlog.Hash, len(p.Hashes))
	for i, h := range p.Hashes {
		if path[i], err = parseHexHash(h); err != nil {
			return verifiedProof{}, fmt.Errorf("proof hash %d: %w", i, err)
		}
	}
	leaf := tlog.RecordHash(pf.Entry.Raw)
	if pf.Entry.Hash != hex.EncodeToString(leaf[:]) {
		return verifiedProof{}, fmt.Errorf("entry %d: its bytes hash to %x, the file says %.64s: the entry was changed", pf.Entry.Index, leaf[:], pf.Entry.Hash)
	}
	if len(pf.Entry.Entry) > 0 && !jsonEqual(pf.Entry.Entry, pf.Entry.Raw) {
		return verifiedProof{}, fmt.Errorf("entry %d: its JSON is not its exact bytes: the entry was changed", pf.Entry.Index)
	}
	if err := tlog.CheckRecord(path, int64(size), root, int64(p.Index), leaf); err != nil {
		return verifiedProof{}, fmt.Errorf("entry %d is not in the tree of %d entries the checkpoint signs: %w", p.Index, size, err)
	}
	return verifiedProof{OK: true, Index: p.Index, Hash: hex.EncodeToString(leaf[:]), TreeSize: size, Root: hex.EncodeToString(root[:]), Origin: origin}, nil
}

// parseCheckpoint reads a C2SP tlog-checkpoint body: origin, tree size and
// base64 root hash lines (then optional extension lines).
func parseCheckpoint(text string) (string, uint64, tlog.Hash, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" || lines[0] == "" {
		return "", 0, tlog.Hash{}, errors.New("the checkpoint wants origin, size and root hash lines")
	}
	size, err := strconv.ParseUint(lines[1], 10, 63)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return "", 0, tlog.Hash{}, fmt.Errorf("checkpoint size %.20q is not a decimal tree size", lines[1])
	}
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return "", 0, tlog.Hash{}, fmt.Errorf("checkpoint root %.60q is not a base64 SHA-256 hash", lines[2])
	}
	return lines[0], size, tlog.Hash(root), nil
}

func parseHexHash(s string) (tlog.Hash, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != tlog.HashSize {
		return tlog.Hash{}, fmt.Errorf("%.70q is not 64 hex digits", s)
	}
	return tlog.Hash(b), nil
}

// jsonEqual reports whether two JSON texts are the same value (the
// readable copy of an entry and its exact bytes).
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// readKeyArg is --key: the verifier key itself, or a file holding it.
func readKeyArg(k string) (string, error) {
	if k == "" {
		return "", errors.New("--key is required: the ledger's verifier key (agentcloud ledger key > ledger.pub, then --key ledger.pub)")
	}
	b, err := os.ReadFile(k)
	if errors.Is(err, os.ErrNotExist) && strings.Count(k, "+") >= 2 {
		return k, nil // the key itself
	}
	if err != nil {
		return "", fmt.Errorf("--key %s: %w", k, err)
	}
	if len(b) > 4<<10 {
		return "", fmt.Errorf("--key %s: %d bytes is not a verifier key", k, len(b))
	}
	return strings.TrimSpace(string(b)), nil
}

// newLedgerProofCmds are `ledger key` and `ledger verify-proof`.
func newLedgerProofCmds(g *globals) []*cobra.Command {
	key := g.clientCmd("key", "Print the verifier key of the ledger's checkpoints (pin it, then check proofs offline with verify-proof --key)", 0,
		func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			k, err := c.LedgerKey(cmd.Context())
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(g.stdout, k)
			return err
		})
	var keyArg string
	verify := &cobra.Command{
		Use:   "verify-proof FILE",
		Short: "Check offline, without a daemon, a proof printed by ledger prove: the checkpoint's signature and the entry's inclusion (- reads stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vkey, err := readKeyArg(keyArg)
			if err != nil {
				return err
			}
			var r io.Reader
			if args[0] == "-" {
				r = cmd.InOrStdin()
			} else {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			data, err := io.ReadAll(io.LimitReader(r, maxProofFile+1))
			if err != nil {
				return err
			}
			if len(data) > maxProofFile {
				return fmt.Errorf("%s: over %d bytes is not a proof file", args[0], maxProofFile)
			}
			v, err := verifyProof(data, vkey)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			return g.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "entry %d (%s) is in the %d-entry tree of %s, root %s, signed with the given key\n", v.Index, v.Hash[:16], v.TreeSize, v.Origin, v.Root[:16])
			})
		},
	}
	verify.Flags().StringVar(&keyArg, "key", "", "the ledger's verifier key, or a file holding it (agentcloud ledger key)")
	return []*cobra.Command{key, verify}
}
