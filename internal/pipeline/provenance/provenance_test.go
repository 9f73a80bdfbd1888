package provenance

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func params() Params {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return Params{Agent: "hello", Version: digestA, Parent: digestB, Run: "run-abc",
		Author:  Author{ID: "spiffe://agentcloud.local/agent/hello/session/s1", Kind: "session", Labels: map[string]string{"integrity": "trusted"}},
		Builder: "spiffe://agentcloud.local/node/n1", BuilderVersion: "dev", Started: t0, Finished: t0.Add(time.Second),
		Tests:  Tests{Passed: true, Total: 2, Report: digestB},
		Policy: Policy{Result: "review", Reasons: []string{"release-by-agent"}, PolicySetDigest: digestA, InputDigest: digestB},
		Review: &Review{By: "spiffe://agentcloud.local/user/alice", Decision: "approved", At: t0},
		Ledger: map[string]string{"change": "0:" + strings.Repeat("c", 64)}}
}

func TestSignVerify(t *testing.T) {
	ctx := context.Background()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	payload, err := Statement(params())
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Statement(params())
	if !bytes.Equal(payload, again) {
		t.Fatal("Statement is not deterministic")
	}
	env, err := Sign(ctx, k, payload)
	if err != nil {
		t.Fatal(err)
	}
	// Offline: only the envelope bytes and the public PEM.
	v, err := Verify(ctx, env, k.PublicPEM())
	if err != nil {
		t.Fatal(err)
	}
	if v.Subject != digestA || v.Agent != "hello" || v.Digest != Digest(payload) || v.KeyID != k.KeyID() {
		t.Fatalf("verified %+v", v)
	}
	rd := v.Provenance.GetRunDetails()
	if rd.GetBuilder().GetId() != "spiffe://agentcloud.local/node/n1" || rd.GetMetadata().GetInvocationId() != "run-abc" {
		t.Fatalf("run details %v", rd)
	}
	ext := v.Provenance.GetBuildDefinition().GetExternalParameters().AsMap()
	if ext["agent"] != "hello" || ext["bundle"] != digestA || ext["parent"] != digestB {
		t.Fatalf("external parameters %v", ext)
	}
	// The key round-trips through PEM.
	k2, err := ParseKey(k.MarshalPEM())
	if err != nil || k2.KeyID() != k.KeyID() {
		t.Fatalf("ParseKey: %v", err)
	}
}

// TestVerifyRefusesClass: every way an envelope can be wrong is refused
// with ErrInvalid, never accepted and never a panic.
func TestVerifyRefusesClass(t *testing.T) {
	ctx := context.Background()
	k, _ := GenerateKey()
	other, _ := GenerateKey()
	payload, _ := Statement(params())
	env, _ := Sign(ctx, k, payload)
	var e map[string]any
	_ = json.Unmarshal(env, &e)
	mutate := func(f func(m map[string]any)) []byte {
		var m map[string]any
		_ = json.Unmarshal(env, &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	otherPayload := func(f func(m map[string]any)) []byte {
		var st map[string]any
		_ = json.Unmarshal(payload, &st)
		f(st)
		b, _ := json.Marshal(st)
		env2, _ := Sign(ctx, k, b)
		return env2
	}
	cases := map[string]struct {
		env, key []byte
	}{
		"wrong key": {env, other.PublicPEM()},
		"tampered payload": {mutate(func(m map[string]any) {
			m["payload"] = base64.StdEncoding.EncodeToString(bytes.Replace(payload, []byte("hello"), []byte("hellp"), 1))
		}), k.PublicPEM()},
		"payload type":        {mutate(func(m map[string]any) { m["payloadType"] = "text/plain" }), k.PublicPEM()},
		"no signatures":       {mutate(func(m map[string]any) { m["signatures"] = []any{} }), k.PublicPEM()},
		"bad signature b64":   {mutate(func(m map[string]any) { m["signatures"] = []any{map[string]any{"keyid": "", "sig": "!!"}} }), k.PublicPEM()},
		"unknown field":       {mutate(func(m map[string]any) { m["extra"] = 1 }), k.PublicPEM()},
		"not json":            {[]byte("{"), k.PublicPEM()},
		"empty":               {nil, k.PublicPEM()},
		"huge":                {bytes.Repeat([]byte(" "), MaxEnvelopeBytes+1), k.PublicPEM()},
		"bad pem":             {env, []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")},
		"private pem as key":  {env, k.MarshalPEM()},
		"predicate type":      {otherPayload(func(m map[string]any) { m["predicateType"] = "https://example.com/x" }), k.PublicPEM()},
		"statement type":      {otherPayload(func(m map[string]any) { m["_type"] = "https://in-toto.io/Statement/v0.1" }), k.PublicPEM()},
		"no subject":          {otherPayload(func(m map[string]any) { m["subject"] = []any{} }), k.PublicPEM()},
		"two subjects":        {otherPayload(func(m map[string]any) { m["subject"] = []any{m["subject"].([]any)[0], m["subject"].([]any)[0]} }), k.PublicPEM()},
		"bad subject digest":  {otherPayload(func(m map[string]any) { m["subject"] = []any{map[string]any{"digest": map[string]any{"sha256": "zz"}}} }), k.PublicPEM()},
		"no predicate":        {otherPayload(func(m map[string]any) { delete(m, "predicate") }), k.PublicPEM()},
		"predicate no runDet": {otherPayload(func(m map[string]any) { delete(m["predicate"].(map[string]any), "runDetails") }), k.PublicPEM()},
		"build type": {otherPayload(func(m map[string]any) {
			m["predicate"].(map[string]any)["buildDefinition"].(map[string]any)["buildType"] = "x"
		}), k.PublicPEM()},
		"unknown stmt field": {otherPayload(func(m map[string]any) { m["surprise"] = true }), k.PublicPEM()},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Verify(ctx, c.env, c.key); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Verify = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestStatementRefusesBadParams(t *testing.T) {
	for name, f := range map[string]func(p *Params){
		"version":   func(p *Params) { p.Version = "sha256:xyz" },
		"uppercase": func(p *Params) { p.Version = strings.ToUpper(digestA) },
		"parent":    func(p *Params) { p.Parent = "abc" },
		"no agent":  func(p *Params) { p.Agent = "" },
		"no run":    func(p *Params) { p.Run = "" },
		"builder":   func(p *Params) { p.Builder = "" },
		"template":  func(p *Params) { p.Template = "nope" },
	} {
		p := params()
		f(&p)
		if _, err := Statement(p); err == nil {
			t.Errorf("%s: Statement accepted bad params", name)
		}
	}
}

func FuzzVerify(f *testing.F) {
	ctx := context.Background()
	k, _ := GenerateKey()
	payload, _ := Statement(params())
	env, _ := Sign(ctx, k, payload)
	f.Add(env)
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"","sig":"AA=="}]}`))
	f.Add([]byte(`null`))
	pub := k.PublicPEM()
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Verify(ctx, data, pub)
		if err == nil && v.Subject == "" {
			t.Fatal("verified without a subject")
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error %v does not wrap ErrInvalid", err)
		}
	})
}
