package pipeline

import (
	"context"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/pipeline/provenance"
)

// Versions is the version store (the session manager satisfies it):
// immutable content-addressed versions, built into templates, and the
// agent's current version.
type Versions interface {
	// StoreVersion stores b without making it current; storing a stored
	// digest again is not an error.
	StoreVersion(ctx context.Context, b *bundle.Bundle) (api.AgentVersion, error)
	// BuildVersion initialises a stored version and stores its template,
	// returning the template's digest ("" when the runtime has none).
	BuildVersion(ctx context.Context, agent, digest string) (string, error)
	// VersionBundle returns a stored version's files.
	VersionBundle(ctx context.Context, agent, digest string) (*bundle.Bundle, error)
	// CurrentVersion is the digest serving now; ok is false for an agent
	// never deployed.
	CurrentVersion(ctx context.Context, agent string) (digest string, ok bool, err error)
}

// TestInput is what the test stage tests: version Version of Agent, whose
// files are Bundle. Run names the run (for scratch state).
type TestInput struct {
	Run     string
	Agent   string
	Version string
	Bundle  *bundle.Bundle
}

// Tester runs a version's tests (jstest.Runner for tests/*.test.js, a
// sandbox for the manifest's test command). A failing test is a report
// with Passed false, not an error; an error means the tests could not run.
type Tester interface {
	Test(ctx context.Context, in TestInput) (api.PipelineTestReport, error)
}

// Gate is the policy gate: it decides agent.release for a run (allow,
// review or deny) and who may approve a run that needs review.
type Gate interface {
	Decide(ctx context.Context, run api.PipelineRun) (api.PipelineDecision, error)
	// MayApprove returns a forbidden problem unless reviewer may approve
	// or reject run.
	MayApprove(ctx context.Context, reviewer api.PipelinePrincipal, run api.PipelineRun) error
}

// Reviews keeps the approvals a review waits on (*approval.Store).
type Reviews interface {
	Request(ctx context.Context, a api.Approval) (api.Approval, bool, error)
	Get(ctx context.Context, id string) (api.Approval, error)
	Resolve(ctx context.Context, id string, approve bool, by string) (api.Approval, error)
}

// Signer signs a release's provenance.
type Signer interface {
	// Sign returns the DSSE envelope and the digest of its payload (the
	// statement). The same params must give the same envelope.
	Sign(ctx context.Context, p provenance.Params) (envelope []byte, digest string, err error)
	// PublicPEM is the key that verifies the envelopes; KeyID names it.
	PublicPEM() []byte
	KeyID() string
}

// KeySigner signs with a provenance key.
type KeySigner struct{ Key *provenance.Key }

// Sign implements Signer.
func (k KeySigner) Sign(ctx context.Context, p provenance.Params) ([]byte, string, error) {
	payload, err := provenance.Statement(p)
	if err != nil {
		return nil, "", err
	}
	env, err := provenance.Sign(ctx, k.Key, payload)
	if err != nil {
		return nil, "", err
	}
	return env, provenance.Digest(payload), nil
}

// PublicPEM implements Signer.
func (k KeySigner) PublicPEM() []byte { return k.Key.PublicPEM() }

// KeyID implements Signer.
func (k KeySigner) KeyID() string { return k.Key.KeyID() }

// Ledger is where a run records its chain (*ledger.Ledger).
type Ledger interface {
	Append(ctx context.Context, e ledger.Entry) (ledger.Receipt, error)
	Lookup(ctx context.Context, h ledger.Hash) (uint64, error)
}

// Step is one step of a rollout: the share of traffic the new version gets
// and how long it runs before the next step is analysed.
type Step struct {
	Percent int           `json:"percent"`
	Pause   time.Duration `json:"pause"`
}

// Release is what the rollout stage hands to the rollout: version Version
// of Agent replaces Parent ("" for a first release), released by run Run
// whose provenance is the ledger entry Provenance (the parent of the
// rollout's own entries).
type Release struct {
	Run        string
	Agent      string
	Version    string
	Parent     string
	Owner      string
	Steps      []Step
	Provenance ledger.Ref
}

// Rollout starts a release's rollout (internal/rollout implements it with
// weighted steps and analysis). Release must be idempotent: a resumed run
// may call it again for the same release. It returns once the rollout has
// started (the first step is live).
type Rollout interface {
	Release(ctx context.Context, r Release) error
}

// Switcher moves an agent's current version with a compare-and-set (the
// session manager's SwitchVersion).
type Switcher interface {
	SwitchVersion(ctx context.Context, agent, digest, expect, owner string) error
}

// SwitchRollout is the simplest Rollout: the whole of the traffic moves to
// the new version at once, if the agent is still at the run's parent. It
// stands in until internal/rollout is wired.
type SwitchRollout struct{ Switcher Switcher }

// Release implements Rollout.
func (s SwitchRollout) Release(ctx context.Context, r Release) error {
	return s.Switcher.SwitchVersion(ctx, r.Agent, r.Version, r.Parent, r.Owner)
}
