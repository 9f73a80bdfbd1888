package api

import "encoding/json"

// LedgerCheckpointContentType is the media type of a signed checkpoint
// (C2SP tlog-checkpoint: origin, size and base64 root hash lines, then
// signature lines).
const LedgerCheckpointContentType = "text/plain; charset=utf-8"

// LedgerRecord is one ledger entry as served. Raw holds the exact bytes
// the leaf hash is over (verify proofs with these); Entry is the same JSON
// for reading.
type LedgerRecord struct {
	Index uint64          `json:"index"`
	Hash  string          `json:"hash"` // leaf hash, 64 hex digits
	Raw   []byte          `json:"raw"`  // base64 in JSON
	Entry json.RawMessage `json:"entry"`
}

// LedgerInclusionProof proves that entry Index is in the tree of TreeSize
// entries; Checkpoint is the signed checkpoint of that tree it was made
// against. Hashes are 64 hex digits each.
type LedgerInclusionProof struct {
	Index      uint64   `json:"index"`
	TreeSize   uint64   `json:"tree_size"`
	Hashes     []string `json:"hashes"`
	Checkpoint string   `json:"checkpoint,omitempty"`
}

// LedgerConsistencyProof proves that the tree of OldSize entries is a
// prefix of the tree of NewSize entries.
type LedgerConsistencyProof struct {
	OldSize uint64   `json:"old_size"`
	NewSize uint64   `json:"new_size"`
	Hashes  []string `json:"hashes"`
}

// LedgerTrail is an entry and everything it follows from, breadth first.
type LedgerTrail struct {
	Records   []LedgerRecord `json:"records"`
	Truncated bool           `json:"truncated,omitempty"`
}

// LedgerVerifyReport is the result of re-deriving the ledger's tree and
// checking every stored tile and checkpoint. OK is false when something
// does not match; Failure then names the first bad entry.
type LedgerVerifyReport struct {
	OK          bool                 `json:"ok"`
	Entries     uint64               `json:"entries"`
	Records     uint64               `json:"records"`
	Tiles       uint64               `json:"tiles"`
	Checkpoints int                  `json:"checkpoints"`
	Root        string               `json:"root,omitempty"`
	Failure     *LedgerVerifyFailure `json:"failure,omitempty"`
}

// LedgerVerifyFailure names the first bad entry Verify found.
type LedgerVerifyFailure struct {
	Index  uint64 `json:"index"`
	Type   string `json:"type,omitempty"`
	Seq    uint64 `json:"seq,omitempty"` // the log record at fault, if any
	Reason string `json:"reason"`
}
