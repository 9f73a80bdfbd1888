package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// DefaultOrigin is the origin line of a node's ledger unless the caller
// names another.
const DefaultOrigin = "agentcloud.local/ledger"

// Key signs the ledger's checkpoints: an Ed25519 signed-note key whose name
// is the log's origin. The caller keeps the private key (the daemon in its
// data dir); the public verifier key is what clients verify proofs with.
type Key struct {
	signer   note.Signer
	verifier note.Verifier
	vkey     string
}

// GenerateKey makes a new key for origin and returns it in the signed-note
// text forms: skey (keep secret; ParseKey reads it) and vkey (publish).
func GenerateKey(origin string) (skey, vkey string, err error) {
	if err := checkOrigin(origin); err != nil {
		return "", "", err
	}
	skey, vkey, err = note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return "", "", fmt.Errorf("generate ledger key: %w", err)
	}
	return skey, vkey, nil
}

// ParseKey reads a private key written by GenerateKey ("PRIVATE+KEY+...").
func ParseKey(skey string) (*Key, error) {
	signer, err := note.NewSigner(strings.TrimSpace(skey))
	if err != nil {
		return nil, fmt.Errorf("ledger key: %w", err)
	}
	// PRIVATE+KEY+<name>+<hash>+<base64 of 0x01 and the Ed25519 seed>;
	// the base64 may hold + itself.
	rest := strings.TrimSpace(skey)
	for range 4 {
		_, rest, _ = strings.Cut(rest, "+")
	}
	raw, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, fmt.Errorf("ledger key: not an Ed25519 signed-note key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(signer.Name(), pub)
	if err != nil {
		return nil, fmt.Errorf("ledger key: %w", err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("ledger key: %w", err)
	}
	if err := checkOrigin(signer.Name()); err != nil {
		return nil, err
	}
	return &Key{signer: signer, verifier: verifier, vkey: vkey}, nil
}

// Origin is the key's name, the first line of every checkpoint it signs.
func (k *Key) Origin() string { return k.signer.Name() }

// VerifierKey is the public key in signed-note text form, for clients.
func (k *Key) VerifierKey() string { return k.vkey }

// Verifier is the public key as a note verifier.
func (k *Key) Verifier() note.Verifier { return k.verifier }

// checkOrigin: an origin is a signed-note key name (printable, no spaces
// or +) and one checkpoint line.
func checkOrigin(origin string) error {
	if origin == "" || len(origin) > 256 || strings.ContainsAny(origin, "+ \n\t") {
		return fmt.Errorf("ledger origin %q: want a schema-less URL such as %s (no spaces or +, at most 256 bytes)", clip(origin), DefaultOrigin)
	}
	for i := 0; i < len(origin); i++ {
		if origin[i] < 0x21 || origin[i] > 0x7e {
			return fmt.Errorf("ledger origin %q: byte 0x%02X at %d is not printable ASCII", clip(origin), origin[i], i)
		}
	}
	return nil
}
