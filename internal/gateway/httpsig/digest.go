package httpsig

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"

	"github.com/dunglas/httpsfv"
)

// ErrDigest marks a Content-Digest that is absent, unsupported or wrong.
var ErrDigest = errors.New("content digest")

// ContentDigest is the RFC 9530 Content-Digest value of body with sha-256.
func ContentDigest(body []byte) string {
	sum := sha256.Sum256(body)
	s, _ := httpsfv.Marshal(httpsfv.NewItem(sum[:]))
	return "sha-256=" + s
}

// VerifyContentDigest checks the Content-Digest field of h against body.
// At least one sha-256 or sha-512 digest must be present, and every one of
// those present must match; other algorithms are ignored.
func VerifyContentDigest(h http.Header, body []byte) error {
	lines := h.Values("Content-Digest")
	if len(lines) == 0 {
		return fmt.Errorf("%w: Content-Digest is absent", ErrDigest)
	}
	d, err := httpsfv.UnmarshalDictionary(lines)
	if err != nil {
		return fmt.Errorf("%w: Content-Digest is not a structured dictionary: %w", ErrDigest, err)
	}
	checked := 0
	for _, alg := range d.Names() {
		var want []byte
		switch alg {
		case "sha-256":
			s := sha256.Sum256(body)
			want = s[:]
		case "sha-512":
			s := sha512.Sum512(body)
			want = s[:]
		default:
			continue
		}
		m, _ := d.Get(alg)
		it, ok := m.(httpsfv.Item)
		got, ok2 := it.Value.([]byte)
		if !ok || !ok2 || subtle.ConstantTimeCompare(got, want) != 1 {
			return fmt.Errorf("%w: %s does not match the content", ErrDigest, alg)
		}
		checked++
	}
	if checked == 0 {
		return fmt.Errorf("%w: no sha-256 or sha-512 digest", ErrDigest)
	}
	return nil
}
