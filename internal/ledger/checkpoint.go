package ledger

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a signed statement of the tree (C2SP tlog-checkpoint):
// the note text is the origin, the size in decimal and the root hash in
// base64, one per line, followed by signature lines.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   Hash
	// Signed is the whole signed note as served.
	Signed []byte
}

// maxCheckpoint bounds a signed checkpoint's size.
const maxCheckpoint = 4096

// checkpointText is the note body for a tree.
func checkpointText(origin string, size uint64, root Hash) string {
	return fmt.Sprintf("%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(root[:]))
}

// signCheckpoint signs the checkpoint of a tree with key.
func signCheckpoint(k *Key, size uint64, root Hash) (Checkpoint, error) {
	signed, err := note.Sign(&note.Note{Text: checkpointText(k.Origin(), size, root)}, k.signer)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	return Checkpoint{Origin: k.Origin(), Size: size, Root: root, Signed: signed}, nil
}

// ErrBadCheckpoint marks a checkpoint that is malformed, signed by another
// key or for another origin.
var ErrBadCheckpoint = errors.New("bad checkpoint")

// OpenCheckpoint verifies a signed checkpoint with the verifier key vkey
// (signed-note text form) and parses it. The origin must be the key's
// name. Extension lines after the root are allowed and ignored.
func OpenCheckpoint(signed []byte, vkey string) (Checkpoint, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: verifier key: %w", ErrBadCheckpoint, err)
	}
	return openCheckpoint(signed, v)
}

func openCheckpoint(signed []byte, v note.Verifier) (Checkpoint, error) {
	if len(signed) > maxCheckpoint {
		return Checkpoint{}, fmt.Errorf("%w: %d bytes (the limit is %d)", ErrBadCheckpoint, len(signed), maxCheckpoint)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrBadCheckpoint, err)
	}
	cp, err := parseCheckpointText(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if cp.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("%w: origin %q is not the key's name %q", ErrBadCheckpoint, clip(cp.Origin), v.Name())
	}
	cp.Signed = bytes.Clone(signed)
	return cp, nil
}

// parseCheckpointText parses the note body: origin, size (decimal, no
// leading zeros), root (base64 of 32 bytes), optional extension lines.
func parseCheckpointText(text string) (Checkpoint, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return Checkpoint{}, fmt.Errorf("%w: want origin, size and root hash lines", ErrBadCheckpoint)
	}
	var cp Checkpoint
	cp.Origin = lines[0]
	if cp.Origin == "" {
		return Checkpoint{}, fmt.Errorf("%w: empty origin", ErrBadCheckpoint)
	}
	size, err := strconv.ParseUint(lines[1], 10, 63)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("%w: size %q is not a decimal tree size", ErrBadCheckpoint, clip(lines[1]))
	}
	cp.Size = size
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2]) // one encoding per root
	if err != nil || len(root) != HashSize {
		return Checkpoint{}, fmt.Errorf("%w: root %q is not a base64 SHA-256 hash", ErrBadCheckpoint, clip(lines[2]))
	}
	cp.Root = Hash(root)
	return cp, nil
}

// InclusionProof proves that the entry at Index is in the tree of
// TreeSize entries. Checkpoint, when set, is the signed checkpoint of that
// tree the proof was made against.
type InclusionProof struct {
	Index      uint64 `json:"index"`
	TreeSize   uint64 `json:"tree_size"`
	Hashes     []Hash `json:"hashes"`
	Checkpoint string `json:"checkpoint,omitempty"`
}

// ConsistencyProof proves that the tree of OldSize entries is a prefix of
// the tree of NewSize entries.
type ConsistencyProof struct {
	OldSize uint64 `json:"old_size"`
	NewSize uint64 `json:"new_size"`
	Hashes  []Hash `json:"hashes"`
}

// maxProofHashes bounds a proof: a tree of 2^63 leaves needs at most 2×63.
const maxProofHashes = 128

// ErrBadProof marks a proof that does not verify.
var ErrBadProof = errors.New("proof does not verify")

// VerifyInclusion checks offline that entry is in the log whose signed
// checkpoint is checkpoint, with only the verifier key and the proof: the
// checkpoint's signature and origin, that the proof is for the
// checkpoint's tree size, and that the proof leads from the entry's leaf
// hash to the checkpoint's root. It returns the verified checkpoint.
func VerifyInclusion(checkpoint []byte, vkey string, entry []byte, proof InclusionProof) (Checkpoint, error) {
	cp, err := OpenCheckpoint(checkpoint, vkey)
	if err != nil {
		return Checkpoint{}, err
	}
	if err := checkInclusion(cp, LeafHash(entry), proof); err != nil {
		return Checkpoint{}, err
	}
	return cp, nil
}

func checkInclusion(cp Checkpoint, leaf Hash, proof InclusionProof) error {
	if proof.TreeSize != cp.Size {
		return fmt.Errorf("%w: the proof is for a tree of %d entries, the checkpoint for %d", ErrBadProof, proof.TreeSize, cp.Size)
	}
	if proof.Index >= cp.Size {
		return fmt.Errorf("%w: entry %d is beyond the tree of %d entries", ErrBadProof, proof.Index, cp.Size)
	}
	if len(proof.Hashes) > maxProofHashes {
		return fmt.Errorf("%w: %d hashes", ErrBadProof, len(proof.Hashes))
	}
	if err := tlog.CheckRecord(toTlog(proof.Hashes), int64(cp.Size), tlog.Hash(cp.Root), int64(proof.Index), tlog.Hash(leaf)); err != nil {
		return fmt.Errorf("%w: entry %d in the tree of %d: %w", ErrBadProof, proof.Index, cp.Size, err)
	}
	return nil
}

// VerifyConsistency checks offline that the log of the signed checkpoint
// older is a prefix of the log of newer (both verified with vkey).
func VerifyConsistency(older, newer []byte, vkey string, proof ConsistencyProof) error {
	o, err := OpenCheckpoint(older, vkey)
	if err != nil {
		return fmt.Errorf("older checkpoint: %w", err)
	}
	n, err := OpenCheckpoint(newer, vkey)
	if err != nil {
		return fmt.Errorf("newer checkpoint: %w", err)
	}
	return checkConsistency(o, n, proof)
}

func checkConsistency(o, n Checkpoint, proof ConsistencyProof) error {
	if proof.OldSize != o.Size || proof.NewSize != n.Size {
		return fmt.Errorf("%w: the proof is from %d to %d entries, the checkpoints for %d and %d", ErrBadProof, proof.OldSize, proof.NewSize, o.Size, n.Size)
	}
	if o.Size > n.Size {
		return fmt.Errorf("%w: the older checkpoint (%d entries) is larger than the newer (%d)", ErrBadProof, o.Size, n.Size)
	}
	if len(proof.Hashes) > maxProofHashes {
		return fmt.Errorf("%w: %d hashes", ErrBadProof, len(proof.Hashes))
	}
	if o.Size == 0 {
		return nil // the empty tree is a prefix of every tree
	}
	if o.Size == n.Size {
		if o.Root != n.Root || len(proof.Hashes) != 0 {
			return fmt.Errorf("%w: two different roots for %d entries", ErrBadProof, o.Size)
		}
		return nil
	}
	if err := tlog.CheckTree(toTlog(proof.Hashes), int64(n.Size), tlog.Hash(n.Root), int64(o.Size), tlog.Hash(o.Root)); err != nil {
		return fmt.Errorf("%w: from %d to %d entries: %w", ErrBadProof, o.Size, n.Size, err)
	}
	return nil
}

func toTlog(hs []Hash) []tlog.Hash {
	out := make([]tlog.Hash, len(hs))
	for i, h := range hs {
		out[i] = tlog.Hash(h)
	}
	return out
}

func fromTlog(hs []tlog.Hash) []Hash {
	out := make([]Hash, len(hs))
	for i, h := range hs {
		out[i] = Hash(h)
	}
	return out
}
