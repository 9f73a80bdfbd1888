package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentcloud/agentcloud/api"
)

// HashSize is the size of a tree hash in bytes.
const HashSize = tlog.HashSize

// Hash is a SHA-256 Merkle tree hash: a leaf hash (RFC 6962: SHA-256 of 0x00
// and the entry bytes) or an interior node. Its text form is 64 lowercase
// hex digits.
type Hash [HashSize]byte

// LeafHash is the RFC 6962 leaf hash of an entry's bytes.
func LeafHash(entry []byte) Hash { return Hash(tlog.RecordHash(entry)) }

// String is the hash in lowercase hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText implements encoding.TextMarshaler.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Hash) UnmarshalText(b []byte) error {
	v, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// ParseHash parses 64 hex digits.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*HashSize {
		return h, fmt.Errorf("hash %q: want %d hex digits, got %d characters", clip(s), 2*HashSize, len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("hash %q: not hex", clip(s))
	}
	return h, nil
}

// emptyRoot is the RFC 6962 hash of the empty tree: SHA-256 of nothing.
var emptyRoot = Hash(sha256.Sum256(nil))

// nodeHash is the RFC 6962 interior node hash.
func nodeHash(left, right Hash) Hash { return Hash(tlog.NodeHash(tlog.Hash(left), tlog.Hash(right))) }

// Ref names an entry: its index in the log and its leaf hash. The hash is
// what names it; the index says where to find it, and a reader checks that
// the entry there has that hash.
type Ref struct {
	Index uint64 `json:"index"`
	Hash  Hash   `json:"hash"`
}

func (r Ref) String() string { return fmt.Sprintf("%d:%s", r.Index, r.Hash) }

// Receipt is what Append answers once the entry is durable: where it is in
// the log and its leaf hash (a Ref to give as a parent of later entries).
type Receipt = Ref

// Digest is a content digest, "sha256:" and 64 lowercase hex digits.
type Digest string

// DigestOf is the sha256 digest of data.
func DigestOf(data []byte) Digest {
	s := sha256.Sum256(data)
	return Digest("sha256:" + hex.EncodeToString(s[:]))
}

// check validates d as the named field.
func (d Digest) check(field string) error {
	s := string(d)
	rest, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(rest) != 64 {
		return fieldErr(field, "%q is not a digest: want sha256: and 64 lowercase hex digits", clip(s))
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fieldErr(field, "%q is not a digest: want sha256: and 64 lowercase hex digits", clip(s))
		}
	}
	return nil
}

// fieldErr is a 422 validation problem about one field of an entry.
func fieldErr(field, format string, args ...any) error {
	return api.FieldErrorf(api.KindValidation, field, field+": "+format, args...)
}

// clip shortens untrusted text for error messages.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
