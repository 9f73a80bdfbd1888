package httpsig

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"

	"github.com/dunglas/httpsfv"
)

// AlgEd25519 is the RFC 9421 name of EdDSA over Curve25519.
const AlgEd25519 = "ed25519"

// SignParams are the signature parameters a signer sets. Zero values are
// left out.
type SignParams struct {
	Created, Expires int64
	Nonce, KeyID     string
	Tag              string
	// Alg adds alg="ed25519" when true.
	Alg bool
}

func (p SignParams) sf() *httpsfv.Params {
	out := httpsfv.NewParams()
	if p.Created != 0 {
		out.Add("created", p.Created)
	}
	if p.KeyID != "" {
		out.Add("keyid", p.KeyID)
	}
	if p.Alg {
		out.Add("alg", AlgEd25519)
	}
	if p.Expires != 0 {
		out.Add("expires", p.Expires)
	}
	if p.Nonce != "" {
		out.Add("nonce", p.Nonce)
	}
	if p.Tag != "" {
		out.Add("tag", p.Tag)
	}
	return out
}

// Sign signs m with key under label and returns the Signature-Input and
// Signature member values (without the "label=" prefix).
func Sign(m *Message, label string, components []Component, p SignParams, key ed25519.PrivateKey) (input, signature string, err error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", "", errors.New("sign: not an Ed25519 private key")
	}
	s := &Signature{Label: label, Components: components, params: p.sf()}
	base, err := Base(m, s)
	if err != nil {
		return "", "", fmt.Errorf("sign: %w", err)
	}
	if input, err = s.Params(); err != nil {
		return "", "", err
	}
	sig, err := httpsfv.Marshal(httpsfv.NewItem(ed25519.Sign(key, base)))
	if err != nil {
		return "", "", fmt.Errorf("sign: %w", err)
	}
	return input, sig, nil
}

// SignRequest signs r and adds the label's members to its Signature-Input
// and Signature fields.
func SignRequest(r *http.Request, label string, components []Component, p SignParams, key ed25519.PrivateKey) error {
	input, sig, err := Sign(FromRequest(r), label, components, p, key)
	if err != nil {
		return err
	}
	r.Header.Add("Signature-Input", label+"="+input)
	r.Header.Add("Signature", label+"="+sig)
	return nil
}

// Verify checks s over m with an Ed25519 public key. An alg parameter, if
// present, must be ed25519.
func Verify(m *Message, s *Signature, pub ed25519.PublicKey) error {
	if s.Alg != "" && s.Alg != AlgEd25519 {
		return fmt.Errorf("%w: algorithm %q is not supported (only %s)", ErrVerify, s.Alg, AlgEd25519)
	}
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: not an Ed25519 public key", ErrVerify)
	}
	base, err := Base(m, s)
	if err != nil {
		return err
	}
	if len(s.Value) != ed25519.SignatureSize || !ed25519.Verify(pub, base, s.Value) {
		return fmt.Errorf("%w: signature %q", ErrVerify, s.Label)
	}
	return nil
}
