// Package provenance makes and checks the platform's signed provenance for
// a released agent version: an in-toto Statement (v1) whose subject is the
// bundle's content digest and whose predicate is SLSA provenance v1 (the
// builder is the node's SPIFFE ID, the build definition the pipeline run's
// parameters), signed into a DSSE envelope with the platform's Ed25519 key.
//
// Anyone holding the envelope and the public key (PEM) can check it offline
// with Verify: the signature over DSSE's pre-authentication encoding, the
// payload type, the Statement's shape and the predicate's (using the
// in-toto attestation Go bindings' validators), and the subject.
//
// The package builds, signs and verifies; it stores nothing and decides
// nothing (internal/pipeline's sign stage calls it and keeps the envelope).
package provenance

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"

	"github.com/agentcloud/agentcloud/internal/strictjson"
)

// The types a statement carries.
const (
	// PayloadType is the DSSE payload type of an in-toto Statement.
	PayloadType = "application/vnd.in-toto+json"
	// PredicateType is SLSA provenance v1.
	PredicateType = "https://slsa.dev/provenance/v1"
	// BuildType names what the build definition's parameters mean: an
	// agentcloud pipeline release.
	BuildType = "https://agentcloud.dev/pipeline/release/v1"
)

// MaxEnvelopeBytes bounds an envelope Verify accepts.
const MaxEnvelopeBytes = 1 << 20

// ErrInvalid is wrapped by every error of Verify: the envelope, its
// signature, the statement or the predicate is not what it must be.
var ErrInvalid = errors.New("provenance: invalid")

// Params are what a release's provenance records.
type Params struct {
	// Agent and Version (the bundle's content digest, "sha256:<hex>")
	// name the subject; Parent is the version it replaces ("" for none).
	Agent   string
	Version string
	Parent  string
	Message string
	// Run is the pipeline run that released it (the invocation id).
	Run string
	// Author is who made the change.
	Author Author
	// Builder is the node's SPIFFE ID; BuilderVersion agentcloud's version.
	Builder        string
	BuilderVersion string
	// Started and Finished bound the run.
	Started, Finished time.Time
	// Template is the digest of the version's template image, "" for none.
	Template string
	// Tests, Policy and Review summarise the run's gates.
	Tests  Tests
	Policy Policy
	Review *Review
	// Ledger names the ledger entries the run recorded (kind -> index:hash).
	Ledger map[string]string
}

// Author is who made a change.
type Author struct {
	ID     string            `json:"id"`
	Kind   string            `json:"kind"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Tests summarises the test stage.
type Tests struct {
	Passed bool   `json:"passed"`
	Total  int    `json:"total"`
	Failed int    `json:"failed"`
	Report string `json:"report,omitempty"`
}

// Policy summarises the policy gate.
type Policy struct {
	Result          string   `json:"result"`
	Reasons         []string `json:"reasons,omitempty"`
	PolicySetDigest string   `json:"policy_set_digest"`
	InputDigest     string   `json:"input_digest"`
}

// Review is the person's decision, when one was needed.
type Review struct {
	By       string    `json:"by"`
	Decision string    `json:"decision"`
	At       time.Time `json:"at"`
}

// Statement builds the in-toto Statement for p and returns its canonical
// JSON (keys sorted, no insignificant space): the DSSE payload.
func Statement(p Params) ([]byte, error) {
	hexDigest, err := sha256Hex("version", p.Version)
	if err != nil {
		return nil, err
	}
	if p.Agent == "" || p.Run == "" || p.Builder == "" {
		return nil, errors.New("provenance: agent, run and builder are required")
	}
	ext := map[string]any{
		"agent":  p.Agent,
		"bundle": p.Version,
		"author": p.Author,
	}
	if p.Parent != "" {
		ext["parent"] = p.Parent
	}
	if p.Message != "" {
		ext["message"] = p.Message
	}
	internal := map[string]any{"run": p.Run, "tests": p.Tests, "policy": p.Policy}
	if p.Review != nil {
		internal["review"] = p.Review
	}
	if len(p.Ledger) > 0 {
		internal["ledger"] = p.Ledger
	}
	extS, err := toStruct(ext)
	if err != nil {
		return nil, err
	}
	intS, err := toStruct(internal)
	if err != nil {
		return nil, err
	}
	deps := []*intoto.ResourceDescriptor{{
		Name:   "bundle",
		Uri:    "agentcloud:agent/" + p.Agent + "@" + p.Version,
		Digest: map[string]string{"sha256": hexDigest},
	}}
	if p.Parent != "" {
		ph, err := sha256Hex("parent", p.Parent)
		if err != nil {
			return nil, err
		}
		deps = append(deps, &intoto.ResourceDescriptor{Name: "parent", Uri: "agentcloud:agent/" + p.Agent + "@" + p.Parent,
			Digest: map[string]string{"sha256": ph}})
	}
	byproducts, err := byproductsOf(p)
	if err != nil {
		return nil, err
	}
	builder := &slsa.Builder{Id: p.Builder}
	if p.BuilderVersion != "" {
		builder.Version = map[string]string{"agentcloud": p.BuilderVersion}
	}
	meta := &slsa.BuildMetadata{InvocationId: p.Run}
	if !p.Started.IsZero() {
		meta.StartedOn = timestamppb.New(p.Started.UTC())
	}
	if !p.Finished.IsZero() {
		meta.FinishedOn = timestamppb.New(p.Finished.UTC())
	}
	pred := &slsa.Provenance{
		BuildDefinition: &slsa.BuildDefinition{BuildType: BuildType, ExternalParameters: extS,
			InternalParameters: intS, ResolvedDependencies: deps},
		RunDetails: &slsa.RunDetails{Builder: builder, Metadata: meta, Byproducts: byproducts},
	}
	if err := pred.Validate(); err != nil {
		return nil, fmt.Errorf("provenance predicate: %w", err)
	}
	predJSON, err := protojson.Marshal(pred)
	if err != nil {
		return nil, fmt.Errorf("provenance predicate: %w", err)
	}
	predS := &structpb.Struct{}
	if err := protojson.Unmarshal(predJSON, predS); err != nil {
		return nil, fmt.Errorf("provenance predicate: %w", err)
	}
	st := &intoto.Statement{
		Type:          intoto.StatementTypeUri,
		Subject:       []*intoto.ResourceDescriptor{{Name: "agentcloud:agent/" + p.Agent, Digest: map[string]string{"sha256": hexDigest}}},
		PredicateType: PredicateType,
		Predicate:     predS,
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("provenance statement: %w", err)
	}
	raw, err := protojson.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("provenance statement: %w", err)
	}
	return canonical(raw)
}

// byproductsOf lists the template image and the test report, by digest.
func byproductsOf(p Params) ([]*intoto.ResourceDescriptor, error) {
	var out []*intoto.ResourceDescriptor
	if p.Template != "" {
		th, err := sha256Hex("template", p.Template)
		if err != nil {
			return nil, err
		}
		out = append(out, &intoto.ResourceDescriptor{Name: "template-image", Digest: map[string]string{"sha256": th}})
	}
	if p.Tests.Report != "" {
		rh, err := sha256Hex("tests.report", p.Tests.Report)
		if err != nil {
			return nil, err
		}
		out = append(out, &intoto.ResourceDescriptor{Name: "test-report", Digest: map[string]string{"sha256": rh}})
	}
	return out, nil
}

// canonical re-encodes JSON with sorted keys and no insignificant space:
// protojson's output varies on purpose, the payload must not.
func canonical(raw []byte) ([]byte, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("provenance: canonical json: %w", err)
	}
	return json.Marshal(v)
}

func toStruct(v any) (*structpb.Struct, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("provenance parameters: %w", err)
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("provenance parameters: %w", err)
	}
	return s, nil
}

// sha256Hex returns the hex of a "sha256:<64 hex>" digest.
func sha256Hex(field, d string) (string, error) {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 {
		return "", fmt.Errorf("provenance: %s %q is not a sha256:<64 hex digits> digest", field, clip(d))
	}
	if _, err := hex.DecodeString(h); err != nil || strings.ToLower(h) != h {
		return "", fmt.Errorf("provenance: %s %q is not lowercase hex", field, clip(d))
	}
	return h, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// Key is the platform's provenance signing key (Ed25519).
type Key struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	id   string
}

// GenerateKey makes a new signing key.
func GenerateKey() (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("provenance key: %w", err)
	}
	return newKey(priv), nil
}

func newKey(priv ed25519.PrivateKey) *Key {
	pub := priv.Public().(ed25519.PublicKey)
	return &Key{priv: priv, pub: pub, id: keyID(pub)}
}

// keyID is "sha256:" of the public key's PKIX encoding.
func keyID(pub ed25519.PublicKey) string {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParseKey reads a PEM "PRIVATE KEY" (PKCS #8, Ed25519), as MarshalPEM
// writes it.
func ParseKey(pemBytes []byte) (*Key, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("provenance key: want a PEM PRIVATE KEY block (PKCS #8 Ed25519)")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("provenance key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("provenance key: a %T, want Ed25519", k)
	}
	return newKey(priv), nil
}

// MarshalPEM writes the private key as PEM PKCS #8 (keep it 0600).
func (k *Key) MarshalPEM() []byte {
	der, _ := x509.MarshalPKCS8PrivateKey(k.priv)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// PublicPEM is the verification key as PEM PKIX "PUBLIC KEY", the form
// Verify (and cosign, openssl) read.
func (k *Key) PublicPEM() []byte { return PublicPEM(k.pub) }

// PublicPEM encodes an Ed25519 public key as PEM PKIX.
func PublicPEM(pub ed25519.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// KeyID is "sha256:" of the public key (PKIX DER); envelopes name it.
func (k *Key) KeyID() string { return k.id }

// signer adapts a Key to dsse.Signer and dsse.Verifier.
type signer struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
	id   string
}

var (
	_ dsse.Signer   = signer{}
	_ dsse.Verifier = signer{}
)

func (s signer) Sign(_ context.Context, data []byte) ([]byte, error) {
	return ed25519.Sign(s.priv, data), nil
}

func (s signer) Verify(_ context.Context, data, sig []byte) error {
	if !ed25519.Verify(s.pub, data, sig) {
		return errors.New("ed25519: signature does not verify")
	}
	return nil
}

func (s signer) KeyID() (string, error)   { return s.id, nil }
func (s signer) Public() crypto.PublicKey { return s.pub }

// Sign wraps payload (a Statement) in a DSSE envelope signed with k and
// returns the envelope's JSON.
func Sign(ctx context.Context, k *Key, payload []byte) ([]byte, error) {
	es, err := dsse.NewEnvelopeSigner(signer{pub: k.pub, priv: k.priv, id: k.id})
	if err != nil {
		return nil, fmt.Errorf("provenance sign: %w", err)
	}
	env, err := es.SignPayload(ctx, PayloadType, payload)
	if err != nil {
		return nil, fmt.Errorf("provenance sign: %w", err)
	}
	return json.Marshal(env)
}

// Digest is "sha256:" of a payload, as a run and the ledger name it.
func Digest(payload []byte) string {
	sum := sha256.Sum256(payload)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Verified is what Verify checked.
type Verified struct {
	// Payload is the signed statement's bytes; Digest its sha256.
	Payload []byte
	Digest  string
	// Subject is the subject's digest ("sha256:<hex>"), Agent the name the
	// subject carries.
	Subject string
	Agent   string
	// Statement and Provenance are the decoded statement and predicate.
	Statement  *intoto.Statement
	Provenance *slsa.Provenance
	KeyID      string
}

// Verify checks an envelope offline against the PEM public key: the DSSE
// signature, the payload type, the in-toto Statement and the SLSA
// provenance v1 predicate. Every failure wraps ErrInvalid.
func Verify(ctx context.Context, envelope, publicPEM []byte) (*Verified, error) {
	if len(envelope) > MaxEnvelopeBytes {
		return nil, fmt.Errorf("%w: envelope of %d bytes; the limit is %d", ErrInvalid, len(envelope), MaxEnvelopeBytes)
	}
	pub, err := parsePublic(publicPEM)
	if err != nil {
		return nil, err
	}
	var env dsse.Envelope
	if err := strictjson.Decode(envelope, &env); err != nil {
		return nil, fmt.Errorf("%w: envelope: %v", ErrInvalid, err)
	}
	if env.PayloadType != PayloadType {
		return nil, fmt.Errorf("%w: payload type %q, want %q", ErrInvalid, clip(env.PayloadType), PayloadType)
	}
	s := signer{pub: pub, id: keyID(pub)}
	ev, err := dsse.NewEnvelopeVerifier(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if _, err := ev.Verify(ctx, &env); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrInvalid, err)
	}
	payload, err := env.DecodeB64Payload()
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrInvalid, err)
	}
	st := &intoto.Statement{}
	if err := protojson.Unmarshal(payload, st); err != nil {
		return nil, fmt.Errorf("%w: statement: %v", ErrInvalid, err)
	}
	if err := st.Validate(); err != nil {
		return nil, fmt.Errorf("%w: statement: %v", ErrInvalid, err)
	}
	if st.GetType() != intoto.StatementTypeUri {
		return nil, fmt.Errorf("%w: statement type %q, want %q", ErrInvalid, clip(st.GetType()), intoto.StatementTypeUri)
	}
	if st.GetPredicateType() != PredicateType {
		return nil, fmt.Errorf("%w: predicate type %q, want %q", ErrInvalid, clip(st.GetPredicateType()), PredicateType)
	}
	if len(st.GetSubject()) != 1 || st.GetSubject()[0].GetDigest()["sha256"] == "" {
		return nil, fmt.Errorf("%w: want one subject with a sha256 digest", ErrInvalid)
	}
	pj, err := protojson.Marshal(st.GetPredicate())
	if err != nil {
		return nil, fmt.Errorf("%w: predicate: %v", ErrInvalid, err)
	}
	pred := &slsa.Provenance{}
	if err := protojson.Unmarshal(pj, pred); err != nil {
		return nil, fmt.Errorf("%w: predicate: %v", ErrInvalid, err)
	}
	if err := pred.Validate(); err != nil {
		return nil, fmt.Errorf("%w: predicate: %v", ErrInvalid, err)
	}
	if pred.GetBuildDefinition().GetBuildType() != BuildType {
		return nil, fmt.Errorf("%w: build type %q, want %q", ErrInvalid, clip(pred.GetBuildDefinition().GetBuildType()), BuildType)
	}
	sub := st.GetSubject()[0]
	return &Verified{Payload: payload, Digest: Digest(payload), Subject: "sha256:" + sub.GetDigest()["sha256"],
		Agent: strings.TrimPrefix(sub.GetName(), "agentcloud:agent/"), Statement: st, Provenance: pred, KeyID: s.id}, nil
}

func parsePublic(publicPEM []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(publicPEM)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%w: want a PEM PUBLIC KEY block (PKIX Ed25519)", ErrInvalid)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %v", ErrInvalid, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: a %T public key, want Ed25519", ErrInvalid, k)
	}
	return pub, nil
}
