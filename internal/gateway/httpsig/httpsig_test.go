package httpsig

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The Ed25519 test key of RFC 9421 Appendix B.1.4 (JWK "d" and "x").
var (
	rfcSeed, _ = base64.RawURLEncoding.DecodeString("n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU")
	rfcX, _    = base64.RawURLEncoding.DecodeString("JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs")
	rfcPriv    = ed25519.NewKeyFromSeed(rfcSeed)
	rfcPub     = ed25519.PublicKey(rfcX)
)

// rfcRequest is the test request of RFC 9421 Appendix B.2.
func rfcRequest() *http.Request {
	r := httptest.NewRequest("POST", "http://example.com/foo?param=Value&Pet=dog", strings.NewReader(`{"hello": "world"}`))
	r.Host = "example.com"
	r.Header.Set("Date", "Tue, 20 Apr 2021 02:07:55 GMT")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Content-Digest", "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:")
	r.Header.Set("Content-Length", "18")
	return r
}

func TestKeyMatchesRFC(t *testing.T) {
	if !rfcPriv.Public().(ed25519.PublicKey).Equal(rfcPub) {
		t.Fatal("the RFC seed does not give the RFC public key")
	}
}

// TestRFC9421B26 is Appendix B.2.6: signing the test request with Ed25519.
func TestRFC9421B26(t *testing.T) {
	const (
		input = `sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`
		sig   = `sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:`
		base  = "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\"@method\": POST\n\"@path\": /foo\n\"@authority\": example.com\n" +
			"\"content-type\": application/json\n\"content-length\": 18\n" +
			`"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`
	)
	r := rfcRequest()
	r.Header.Set("Signature-Input", input)
	r.Header.Set("Signature", sig)
	sigs, err := Parse(r.Header)
	if err != nil || len(sigs) != 1 {
		t.Fatalf("Parse: %v %v", sigs, err)
	}
	s := sigs[0]
	if s.Label != "sig-b26" || s.KeyID != "test-key-ed25519" || s.Created != 1618884473 || s.HasExpires {
		t.Fatalf("parsed %+v", s)
	}
	got, err := Base(FromRequest(r), s)
	if err != nil || string(got) != base {
		t.Fatalf("base:\n%s\nwant:\n%s\nerr %v", got, base, err)
	}
	if err := Verify(FromRequest(r), s, rfcPub); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// Ed25519 is deterministic: signing gives the RFC's bytes.
	r2 := rfcRequest()
	comps := []Component{C("date"), C("@method"), C("@path"), C("@authority"), C("content-type"), C("content-length")}
	if err := SignRequest(r2, "sig-b26", comps, SignParams{Created: 1618884473, KeyID: "test-key-ed25519"}, rfcPriv); err != nil {
		t.Fatal(err)
	}
	if r2.Header.Get("Signature-Input") != input || r2.Header.Get("Signature") != sig {
		t.Fatalf("signed\n%s\n%s", r2.Header.Get("Signature-Input"), r2.Header.Get("Signature"))
	}
}

// TestWebBotAuthVectors are the Ed25519 test vectors of the Web Bot Auth
// protocol draft (the RFC 9421 key): the dictionary Signature-Agent and the
// legacy string form.
func TestWebBotAuthVectors(t *testing.T) {
	cases := []struct {
		name, agent, input, sig string
	}{
		{
			"dictionary", `agent2="https://signature-agent.test"`,
			`sig2=("@authority" "signature-agent";key="agent2");created=1735689600;keyid="poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";alg="ed25519";expires=4889289600;nonce="n9p433xm+NJ3ph3upfBIGmsuwHw387YV7Q/F+6BSpGCVjYCqQw6rznNA8PVVLySrAWsv0hQtFioQb6E1YsauiA==";tag="web-bot-auth"`,
			`sig2=:RdNFx5Bj6au3YgAMQL/RzmUlZE8QZLIaXGRpw985hWnwPfMxT228NMk6ehRS1PSl4e8PhbNZACSanGdhEwYCCg==:`,
		},
		{
			"legacy", `"https://signature-agent.test"`,
			`sig2=("@authority" "signature-agent");created=1735689600;keyid="poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";alg="ed25519";expires=1735693200;nonce="e8N7S2MFd/qrd6T2R3tdfAuuANngKI7LFtKYI/vowzk4lAZYadIX6wW25MwG7DCT9RUKAJ0qVkU0mEeLElW1qg==";tag="web-bot-auth"`,
			`sig2=:jdq0SqOwHdyHr9+r5jw3iYZH6aNGKijYp/EstF4RQTQdi5N5YYKrD+mCT1HA1nZDsi6nJKuHxUi/5Syp3rLWBA==:`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "https://example.com/", nil)
			r.Header.Set("Signature-Agent", tc.agent)
			r.Header.Set("Signature-Input", tc.input)
			r.Header.Set("Signature", tc.sig)
			sigs, err := Parse(r.Header)
			if err != nil {
				t.Fatal(err)
			}
			if err := Verify(FromRequest(r), sigs[0], rfcPub); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if sigs[0].Tag != "web-bot-auth" || sigs[0].Expires == 0 || sigs[0].Nonce == "" {
				t.Fatalf("params %+v", sigs[0])
			}
			// A different authority breaks it.
			r.Host = "example.org"
			if err := Verify(FromRequest(r), sigs[0], rfcPub); !errors.Is(err, ErrVerify) {
				t.Fatalf("other authority: %v", err)
			}
		})
	}
}

// TestDirectoryResponseVector is the signed directory response of the Web
// Bot Auth draft: @authority;req and content-digest over the JWKS body.
func TestDirectoryResponseVector(t *testing.T) {
	body := []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U","x":"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs","use":"sig"}]}`)
	h := http.Header{}
	h.Set("Content-Digest", "sha-256=:CADMT2aBdV/rqQr/NIru64ERQkCobVvllA4V0fLFDu0=:")
	h.Set("Signature-Input", `binding=("@authority";req "content-digest");created=1735689600;expires=4889289600;keyid="poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";tag="http-message-signatures-directory"`)
	h.Set("Signature", `binding=:l6P8R67tm3kujAxbHWio7ll01qrEZ0dKD/WWlGhNYEmTnFZM8Wt0VQ9zqGfvo7T/UMkBxsigzChM1Gpz7gOVBg==:`)
	if err := VerifyContentDigest(h, body); err != nil {
		t.Fatal(err)
	}
	if got := ContentDigest(body); got != h.Get("Content-Digest") {
		t.Fatalf("ContentDigest = %s", got)
	}
	if err := VerifyContentDigest(h, append(body, ' ')); !errors.Is(err, ErrDigest) {
		t.Fatalf("changed body: %v", err)
	}
	req := &Message{Method: "GET", Scheme: "https", Authority: "signature-agent.test", RawPath: "/.well-known/http-message-signatures-directory"}
	sigs, err := Parse(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(FromResponse(200, h, req), sigs[0], rfcPub); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	req.Authority = "mirror.test"
	if err := Verify(FromResponse(200, h, req), sigs[0], rfcPub); !errors.Is(err, ErrVerify) {
		t.Fatalf("re-served under another authority: %v", err)
	}
}

func TestDerivedComponents(t *testing.T) {
	r := httptest.NewRequest("GET", "https://Example.COM:443/a%20b/c?x=1&y=two%20words&x=3&e=", nil)
	r.Header.Add("X-Multi", " one ")
	r.Header.Add("X-Multi", "two")
	r.Header.Set("Signature-Agent", `a="https://a.test", b="https://b.test";type=directory`)
	m := FromRequest(r)
	m.Scheme = "https"
	cases := []struct {
		c    Component
		want []string
	}{
		{C("@method"), []string{"GET"}},
		{C("@authority"), []string{"example.com"}},
		{C("@scheme"), []string{"https"}},
		{C("@path"), []string{"/a%20b/c"}},
		{C("@query"), []string{"?x=1&y=two%20words&x=3&e="}},
		{C("@request-target"), []string{"/a%20b/c?x=1&y=two%20words&x=3&e="}},
		{C("@target-uri"), []string{"https://example.com/a%20b/c?x=1&y=two%20words&x=3&e="}},
		{Component{Name: "@query-param", QueryName: "x"}, []string{"1", "3"}},
		{Component{Name: "@query-param", QueryName: "y"}, []string{"two%20words"}},
		{Component{Name: "@query-param", QueryName: "e"}, []string{""}},
		{C("x-multi"), []string{"one, two"}},
		{C("signature-agent").WithKey("b"), []string{`"https://b.test";type=directory`}},
		{Component{Name: "signature-agent", SF: true}, []string{`a="https://a.test", b="https://b.test";type=directory`}},
		{Component{Name: "x-multi", BS: true}, []string{":b25l:, :dHdv:"}},
		{C("host"), []string{"Example.COM:443"}},
	}
	for _, tc := range cases {
		got, err := componentValues(m, tc.c)
		if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s = %q, %v; want %q", tc.c, got, err, tc.want)
		}
	}
}

// TestMalformedSignatureClass: every malformed input is an ErrMalformed or
// ErrComponent error, never a panic and never a verified signature.
func TestMalformedSignatureClass(t *testing.T) {
	long := strings.Repeat("a", MaxFieldBytes)
	many := make([]string, MaxSignatures+1)
	for i := range many {
		many[i] = "s" + strings.Repeat("x", i) + `=("@method")`
	}
	cases := []struct {
		name, input, sig string
		want             error
	}{
		{"input only", `s=("@method")`, "", ErrMalformed},
		{"not a dictionary", `s=("@method"`, `s=:AAAA:`, ErrMalformed},
		{"member is an item", `s="@method"`, `s=:AAAA:`, ErrMalformed},
		{"no signature member", `s=("@method")`, `t=:AAAA:`, ErrMalformed},
		{"signature not bytes", `s=("@method")`, `s="AAAA"`, ErrMalformed},
		{"empty signature", `s=("@method")`, `s=::`, ErrMalformed},
		{"component not a string", `s=(method)`, `s=:AAAA:`, ErrMalformed},
		{"uppercase component", `s=("Date")`, `s=:AAAA:`, ErrMalformed},
		{"duplicate component", `s=("@method" "@method")`, `s=:AAAA:`, ErrMalformed},
		{"unknown component parameter", `s=("date";zz)`, `s=:AAAA:`, ErrMalformed},
		{"created not an integer", `s=("@method");created="now"`, `s=:AAAA:`, ErrMalformed},
		{"keyid not a string", `s=("@method");keyid=12`, `s=:AAAA:`, ErrMalformed},
		{"too long", `s=("` + long + `")`, `s=:AAAA:`, ErrMalformed},
		{"too many", strings.Join(many, ", "), `s=:AAAA:`, ErrMalformed},
		{"absent header", `s=("x-absent")`, `s=:AAAA:`, ErrComponent},
		{"unknown derived", `s=("@nope")`, `s=:AAAA:`, ErrComponent},
		{"status on request", `s=("@status")`, `s=:AAAA:`, ErrComponent},
		{"req on request", `s=("@method";req)`, `s=:AAAA:`, ErrComponent},
		{"trailer", `s=("date";tr)`, `s=:AAAA:`, ErrComponent},
		{"key on non-dictionary", `s=("date";key="a")`, `s=:AAAA:`, ErrComponent},
		{"missing member", `s=("signature-agent";key="zz")`, `s=:AAAA:`, ErrComponent},
		{"sf of unknown type", `s=("date";sf)`, `s=:AAAA:`, ErrComponent},
		{"query-param without name", `s=("@query-param")`, `s=:AAAA:`, ErrComponent},
		{"covers signature-params", `s=("@signature-params")`, `s=:AAAA:`, ErrComponent},
		{"bad signature", `s=("@method")`, `s=:AAAA:`, ErrVerify},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "https://example.com/", nil)
			r.Header.Set("Date", "x")
			r.Header.Set("Signature-Agent", `a="https://a.test"`)
			if tc.input != "" {
				r.Header.Set("Signature-Input", tc.input)
			}
			if tc.sig != "" {
				r.Header.Set("Signature", tc.sig)
			}
			sigs, err := Parse(r.Header)
			if err == nil {
				err = Verify(FromRequest(r), sigs[0], rfcPub)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if sigs, err := Parse(http.Header{}); sigs != nil || err != nil {
		t.Fatal("no fields should be no signatures and no error")
	}
}

func TestVerifyRefusesOtherAlgorithmsAndKeys(t *testing.T) {
	r := rfcRequest()
	comps := []Component{C("@method"), C("@authority")}
	if err := SignRequest(r, "s", comps, SignParams{Created: 1, KeyID: "k", Alg: true}, rfcPriv); err != nil {
		t.Fatal(err)
	}
	sigs, _ := Parse(r.Header)
	other, _, _ := ed25519.GenerateKey(nil)
	if err := Verify(FromRequest(r), sigs[0], other); !errors.Is(err, ErrVerify) {
		t.Fatalf("wrong key: %v", err)
	}
	sigs[0].Alg = "rsa-pss-sha512"
	if err := Verify(FromRequest(r), sigs[0], rfcPub); !errors.Is(err, ErrVerify) {
		t.Fatalf("other alg: %v", err)
	}
	r.Method = "PUT"
	sigs, _ = Parse(r.Header)
	if err := Verify(FromRequest(r), sigs[0], rfcPub); !errors.Is(err, ErrVerify) {
		t.Fatalf("changed method: %v", err)
	}
}

// FuzzParseVerify feeds arbitrary Signature-Input, Signature and
// Signature-Agent values through Parse, Base and Verify: errors are fine,
// panics are not, and nothing verifies under a key that did not sign.
func FuzzParseVerify(f *testing.F) {
	f.Add(`sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`,
		`sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:`, `a="https://a.test"`)
	f.Add(`s=("@authority" "signature-agent";key="a");created=1;expires=2;tag="web-bot-auth"`, `s=:AAAA:`, `a="https://a.test";type=directory`)
	f.Add(`s=("@query-param";name="x" "signature-agent";sf "x-y";bs)`, `s=:AAAA:`, `"legacy"`)
	f.Add(`s=();created=-1`, `s=:`, ``)
	other, _, _ := ed25519.GenerateKey(nil)
	f.Fuzz(func(t *testing.T, input, sig, agent string) {
		r := rfcRequest()
		r.Header.Set("Signature-Input", input)
		r.Header.Set("Signature", sig)
		r.Header.Set("Signature-Agent", agent)
		r.Header.Set("X-Y", "z")
		sigs, err := Parse(r.Header)
		if err != nil {
			return
		}
		for _, s := range sigs {
			_, _ = Base(FromRequest(r), s)
			if Verify(FromRequest(r), s, other) == nil {
				t.Fatalf("verified under an unrelated key: %q %q", input, sig)
			}
		}
	})
}

func BenchmarkVerifyEd25519(b *testing.B) {
	r := httptest.NewRequest("GET", "https://example.com/v1/agents", nil)
	r.Header.Set("Signature-Agent", `sig1="https://bot.test"`)
	comps := []Component{C("@method"), C("@authority"), C("@path"), C("signature-agent").WithKey("sig1")}
	if err := SignRequest(r, "sig1", comps, SignParams{Created: 1, Expires: 2, KeyID: "k", Tag: "web-bot-auth"}, rfcPriv); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		sigs, err := Parse(r.Header)
		if err != nil {
			b.Fatal(err)
		}
		if err := Verify(FromRequest(r), sigs[0], rfcPub); err != nil {
			b.Fatal(err)
		}
	}
}
