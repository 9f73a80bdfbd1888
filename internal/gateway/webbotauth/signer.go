package webbotauth

// Outbound Web Bot Auth (signer.go): signing requests as one signer and
// serving that signer's key directory.

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/internal/gateway/clock"
	"github.com/agentcloud/agentcloud/internal/gateway/httpsig"
)

// SignatureLifetime is how long an outbound signature is valid.
const SignatureLifetime = time.Minute

// signerLabel labels the signer's signature and its Signature-Agent member.
const signerLabel = "agentcloud"

// Signer signs outbound requests as one Web Bot Auth signer: an Ed25519
// key whose directory is served at Origin's well-known path (ServeHTTP).
// It is safe for concurrent use.
type Signer struct {
	key    ed25519.PrivateKey
	origin string // as given; the Signature-Agent value
	dirURL string // the signer's identifier
	kid    string
	clock  clock.Clock
}

// NewSigner returns a signer for key whose directory is served at origin
// (an https origin). clk nil is the wall clock.
func NewSigner(key ed25519.PrivateKey, origin string, clk clock.Clock) (*Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("web bot auth signer: key: not an Ed25519 private key")
	}
	dir, err := DirectoryURL(origin)
	if err != nil {
		return nil, fmt.Errorf("web bot auth signer: origin: %w", err)
	}
	if clk == nil {
		clk = clock.Real()
	}
	pub := key.Public().(ed25519.PublicKey)
	return &Signer{key: key, origin: strings.TrimSuffix(origin, "/"), dirURL: dir, kid: Thumbprint(pub), clock: clk}, nil
}

// KeyID is the key's JWK thumbprint, the keyid of its signatures.
func (s *Signer) KeyID() string { return s.kid }

// DirectoryURL is the signer's identifier: its directory's URL.
func (s *Signer) DirectoryURL() string { return s.dirURL }

// Sign signs r as this signer (tag web-bot-auth; created, expires a
// minute later, a random nonce, the key's thumbprint as keyid), covering
// @authority, @method, @path and its own Signature-Agent member. Any
// Signature, Signature-Input and Signature-Agent fields r already has are
// removed first: what leaves through the signer is signed by it alone, so
// an agent cannot present another signer's signature alongside.
func (s *Signer) Sign(r *http.Request) error {
	var n [16]byte
	if _, err := rand.Read(n[:]); err != nil {
		return fmt.Errorf("web bot auth sign: nonce: %w", err)
	}
	for _, h := range []string{"Signature", "Signature-Input", "Signature-Agent"} {
		r.Header.Del(h)
	}
	r.Header.Set("Signature-Agent", signerLabel+"="+strconv.Quote(s.origin))
	now := s.clock.Now().Unix()
	comps := []httpsig.Component{httpsig.C("@authority"), httpsig.C("@method"), httpsig.C("@path"), httpsig.C("signature-agent").WithKey(signerLabel)}
	err := httpsig.SignRequest(r, signerLabel, comps, httpsig.SignParams{
		Created: now, Expires: now + int64(SignatureLifetime/time.Second),
		Nonce: base64.RawURLEncoding.EncodeToString(n[:]), KeyID: s.kid, Tag: Tag,
	}, s.key)
	if err != nil {
		return fmt.Errorf("web bot auth sign: %w", err)
	}
	return nil
}

// directoryMaxAge is how long a fetched directory may be cached.
const directoryMaxAge = time.Hour

// ServeHTTP serves the signer's key directory at WellKnownPath (GET and
// HEAD), with a possession proof over the request's authority and the
// body's Content-Digest, valid for a day.
func (s *Signer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	serveDirectory(w, r, []ed25519.PrivateKey{s.key}, directoryMaxAge, s.clock.Now())
}

// serveDirectory serves a key directory of keys (GET and HEAD at
// WellKnownPath), each key proving possession with its own signature
// (labels proof, proof1, ...) over the request's authority and the body's
// Content-Digest, valid for a day; caches may keep it for maxAge.
func serveDirectory(w http.ResponseWriter, r *http.Request, keys []ed25519.PrivateKey, maxAge time.Duration, at time.Time) {
	if r.URL.Path != WellKnownPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	jwks := make([]map[string]string, 0, len(keys))
	for _, k := range keys {
		pub := k.Public().(ed25519.PublicKey)
		jwks = append(jwks, map[string]string{"kty": "OKP", "crv": "Ed25519", "kid": Thumbprint(pub),
			"x": base64.RawURLEncoding.EncodeToString(pub), "use": "sig"})
	}
	body, err := json.Marshal(map[string][]map[string]string{"keys": jwks})
	if err != nil {
		http.Error(w, "directory", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", DirectoryMediaType)
	h.Set("Cache-Control", "max-age="+strconv.Itoa(int(maxAge/time.Second)))
	h.Set("Content-Digest", httpsig.ContentDigest(body))
	now := at.Unix()
	req := &httpsig.Message{Method: http.MethodGet, Scheme: "https", Authority: r.Host, RawPath: r.URL.EscapedPath()}
	msg := httpsig.FromResponse(http.StatusOK, h, req)
	var ins, sigs []string
	for i, k := range keys {
		label := "proof"
		if i > 0 {
			label += strconv.Itoa(i)
		}
		in, sig, err := httpsig.Sign(msg, label,
			[]httpsig.Component{httpsig.C("@authority").WithReq(), httpsig.C("content-digest")},
			httpsig.SignParams{Created: now, Expires: now + 86400, KeyID: Thumbprint(k.Public().(ed25519.PublicKey)), Tag: ProofTag}, k)
		if err != nil {
			http.Error(w, "directory", http.StatusInternalServerError)
			return
		}
		ins, sigs = append(ins, label+"="+in), append(sigs, label+"="+sig)
	}
	h.Set("Signature-Input", strings.Join(ins, ", "))
	h.Set("Signature", strings.Join(sigs, ", "))
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}
