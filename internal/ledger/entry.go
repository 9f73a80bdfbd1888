package ledger

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/strictjson"
)

// Type is the kind of an entry.
type Type string

// The entry types. Each has one body field in Entry, named after it.
const (
	TypeChange     Type = "change"     // a new version of an agent: bundle digest, parent version, author
	TypeTest       Type = "test"       // a test run's result
	TypePolicy     Type = "policy"     // a policy decision: policy-set digest, input digest, result
	TypeApproval   Type = "approval"   // a person's approval or rejection
	TypeProvenance Type = "provenance" // a signed provenance statement's digest
	TypeRollout    Type = "rollout"    // one step of a rollout
	TypeRollback   Type = "rollback"   // a rollback to an earlier version
	TypeAudit      Type = "audit"      // digests of a run of audit records
	TypeConfig     Type = "config"     // a change to the platform's configuration: target, digests, author
)

// Types lists every entry type.
func Types() []Type {
	return []Type{TypeChange, TypeTest, TypePolicy, TypeApproval, TypeProvenance, TypeRollout, TypeRollback, TypeAudit, TypeConfig}
}

// Limits on the parts of an entry. The whole encoded entry is also capped
// (Options.MaxEntryBytes, at most MaxEntryBytes).
const (
	MaxParents      = 16
	MaxLabels       = 64
	MaxLabelKey     = 128
	MaxLabelValue   = 256
	MaxText         = 4096 // messages, summaries, comments, reasons
	MaxName         = 512  // identity IDs, suites, predicate types, builders
	MaxReasons      = 32
	MaxAuditRecords = 512
)

// Entry is one typed record of the ledger. Exactly the body named by Type
// is set. Parents name the entries this one follows from (the change a test
// ran on, the policy decision an approval answered); Append refuses parents
// that are not in the log.
type Entry struct {
	Type    Type      `json:"type"`
	Time    time.Time `json:"time"`
	Parents []Ref     `json:"parents,omitempty"`

	Change     *Change         `json:"change,omitempty"`
	Test       *TestResult     `json:"test,omitempty"`
	Policy     *PolicyDecision `json:"policy,omitempty"`
	Approval   *Approval       `json:"approval,omitempty"`
	Provenance *Provenance     `json:"provenance,omitempty"`
	Rollout    *RolloutStep    `json:"rollout,omitempty"`
	Rollback   *Rollback       `json:"rollback,omitempty"`
	Audit      *AuditBatch     `json:"audit,omitempty"`
	Config     *ConfigChange   `json:"config,omitempty"`
}

// Identity is who acted: a SPIFFE ID or principal name, and the labels it
// carried when it acted.
type Identity struct {
	ID     string            `json:"id"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Change records a new version of an agent.
type Change struct {
	Agent         string   `json:"agent"`
	Version       string   `json:"version"`
	ParentVersion string   `json:"parent_version,omitempty"`
	BundleDigest  Digest   `json:"bundle_digest"`
	Author        Identity `json:"author"`
	Message       string   `json:"message,omitempty"`
	// Preview marks a version made an agent's preview (agentcloud dev):
	// tested, never released to production traffic.
	Preview bool `json:"preview,omitempty"`
}

// ConfigChange records a change to the platform's configuration (the
// policy set, trusted or private hosts, an upstream's tool pins, a
// secret's metadata): the target, the digests of the value it replaces and
// of the new one, and who made it.
type ConfigChange struct {
	Target       string   `json:"target"`
	Name         string   `json:"name,omitempty"`
	Digest       Digest   `json:"digest"`
	ParentDigest Digest   `json:"parent_digest,omitempty"`
	Author       Identity `json:"author"`
	Summary      string   `json:"summary,omitempty"`
}

// TestResult records one test run.
type TestResult struct {
	Suite        string `json:"suite"`
	Passed       bool   `json:"passed"`
	Total        int    `json:"total,omitempty"`
	Failed       int    `json:"failed,omitempty"`
	Summary      string `json:"summary,omitempty"`
	ReportDigest Digest `json:"report_digest,omitempty"`
}

// The results of a policy decision.
const (
	ResultAllow = "allow"
	ResultDeny  = "deny"
)

// PolicyDecision records what a policy set decided on an input.
type PolicyDecision struct {
	PolicySetDigest Digest   `json:"policy_set_digest"`
	InputDigest     Digest   `json:"input_digest"`
	Result          string   `json:"result"`
	Reasons         []string `json:"reasons,omitempty"`
}

// The decisions of an approval.
const (
	DecisionApproved = "approved"
	DecisionRejected = "rejected"
)

// Approval records a person's decision.
type Approval struct {
	Approver Identity `json:"approver"`
	Decision string   `json:"decision"`
	Comment  string   `json:"comment,omitempty"`
}

// Provenance records a provenance statement (in-toto, SLSA) about an
// artifact: what it is about, its type and the digest of the signed
// statement.
type Provenance struct {
	SubjectDigest   Digest `json:"subject_digest"`
	PredicateType   string `json:"predicate_type"`
	StatementDigest Digest `json:"statement_digest"`
	Builder         string `json:"builder,omitempty"`
}

// The states of a rollout step.
const (
	RolloutStarted   = "started"
	RolloutPromoted  = "promoted"
	RolloutPaused    = "paused"
	RolloutResumed   = "resumed"
	RolloutCompleted = "completed"
)

// RolloutStep records one step of a rollout: the share of traffic the
// version gets from now on. Analysis, when set, is the evidence a
// promotion rested on.
type RolloutStep struct {
	Agent    string    `json:"agent"`
	Version  string    `json:"version"`
	Step     int       `json:"step"`
	Percent  int       `json:"percent"`
	State    string    `json:"state"`
	Analysis *Analysis `json:"analysis,omitempty"`
}

// Rollback records a return to an earlier version. Analysis, when set, is
// the evidence an automatic rollback rested on (the figures that
// triggered it).
type Rollback struct {
	Agent       string    `json:"agent"`
	FromVersion string    `json:"from_version"`
	ToVersion   string    `json:"to_version"`
	Reason      string    `json:"reason"`
	Analysis    *Analysis `json:"analysis,omitempty"`
}

// Analysis is what a rollout compared over one step's window: the new
// (canary) and the stable version's figures and the thresholds. Numbers
// are integers so an entry's bytes are the same on every platform.
type Analysis struct {
	WindowSeconds uint64  `json:"window_seconds"`
	Canary        Figures `json:"canary"`
	Stable        Figures `json:"stable"`
	// MaxErrorRateIncreaseBP is how far (in basis points, 1/100 of a
	// percentage point) the canary's error rate may exceed the stable's.
	MaxErrorRateIncreaseBP uint64 `json:"max_error_rate_increase_bp"`
	// MaxP99RatioPct is how large the canary's p99 may be, in percent of
	// the stable's (150 = half again), beyond P99SlackMicros.
	MaxP99RatioPct uint64 `json:"max_p99_ratio_pct"`
	P99SlackMicros uint64 `json:"p99_slack_us"`
}

// Figures are one version's calls over an analysis window: how many, how
// many failed (5xx, exceptions, limit kills) and the 99th percentile of
// their duration in microseconds.
type Figures struct {
	Version   string `json:"version"`
	Calls     uint64 `json:"calls"`
	Errors    uint64 `json:"errors"`
	P99Micros uint64 `json:"p99_us"`
}

// AuditBatch makes a run of audit records tamper-evident: the sha256 of
// each record's bytes, records FirstSeq, FirstSeq+1, ... of the named log.
type AuditBatch struct {
	Log      string   `json:"log"`
	FirstSeq uint64   `json:"first_seq"`
	Digests  []Digest `json:"digests"`
}

// Encode validates e and returns its canonical bytes: the JSON encoding of
// the struct (fields in declaration order, map keys sorted, time in UTC).
// The leaf hash is taken over exactly these bytes.
func (e Entry) Encode() ([]byte, error) {
	e.Time = e.Time.UTC()
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(e)
}

// DecodeEntry parses an entry's bytes strictly (no unknown or repeated
// fields, nothing after the value) and validates it.
func DecodeEntry(data []byte) (Entry, error) {
	var e Entry
	if len(data) > MaxEntryBytes {
		return e, api.Errorf(api.KindTooLarge, "entry of %d bytes: the limit is %d", len(data), MaxEntryBytes)
	}
	if err := strictjson.Decode(data, &e); err != nil {
		return Entry{}, err
	}
	if err := e.Validate(); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// Validate checks e's type, body, parents and field limits; the error is a
// validation problem naming the field.
func (e Entry) Validate() error {
	bodies := map[Type]bool{
		TypeChange: e.Change != nil, TypeTest: e.Test != nil, TypePolicy: e.Policy != nil,
		TypeApproval: e.Approval != nil, TypeProvenance: e.Provenance != nil,
		TypeRollout: e.Rollout != nil, TypeRollback: e.Rollback != nil, TypeAudit: e.Audit != nil,
		TypeConfig: e.Config != nil,
	}
	has, known := bodies[e.Type]
	if !known {
		return api.FieldErrorf(api.KindValidation, "type", "type %q is not an entry type; want one of %v", clip(string(e.Type)), Types())
	}
	if !has {
		return fieldErr(string(e.Type), "a %s entry needs its %q body", e.Type, e.Type)
	}
	for t, set := range bodies {
		if set && t != e.Type {
			return fieldErr(string(t), "a %s entry must not carry a %q body", e.Type, t)
		}
	}
	if e.Time.IsZero() {
		return fieldErr("time", "is missing")
	}
	if len(e.Parents) > MaxParents {
		return fieldErr("parents", "%d parents: the limit is %d", len(e.Parents), MaxParents)
	}
	for i, p := range e.Parents {
		if slices.Contains(e.Parents[:i], p) {
			return fieldErr(fmt.Sprintf("parents[%d]", i), "names entry %d twice", p.Index)
		}
	}
	if e.Type != TypeChange && e.Type != TypeAudit && e.Type != TypeConfig && len(e.Parents) == 0 {
		return fieldErr("parents", "a %s entry follows from another entry: name at least one parent", e.Type)
	}
	switch e.Type {
	case TypeChange:
		return e.Change.validate()
	case TypeTest:
		return e.Test.validate()
	case TypePolicy:
		return e.Policy.validate()
	case TypeApproval:
		return e.Approval.validate()
	case TypeProvenance:
		return e.Provenance.validate()
	case TypeRollout:
		return e.Rollout.validate()
	case TypeRollback:
		return e.Rollback.validate()
	case TypeConfig:
		return e.Config.validate()
	default:
		return e.Audit.validate()
	}
}

func (c *Change) validate() error {
	if err := checkID("change.agent", api.IDAgent, c.Agent); err != nil {
		return err
	}
	if err := checkID("change.version", api.IDVersion, c.Version); err != nil {
		return err
	}
	if c.ParentVersion != "" {
		if err := checkID("change.parent_version", api.IDVersion, c.ParentVersion); err != nil {
			return err
		}
	}
	if err := c.BundleDigest.check("change.bundle_digest"); err != nil {
		return err
	}
	if err := c.Author.validate("change.author"); err != nil {
		return err
	}
	return checkText("change.message", c.Message, MaxText, false)
}

func (c *ConfigChange) validate() error {
	if err := checkText("config.target", c.Target, MaxName, true); err != nil {
		return err
	}
	if err := checkText("config.name", c.Name, MaxName, false); err != nil {
		return err
	}
	if err := c.Digest.check("config.digest"); err != nil {
		return err
	}
	if c.ParentDigest != "" {
		if err := c.ParentDigest.check("config.parent_digest"); err != nil {
			return err
		}
	}
	if err := c.Author.validate("config.author"); err != nil {
		return err
	}
	return checkText("config.summary", c.Summary, MaxText, false)
}

func (t *TestResult) validate() error {
	if err := checkText("test.suite", t.Suite, MaxName, true); err != nil {
		return err
	}
	if t.Total < 0 || t.Failed < 0 || t.Failed > t.Total && t.Total > 0 {
		return fieldErr("test.failed", "%d failed of %d: want 0 <= failed <= total", t.Failed, t.Total)
	}
	if t.Passed && t.Failed > 0 {
		return fieldErr("test.passed", "a run with %d failures did not pass", t.Failed)
	}
	if t.ReportDigest != "" {
		if err := t.ReportDigest.check("test.report_digest"); err != nil {
			return err
		}
	}
	return checkText("test.summary", t.Summary, MaxText, false)
}

func (p *PolicyDecision) validate() error {
	if err := p.PolicySetDigest.check("policy.policy_set_digest"); err != nil {
		return err
	}
	if err := p.InputDigest.check("policy.input_digest"); err != nil {
		return err
	}
	if p.Result != ResultAllow && p.Result != ResultDeny {
		return fieldErr("policy.result", "%q: want %q or %q", clip(p.Result), ResultAllow, ResultDeny)
	}
	if len(p.Reasons) > MaxReasons {
		return fieldErr("policy.reasons", "%d reasons: the limit is %d", len(p.Reasons), MaxReasons)
	}
	for i, r := range p.Reasons {
		if err := checkText(fmt.Sprintf("policy.reasons[%d]", i), r, MaxText, true); err != nil {
			return err
		}
	}
	return nil
}

func (a *Approval) validate() error {
	if err := a.Approver.validate("approval.approver"); err != nil {
		return err
	}
	if a.Decision != DecisionApproved && a.Decision != DecisionRejected {
		return fieldErr("approval.decision", "%q: want %q or %q", clip(a.Decision), DecisionApproved, DecisionRejected)
	}
	return checkText("approval.comment", a.Comment, MaxText, false)
}

func (p *Provenance) validate() error {
	if err := p.SubjectDigest.check("provenance.subject_digest"); err != nil {
		return err
	}
	if err := checkText("provenance.predicate_type", p.PredicateType, MaxName, true); err != nil {
		return err
	}
	if err := p.StatementDigest.check("provenance.statement_digest"); err != nil {
		return err
	}
	return checkText("provenance.builder", p.Builder, MaxName, false)
}

func (r *RolloutStep) validate() error {
	if err := checkID("rollout.agent", api.IDAgent, r.Agent); err != nil {
		return err
	}
	if err := checkID("rollout.version", api.IDVersion, r.Version); err != nil {
		return err
	}
	if r.Step < 0 || r.Step > 1000 {
		return fieldErr("rollout.step", "%d: want 0 to 1000", r.Step)
	}
	if r.Percent < 0 || r.Percent > 100 {
		return fieldErr("rollout.percent", "%d: want 0 to 100", r.Percent)
	}
	switch r.State {
	case RolloutStarted, RolloutPromoted, RolloutPaused, RolloutResumed, RolloutCompleted:
	default:
		return fieldErr("rollout.state", "%q: want one of %s, %s, %s, %s, %s", clip(r.State),
			RolloutStarted, RolloutPromoted, RolloutPaused, RolloutResumed, RolloutCompleted)
	}
	if r.Analysis != nil {
		return r.Analysis.validate("rollout.analysis")
	}
	return nil
}

// Limits of an analysis: a window of at most a year, a threshold ratio of
// at most 1000 times.
const (
	maxWindowSeconds = 366 * 24 * 3600
	maxRatioPct      = 100_000
	maxSlackMicros   = 3600 * 1_000_000
)

func (a *Analysis) validate(field string) error {
	if a.WindowSeconds > maxWindowSeconds {
		return fieldErr(field+".window_seconds", "%d: want at most %d", a.WindowSeconds, maxWindowSeconds)
	}
	if err := a.Canary.validate(field + ".canary"); err != nil {
		return err
	}
	if err := a.Stable.validate(field + ".stable"); err != nil {
		return err
	}
	if a.MaxErrorRateIncreaseBP > 10_000 {
		return fieldErr(field+".max_error_rate_increase_bp", "%d: want 0 to 10000", a.MaxErrorRateIncreaseBP)
	}
	if a.MaxP99RatioPct < 100 || a.MaxP99RatioPct > maxRatioPct {
		return fieldErr(field+".max_p99_ratio_pct", "%d: want 100 to %d", a.MaxP99RatioPct, maxRatioPct)
	}
	if a.P99SlackMicros > maxSlackMicros {
		return fieldErr(field+".p99_slack_us", "%d: want at most %d (an hour)", a.P99SlackMicros, maxSlackMicros)
	}
	return nil
}

func (f Figures) validate(field string) error {
	if err := checkID(field+".version", api.IDVersion, f.Version); err != nil {
		return err
	}
	if f.Errors > f.Calls {
		return fieldErr(field+".errors", "%d errors of %d calls: want errors <= calls", f.Errors, f.Calls)
	}
	if f.P99Micros > maxSlackMicros*24 {
		return fieldErr(field+".p99_us", "%d: want at most a day", f.P99Micros)
	}
	return nil
}

func (r *Rollback) validate() error {
	if err := checkID("rollback.agent", api.IDAgent, r.Agent); err != nil {
		return err
	}
	if err := checkID("rollback.from_version", api.IDVersion, r.FromVersion); err != nil {
		return err
	}
	if err := checkID("rollback.to_version", api.IDVersion, r.ToVersion); err != nil {
		return err
	}
	if err := checkText("rollback.reason", r.Reason, MaxText, true); err != nil {
		return err
	}
	if r.Analysis != nil {
		return r.Analysis.validate("rollback.analysis")
	}
	return nil
}

func (a *AuditBatch) validate() error {
	if err := checkText("audit.log", a.Log, MaxName, true); err != nil {
		return err
	}
	if a.FirstSeq == 0 {
		return fieldErr("audit.first_seq", "is 0: log sequences start at 1")
	}
	if len(a.Digests) == 0 || len(a.Digests) > MaxAuditRecords {
		return fieldErr("audit.digests", "%d digests: give 1 to %d", len(a.Digests), MaxAuditRecords)
	}
	for i, d := range a.Digests {
		if err := d.check(fmt.Sprintf("audit.digests[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}

func (id Identity) validate(field string) error {
	if err := checkText(field+".id", id.ID, MaxName, true); err != nil {
		return err
	}
	if len(id.Labels) > MaxLabels {
		return fieldErr(field+".labels", "%d labels: the limit is %d", len(id.Labels), MaxLabels)
	}
	for k, v := range id.Labels {
		if err := checkText(field+".labels", k, MaxLabelKey, true); err != nil {
			return err
		}
		if err := checkText(field+".labels."+clip(k), v, MaxLabelValue, false); err != nil {
			return err
		}
	}
	return nil
}

// checkID applies the identifier rule of kind as a validation problem.
func checkID(field string, kind api.IDKind, v string) error {
	if p := api.CheckID(field, kind, v); p != nil {
		return api.FieldErrorf(api.KindValidation, field, "%s", p.Detail)
	}
	return nil
}

// checkText bounds a free-text field and refuses invalid UTF-8 and control
// characters other than newline and tab.
func checkText(field, s string, limit int, required bool) error {
	if s == "" {
		if required {
			return fieldErr(field, "is empty")
		}
		return nil
	}
	if len(s) > limit {
		return fieldErr(field, "is %d bytes: the limit is %d", len(s), limit)
	}
	if !utf8.ValidString(s) {
		return fieldErr(field, "is not valid UTF-8")
	}
	for i, r := range s {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			return fieldErr(field, "has control character 0x%02X at byte %d", r, i)
		}
	}
	return nil
}
