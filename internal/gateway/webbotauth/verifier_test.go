package webbotauth

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/gateway/clock"
	"github.com/agentcloud/agentcloud/internal/gateway/httpsig"
)

// The Ed25519 test key of RFC 9421 Appendix B.1.4.
var (
	rfcSeed, _ = base64.RawURLEncoding.DecodeString("n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU")
	rfcPriv    = ed25519.NewKeyFromSeed(rfcSeed)
	rfcPub     = rfcPriv.Public().(ed25519.PublicKey)
)

func TestThumbprintOfRFCKey(t *testing.T) {
	// The keyid the Web Bot Auth test vectors give the RFC 9421 key.
	if got := Thumbprint(rfcPub); got != "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U" {
		t.Fatalf("thumbprint = %s", got)
	}
}

// dirServer is a key directory on a loopback TLS server. Every origin the
// fetcher is asked for is served by it.
type dirServer struct {
	srv     *httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	keys    []ed25519.PrivateKey // published
	prove   bool                 // add possession proofs
	status  int
	ctype   string
	cache   string
	extra   string // appended inside the key list (raw JSON)
	clock   clock.Clock
}

func newDirServer(t *testing.T, clk clock.Clock, keys ...ed25519.PrivateKey) *dirServer {
	d := &dirServer{keys: keys, prove: true, status: 200, ctype: DirectoryMediaType, cache: "max-age=600", clock: clk}
	d.srv = httptest.NewTLSServer(http.HandlerFunc(d.serve))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *dirServer) set(f func(d *dirServer)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

func (d *dirServer) serve(w http.ResponseWriter, r *http.Request) {
	d.fetches.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	if r.URL.Path != WellKnownPath {
		http.NotFound(w, r)
		return
	}
	var jwks []string
	for _, k := range d.keys {
		pub := k.Public().(ed25519.PublicKey)
		jwks = append(jwks, fmt.Sprintf(`{"kty":"OKP","crv":"Ed25519","kid":%q,"x":%q,"use":"sig"}`,
			Thumbprint(pub), base64.RawURLEncoding.EncodeToString(pub)))
	}
	if d.extra != "" {
		jwks = append(jwks, d.extra)
	}
	body := []byte(`{"keys":[` + strings.Join(jwks, ",") + `]}`)
	h := w.Header()
	h.Set("Content-Type", d.ctype)
	if d.cache != "" {
		h.Set("Cache-Control", d.cache)
	}
	h.Set("Content-Digest", httpsig.ContentDigest(body))
	if d.prove {
		now := d.clock.Now().Unix()
		req := &httpsig.Message{Method: "GET", Scheme: "https", Authority: r.Host, RawPath: r.URL.EscapedPath()}
		for i, k := range d.keys {
			in, sig, err := httpsig.Sign(httpsig.FromResponse(200, h, req), "p", []httpsig.Component{httpsig.C("@authority").WithReq(), httpsig.C("content-digest")},
				httpsig.SignParams{Created: now, Expires: now + 3600, KeyID: Thumbprint(k.Public().(ed25519.PublicKey)), Tag: ProofTag}, k)
			if err != nil {
				panic(err)
			}
			h.Add("Signature-Input", fmt.Sprintf("p%d=%s", i, in))
			h.Add("Signature", fmt.Sprintf("p%d=%s", i, sig))
		}
	}
	w.WriteHeader(d.status)
	_, _ = w.Write(body)
}

// fetcher dials the loopback directory server whatever the URL's host, as
// the egress proxy would reach the real signer.
func (d *dirServer) fetcher() Fetcher {
	addr := d.srv.Listener.Addr().String()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: d.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, ServerName: "example.com"},
	}
	c := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return fetchFunc(func(ctx context.Context, url string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", DirectoryMediaType)
		return c.Do(req)
	})
}

type fetchFunc func(ctx context.Context, url string) (*http.Response, error)

func (f fetchFunc) Fetch(ctx context.Context, url string) (*http.Response, error) { return f(ctx, url) }

type signOpts struct {
	label, member, origin string
	created, expires      int64
	nonce, keyid, tag     string
	comps                 []httpsig.Component
	legacy                bool
}

// signed builds a request to https://api.test/v1/x signed by key.
func signed(t testing.TB, key ed25519.PrivateKey, now time.Time, mod func(o *signOpts)) *http.Request {
	t.Helper()
	o := signOpts{label: "sig1", member: "sig1", origin: "https://signer.test",
		created: now.Unix(), expires: now.Unix() + 60, nonce: fmt.Sprintf("n-%d", nonceSeq.Add(1)),
		keyid: Thumbprint(key.Public().(ed25519.PublicKey)), tag: Tag}
	if mod != nil {
		mod(&o)
	}
	r := httptest.NewRequest("GET", "https://api.test/v1/x", nil)
	if o.legacy {
		r.Header.Set("Signature-Agent", fmt.Sprintf("%q", o.origin))
	} else {
		r.Header.Set("Signature-Agent", fmt.Sprintf("%s=%q", o.member, o.origin))
	}
	comps := o.comps
	if comps == nil {
		sa := httpsig.C("signature-agent").WithKey(o.member)
		if o.legacy {
			sa = httpsig.C("signature-agent")
		}
		comps = []httpsig.Component{httpsig.C("@authority"), httpsig.C("@method"), httpsig.C("@path"), sa}
	}
	if err := httpsig.SignRequest(r, o.label, comps, httpsig.SignParams{Created: o.created, Expires: o.expires, KeyID: o.keyid, Nonce: o.nonce, Tag: o.tag}, key); err != nil {
		t.Fatal(err)
	}
	return r
}

var nonceSeq atomic.Int64

var start = time.Unix(1_800_000_000, 0)

func newVerifier(t *testing.T, cfg Config, keys ...ed25519.PrivateKey) (*Verifier, *dirServer, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(start)
	d := newDirServer(t, clk, keys...)
	v, err := New(cfg, d.fetcher(), clk)
	if err != nil {
		t.Fatal(err)
	}
	return v, d, clk
}

func TestVerifiedSigner(t *testing.T) {
	v, d, clk := newVerifier(t, Config{}, rfcPriv)
	res := v.Verify(context.Background(), signed(t, rfcPriv, clk.Now(), nil))
	if res.Outcome != Verified || res.Signer != "https://signer.test"+WellKnownPath || res.Err != nil {
		t.Fatalf("got %+v", res)
	}
	legacy := v.Verify(context.Background(), signed(t, rfcPriv, clk.Now(), func(o *signOpts) { o.legacy = true }))
	if legacy.Outcome != Verified {
		t.Fatalf("legacy form: %+v", legacy)
	}
	if n := d.fetches.Load(); n != 1 {
		t.Fatalf("fetched %d times, want 1 (cached)", n)
	}
	// No signature, or only signatures of other profiles: nothing to say.
	plain := httptest.NewRequest("GET", "https://api.test/", nil)
	if res := v.Verify(context.Background(), plain); res.Outcome != NoSignature {
		t.Fatalf("plain: %+v", res)
	}
	other := signed(t, rfcPriv, clk.Now(), func(o *signOpts) { o.tag = "something-else" })
	if res := v.Verify(context.Background(), other); res.Outcome != NoSignature {
		t.Fatalf("other tag: %+v", res)
	}
}

// TestRFCVectorThroughVerifier runs the Web Bot Auth draft's Ed25519 test
// vector (signed with the RFC 9421 key, expires in 2124) through the whole
// verifier, its directory served and proven on loopback.
func TestRFCVectorThroughVerifier(t *testing.T) {
	clk := clock.NewFake(time.Unix(1735689600+30, 0))
	d := newDirServer(t, clk, rfcPriv)
	v, err := New(Config{MaxAge: time.Hour, MaxLifetime: 200 * 365 * 24 * time.Hour}, d.fetcher(), clk)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "https://example.com/", nil)
	r.Header.Set("Signature-Agent", `agent2="https://signature-agent.test"`)
	r.Header.Set("Signature-Input", `sig2=("@authority" "signature-agent";key="agent2");created=1735689600;keyid="poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";alg="ed25519";expires=4889289600;nonce="n9p433xm+NJ3ph3upfBIGmsuwHw387YV7Q/F+6BSpGCVjYCqQw6rznNA8PVVLySrAWsv0hQtFioQb6E1YsauiA==";tag="web-bot-auth"`)
	r.Header.Set("Signature", `sig2=:RdNFx5Bj6au3YgAMQL/RzmUlZE8QZLIaXGRpw985hWnwPfMxT228NMk6ehRS1PSl4e8PhbNZACSanGdhEwYCCg==:`)
	res := v.Verify(context.Background(), r)
	if res.Outcome != Verified || res.Signer != "https://signature-agent.test"+WellKnownPath {
		t.Fatalf("got %+v", res)
	}
	// The same vector again is a replay.
	if res := v.Verify(context.Background(), r); res.Outcome != Invalid || !strings.Contains(res.Err.Error(), "replay") {
		t.Fatalf("replayed vector: %+v", res)
	}
}

// TestRefusedSignatureClass: replayed, expired, future, too old, too long,
// wrong-key, unknown-key, badly covered and malformed signatures are all
// Invalid (refused), each for its own reason.
func TestRefusedSignatureClass(t *testing.T) {
	v, _, clk := newVerifier(t, Config{}, rfcPriv)
	_, other, _ := ed25519.GenerateKey(nil)
	now := clk.Now()
	replayed := signed(t, rfcPriv, now, nil)
	if res := v.Verify(context.Background(), replayed); res.Outcome != Verified {
		t.Fatalf("first use: %+v", res)
	}
	noNonce := signed(t, rfcPriv, now, func(o *signOpts) { o.nonce = "" })
	if res := v.Verify(context.Background(), noNonce); res.Outcome != Verified {
		t.Fatalf("first use without nonce: %+v", res)
	}
	sameNonce := signed(t, rfcPriv, now, func(o *signOpts) {
		o.nonce = "fixed"
		o.comps = []httpsig.Component{httpsig.C("@authority"), httpsig.C("signature-agent").WithKey("sig1")}
	})
	if res := v.Verify(context.Background(), sameNonce); res.Outcome != Verified {
		t.Fatalf("first use of nonce: %+v", res)
	}
	cases := []struct {
		name string
		req  *http.Request
		want string
	}{
		{"replayed", replayed, "replay"},
		{"replayed without nonce", noNonce, "replay"},
		{"same nonce, new signature", signed(t, rfcPriv, now, func(o *signOpts) { o.nonce = "fixed" }), "replay"},
		{"expired", signed(t, rfcPriv, now, func(o *signOpts) { o.created = now.Unix() - 200; o.expires = now.Unix() - 100 }), "expired"},
		{"created in the future", signed(t, rfcPriv, now, func(o *signOpts) { o.created = now.Unix() + 600; o.expires = now.Unix() + 700 }), "future"},
		{"too old", signed(t, rfcPriv, now, func(o *signOpts) { o.created = now.Unix() - 3600; o.expires = now.Unix() + 3600 }), "older"},
		{"lifetime too long", signed(t, rfcPriv, now, func(o *signOpts) { o.expires = now.Unix() + 48*3600 }), "lifetime"},
		{"expires before created", signed(t, rfcPriv, now, func(o *signOpts) { o.expires = now.Unix() - 1 }), "not after"},
		{"wrong key", signed(t, other, now, func(o *signOpts) { o.keyid = Thumbprint(rfcPub) }), "does not verify"},
		{"unknown key", signed(t, other, now, nil), "no key"},
		{"authority not covered", signed(t, rfcPriv, now, func(o *signOpts) {
			o.comps = []httpsig.Component{httpsig.C("@method"), httpsig.C("signature-agent").WithKey("sig1")}
		}), "@authority"},
		{"signature-agent not covered", signed(t, rfcPriv, now, func(o *signOpts) { o.comps = []httpsig.Component{httpsig.C("@authority")} }), "Signature-Agent"},
		{"no created", signed(t, rfcPriv, now, func(o *signOpts) { o.created = 0 }), "created"},
		{"http signer", signed(t, rfcPriv, now, func(o *signOpts) { o.origin = "http://signer.test" }), "not https"},
		{"signer with path", signed(t, rfcPriv, now, func(o *signOpts) { o.origin = "https://signer.test/keys" }), "not an origin"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := v.Verify(context.Background(), tc.req)
			if res.Outcome != Invalid || res.Err == nil || !strings.Contains(res.Err.Error(), tc.want) {
				t.Fatalf("got %v %v, want invalid mentioning %q", res.Outcome, res.Err, tc.want)
			}
		})
	}
	// A signature tampered after signing (another path).
	r := signed(t, rfcPriv, now, nil)
	r.URL.Path = "/v1/admin"
	if res := v.Verify(context.Background(), r); res.Outcome != Invalid {
		t.Fatalf("tampered path: %+v", res)
	}
	// Malformed fields are Invalid with ErrMalformed.
	bad := httptest.NewRequest("GET", "https://api.test/", nil)
	bad.Header.Set("Signature-Input", `sig1=("@authority"`)
	bad.Header.Set("Signature", `sig1=:AAAA:`)
	if res := v.Verify(context.Background(), bad); res.Outcome != Invalid || !errors.Is(res.Err, ErrMalformed) {
		t.Fatalf("malformed: %+v", res)
	}
}

// TestReplayRaceClass: the same signed request sent by two clients at once
// is accepted exactly once.
func TestReplayRaceClass(t *testing.T) {
	v, _, clk := newVerifier(t, Config{}, rfcPriv)
	// Warm the directory so the race is on the replay memory.
	v.Verify(context.Background(), signed(t, rfcPriv, clk.Now(), nil))
	for round := 0; round < 20; round++ {
		r := signed(t, rfcPriv, clk.Now(), nil)
		var ok atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if v.Verify(context.Background(), r.Clone(context.Background())).Outcome == Verified {
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 {
			t.Fatalf("round %d: %d verifications of one signature", round, ok.Load())
		}
	}
}

// TestDirectoryCacheHonoursValidity: the directory is fetched once per its
// max-age; a key removed from it stops verifying after the next fetch; a
// failing refresh keeps the old keys; a failing first fetch is remembered.
func TestDirectoryCacheHonoursValidity(t *testing.T) {
	v, d, clk := newVerifier(t, Config{}, rfcPriv)
	ctx := context.Background()
	verify := func() Result { return v.Verify(ctx, signed(t, rfcPriv, clk.Now(), nil)) }
	if res := verify(); res.Outcome != Verified {
		t.Fatal(res)
	}
	clk.Advance(590 * time.Second)
	if res := verify(); res.Outcome != Verified || d.fetches.Load() != 1 {
		t.Fatalf("within max-age: %+v, %d fetches", res, d.fetches.Load())
	}
	clk.Advance(20 * time.Second) // past max-age=600
	if res := verify(); res.Outcome != Verified || d.fetches.Load() != 2 {
		t.Fatalf("after max-age: %+v, %d fetches", res, d.fetches.Load())
	}
	// The directory starts failing: the cached keys stay in use.
	d.set(func(d *dirServer) { d.status = 500 })
	clk.Advance(11 * time.Minute)
	if res := verify(); res.Outcome != Verified || d.fetches.Load() != 3 {
		t.Fatalf("failed refresh: %+v, %d fetches", res, d.fetches.Load())
	}
	// Within the negative TTL no new fetch happens.
	clk.Advance(10 * time.Second)
	if res := verify(); res.Outcome != Verified || d.fetches.Load() != 3 {
		t.Fatalf("negative cache: %+v, %d fetches", res, d.fetches.Load())
	}
	// The key is removed (rotation): after the next successful fetch it is refused.
	_, newKey, _ := ed25519.GenerateKey(nil)
	d.set(func(d *dirServer) { d.status = 200; d.keys = []ed25519.PrivateKey{newKey} })
	clk.Advance(2 * time.Minute)
	if res := verify(); res.Outcome != Invalid {
		t.Fatalf("removed key: %+v", res)
	}
	if res := v.Verify(ctx, signed(t, newKey, clk.Now(), nil)); res.Outcome != Verified {
		t.Fatalf("new key: %+v", res)
	}
	// A signer whose directory never worked is unverified, and asked again
	// only after the negative TTL.
	v2, d2, clk2 := newVerifier(t, Config{}, rfcPriv)
	d2.set(func(d *dirServer) { d.status = 404 })
	for i := 0; i < 3; i++ {
		if res := v2.Verify(ctx, signed(t, rfcPriv, clk2.Now(), nil)); res.Outcome != Unverified {
			t.Fatalf("missing directory: %+v", res)
		}
	}
	if d2.fetches.Load() != 1 {
		t.Fatalf("missing directory fetched %d times", d2.fetches.Load())
	}
	clk2.Advance(2 * time.Minute)
	v2.Verify(ctx, signed(t, rfcPriv, clk2.Now(), nil))
	if d2.fetches.Load() != 2 {
		t.Fatalf("after negative TTL: %d fetches", d2.fetches.Load())
	}
}

// TestDirectoryRefusalClass: directories that break a discovery rule leave
// the request unverified (not attributed), never verified.
func TestDirectoryRefusalClass(t *testing.T) {
	manyKeys := strings.TrimSuffix(strings.Repeat(`{"kty":"EC"},`, 40), ",")
	cases := []struct {
		name string
		mod  func(d *dirServer)
		cfg  Config
	}{
		{"redirect", func(d *dirServer) { d.status = 302 }, Config{}},
		{"server error", func(d *dirServer) { d.status = 503 }, Config{}},
		{"wrong media type", func(d *dirServer) { d.ctype = "text/html" }, Config{}},
		{"no possession proof", func(d *dirServer) { d.prove = false }, Config{}},
		{"too many keys", func(d *dirServer) { d.extra = manyKeys }, Config{}},
		{"too large", func(d *dirServer) { d.extra = `{"kty":"x","pad":"` + strings.Repeat("a", 70<<10) + `"}` }, Config{}},
		{"not JSON", func(d *dirServer) { d.extra = `{` }, Config{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, d, clk := newVerifier(t, tc.cfg, rfcPriv)
			d.set(tc.mod)
			res := v.Verify(context.Background(), signed(t, rfcPriv, clk.Now(), nil))
			if res.Outcome != Unverified || res.Signer != "" {
				t.Fatalf("got %+v", res)
			}
		})
	}
	// Without the proof requirement, an unproven directory is usable.
	v, d, clk := newVerifier(t, Config{}, rfcPriv)
	v.cfg.AllowUnprovenKeys = true
	d.set(func(d *dirServer) { d.prove = false })
	if res := v.Verify(context.Background(), signed(t, rfcPriv, clk.Now(), nil)); res.Outcome != Verified {
		t.Fatalf("proof not required: %+v", res)
	}
}

// TestFetchExhaustionClass: requests naming many different signers cannot
// make the verifier fetch more than its budget.
func TestFetchExhaustionClass(t *testing.T) {
	v, d, clk := newVerifier(t, Config{FetchesPerMinute: 5}, rfcPriv)
	for i := 0; i < 50; i++ {
		r := signed(t, rfcPriv, clk.Now(), func(o *signOpts) { o.origin = fmt.Sprintf("https://s%d.test", i) })
		v.Verify(context.Background(), r)
	}
	if n := d.fetches.Load(); n > 5 {
		t.Fatalf("%d fetches for 50 unknown signers; budget 5", n)
	}
}

func TestReplayMemoryBounded(t *testing.T) {
	v, _, clk := newVerifier(t, Config{ReplayEntries: 50, ReplayPerSigner: 10}, rfcPriv)
	var last Result
	for i := 0; i < 20; i++ {
		last = v.Verify(context.Background(), signed(t, rfcPriv, clk.Now(), nil))
	}
	if last.Outcome != Unverified || v.replay.len() != 10 {
		t.Fatalf("past the per-signer memory: %+v, %d remembered", last, v.replay.len())
	}
	// Entries expire with their signatures.
	clk.Advance(10 * time.Minute)
	if res := v.Verify(context.Background(), signed(t, rfcPriv, clk.Now(), nil)); res.Outcome != Verified || v.replay.len() != 1 {
		t.Fatalf("after expiry: %+v, %d remembered", res, v.replay.len())
	}
}

func TestFreshness(t *testing.T) {
	now := time.Unix(1000, 0)
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	cases := []struct {
		h    http.Header
		want time.Duration
	}{
		{h(), time.Hour},
		{h("Cache-Control", "public, max-age=120"), 2 * time.Minute},
		{h("Cache-Control", "max-age=5"), time.Minute},
		{h("Cache-Control", "max-age=99999999"), 24 * time.Hour},
		{h("Cache-Control", "no-store"), time.Minute},
		{h("Expires", now.Add(3*time.Hour).UTC().Format(http.TimeFormat), "Date", now.UTC().Format(http.TimeFormat)), 3 * time.Hour},
		{h("Cache-Control", "max-age=junk"), time.Hour},
	}
	for _, tc := range cases {
		if got := freshness(tc.h, now, time.Hour, time.Minute, 24*time.Hour); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.h, got, tc.want)
		}
	}
}

func TestParseDirectorySkipsWhatItCannotUse(t *testing.T) {
	pub := rfcPub
	x := base64.RawURLEncoding.EncodeToString(pub)
	body, _ := json.Marshal(map[string]any{"keys": []map[string]any{
		{"kty": "RSA", "n": "x", "e": "AQAB"},
		{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "not-the-thumbprint"},
		{"kty": "OKP", "crv": "Ed25519", "x": x, "use": "enc"},
		{"kty": "OKP", "crv": "Ed25519", "x": x, "nbf": 10, "exp": 20},
	}})
	keys, err := ParseDirectory(body, 8)
	if err != nil || len(keys) != 1 || keys[0].Expires.Unix() != 20 || keys[0].NotBefore.Unix() != 10 {
		t.Fatalf("keys %+v, %v", keys, err)
	}
	for _, bad := range []string{`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"short"}]}`, `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + x + `","exp":"soon"}]}`, `[]`} {
		if _, err := ParseDirectory([]byte(bad), 8); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func FuzzParseDirectory(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U","x":"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs","use":"sig"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs","nbf":1e300}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		keys, err := ParseDirectory(body, 32)
		if err != nil {
			return
		}
		for _, k := range keys {
			if len(k.Public) != ed25519.PublicKeySize || k.Thumbprint != Thumbprint(k.Public) {
				t.Fatalf("bad key %+v", k)
			}
		}
	})
}

func FuzzSignatureAgent(f *testing.F) {
	for _, s := range []string{`sig1="https://signer.test"`, `"https://signer.test"`, `a="https://x.test:8443/";type=directory`,
		`a="https://x.test/jwks";type=jwks_uri`, `a="https://[::1]:443"`, `a=("https://x")`, `a=?1`} {
		f.Add(s, "sig1")
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, field, key string) {
		u, err := agentMember([]string{field}, key)
		if err != nil {
			return
		}
		if !strings.HasPrefix(u, "https://") || !strings.HasSuffix(u, WellKnownPath) {
			t.Fatalf("%q -> %q", field, u)
		}
		// The identifier is already normalized.
		origin := strings.TrimSuffix(u, WellKnownPath)
		if again, err := DirectoryURL(origin); err != nil || again != u {
			t.Fatalf("%q not stable: %q %v", u, again, err)
		}
	})
}

func FuzzFreshness(f *testing.F) {
	for _, s := range []string{"max-age=600", "no-store", `max-age="10"`, "s-maxage=5, max-age=1", "max-age=-1", "max-age=99999999999999999999", ",,,=", ""} {
		f.Add(s, "Tue, 20 Apr 2021 02:07:55 GMT", "Tue, 20 Apr 2021 01:07:55 GMT")
	}
	f.Fuzz(func(t *testing.T, cc, expires, date string) {
		h := http.Header{}
		h.Set("Cache-Control", cc)
		h.Set("Expires", expires)
		h.Set("Date", date)
		if got := freshness(h, time.Unix(1e9, 0), time.Hour, time.Minute, 24*time.Hour); got < time.Minute || got > 24*time.Hour {
			t.Fatalf("freshness %v out of [1m, 24h]", got)
		}
	})
}
