package webbotauth

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/internal/gateway/httpsig"
)

// DirectoryMediaType is the media type a directory is served with.
const DirectoryMediaType = "application/http-message-signatures-directory+json"

// ProofTag is the tag of a directory's possession proof signatures.
const ProofTag = "http-message-signatures-directory"

// ErrDirectory marks a directory that could not be used (discovery
// failure): unreachable, not 200, too large, malformed, or without proof.
var ErrDirectory = errors.New("key directory")

// Key is one usable Ed25519 key of a directory.
type Key struct {
	Thumbprint string
	Public     ed25519.PublicKey
	// NotBefore and Expires bound the key's use (zero when absent).
	NotBefore, Expires time.Time
	// Proven: the directory response carried a valid possession proof
	// made with this key.
	Proven bool
}

type jwk struct {
	Kty string          `json:"kty"`
	Crv string          `json:"crv"`
	X   string          `json:"x"`
	Kid string          `json:"kid"`
	Use string          `json:"use"`
	Nbf json.RawMessage `json:"nbf"`
	Exp json.RawMessage `json:"exp"`
}

// Thumbprint is the RFC 7638 JWK SHA-256 thumbprint of an Ed25519 public
// key (RFC 8037 appendix A.3), base64url without padding: the keyid a Web
// Bot Auth signature names.
func Thumbprint(pub ed25519.PublicKey) string {
	x := base64.RawURLEncoding.EncodeToString(pub)
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ParseDirectory reads a JWKS directory body. Keys that are not Ed25519 or
// not for signing, or whose kid is not their thumbprint, are skipped; more
// than maxKeys entries, bad JSON or a bad Ed25519 key is an error.
func ParseDirectory(body []byte, maxKeys int) ([]Key, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("%w: not a JSON key set: %w", ErrDirectory, err)
	}
	if len(doc.Keys) > maxKeys {
		return nil, fmt.Errorf("%w: %d keys; at most %d are read", ErrDirectory, len(doc.Keys), maxKeys)
	}
	var out []Key
	for i, raw := range doc.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			return nil, fmt.Errorf("%w: key %d: %w", ErrDirectory, i, err)
		}
		if k.Kty != "OKP" || k.Crv != "Ed25519" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		pub, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: key %d: x is not a base64url Ed25519 public key", ErrDirectory, i)
		}
		key := Key{Thumbprint: Thumbprint(pub), Public: pub}
		if k.Kid != "" && k.Kid != key.Thumbprint {
			continue // the draft: kid must be the thumbprint; do not trust a label
		}
		if key.NotBefore, err = unixField(k.Nbf); err != nil {
			return nil, fmt.Errorf("%w: key %d: nbf: %w", ErrDirectory, i, err)
		}
		if key.Expires, err = unixField(k.Exp); err != nil {
			return nil, fmt.Errorf("%w: key %d: exp: %w", ErrDirectory, i, err)
		}
		out = append(out, key)
	}
	return out, nil
}

func unixField(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || f < 0 || f > 1e11 {
		return time.Time{}, errors.New("want seconds since the Unix epoch")
	}
	return time.Unix(int64(f), 0), nil
}

// checkResponse applies the discovery rules to a fetched response: 200
// only (no redirects), the directory media type (or plain JSON), and a body
// within max bytes.
func checkResponse(resp *http.Response, body []byte, max int) error {
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: status %d (only 200 is accepted, redirects are not followed)", ErrDirectory, resp.StatusCode)
	}
	if len(body) > max {
		return fmt.Errorf("%w: body is larger than %d bytes", ErrDirectory, max)
	}
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || (mt != DirectoryMediaType && mt != "application/json" && mt != "application/jwk-set+json") {
		return fmt.Errorf("%w: content type %q is not %s", ErrDirectory, resp.Header.Get("Content-Type"), DirectoryMediaType)
	}
	return nil
}

// verifyProofs marks the keys whose possession proof on the directory
// response verifies, and returns the earliest proof expiry (zero if none).
// dirURL is the URL that was fetched; its authority is what the proofs
// must cover.
func verifyProofs(keys []Key, resp *http.Response, body []byte, dirURL string, now time.Time, skew time.Duration) (time.Time, error) {
	sigs, err := httpsig.Parse(resp.Header)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: proof: %w", ErrDirectory, err)
	}
	u, err := url.Parse(dirURL)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %w", ErrDirectory, err)
	}
	req := &httpsig.Message{Method: http.MethodGet, Scheme: "https", Authority: u.Host, RawPath: u.EscapedPath()}
	msg := httpsig.FromResponse(resp.StatusCode, resp.Header, req)
	var earliest time.Time
	digestOK := false
	for _, s := range sigs {
		if s.Tag != ProofTag {
			continue
		}
		if !s.HasCreated || !s.HasExpires || !s.Covers("content-digest", "") || !coversReqAuthority(s) {
			continue
		}
		created, expires := time.Unix(s.Created, 0), time.Unix(s.Expires, 0)
		if created.After(now.Add(skew)) || !expires.After(now) {
			continue // future-dated or expired proofs prove nothing
		}
		i := keyIndex(keys, s.KeyID)
		if i < 0 {
			continue
		}
		if !digestOK {
			if err := httpsig.VerifyContentDigest(resp.Header, body); err != nil {
				return time.Time{}, fmt.Errorf("%w: proof: %w", ErrDirectory, err)
			}
			digestOK = true
		}
		if httpsig.Verify(msg, s, keys[i].Public) != nil {
			continue
		}
		keys[i].Proven = true
		if earliest.IsZero() || expires.Before(earliest) {
			earliest = expires
		}
	}
	return earliest, nil
}

func coversReqAuthority(s *httpsig.Signature) bool {
	for _, c := range s.Components {
		if c.Name == "@authority" && c.Req {
			return true
		}
	}
	return false
}

func keyIndex(keys []Key, thumb string) int {
	for i := range keys {
		if keys[i].Thumbprint == thumb {
			return i
		}
	}
	return -1
}

// freshness is how long a directory response may be used: Cache-Control
// max-age (or s-maxage), else Expires minus Date, else def; no-store or
// no-cache give min. The result is clamped to [min, max].
func freshness(h http.Header, now time.Time, def, min, max time.Duration) time.Duration {
	ttl, found := def, false
	for _, line := range h.Values("Cache-Control") {
		for _, dir := range strings.Split(line, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(dir), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				return min
			case "max-age", "s-maxage":
				n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
				if err == nil && n >= 0 && !found {
					ttl, found = time.Duration(min64(n, 1<<32))*time.Second, true
				}
			}
		}
	}
	if !found {
		if exp, err := http.ParseTime(h.Get("Expires")); err == nil {
			base := now
			if d, err := http.ParseTime(h.Get("Date")); err == nil {
				base = d
			}
			ttl = exp.Sub(base)
		}
	}
	if ttl < min {
		return min
	}
	if ttl > max {
		return max
	}
	return ttl
}

func min64(a, b int64) int64 {
	if a < b {
		return a
	}
	return b
}
