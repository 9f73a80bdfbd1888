package api

import "time"

// Pipeline run states. A run is pending until a runner takes it, running
// while a stage executes, waiting while its review stage waits for a
// person, and ends passed, failed or cancelled.
const (
	RunPending   = "pending"
	RunRunning   = "running"
	RunWaiting   = "waiting"
	RunPassed    = "passed"
	RunFailed    = "failed"
	RunCancelled = "cancelled"
)

// Stage states: those of a run plus skipped (a stage after the one that
// ended the run, or one with nothing to do).
const (
	StagePending   = "pending"
	StageRunning   = "running"
	StageWaiting   = "waiting"
	StagePassed    = "passed"
	StageFailed    = "failed"
	StageCancelled = "cancelled"
	StageSkipped   = "skipped"
)

// The pipeline's stages, in the order they run.
const (
	StageValidate = "validate"
	StageBuild    = "build"
	StageTest     = "test"
	StageGate     = "policy"
	StageReview   = "review"
	StageSign     = "sign"
	StageRecord   = "record"
	StageRollout  = "rollout"
)

// PipelineStages lists the stages in the order they run.
func PipelineStages() []string {
	return []string{StageValidate, StageBuild, StageTest, StageGate, StageReview, StageSign, StageRecord, StageRollout}
}

// Principal kinds of a pipeline run's author.
const (
	AuthorHuman   = "human"
	AuthorAgent   = "agent"
	AuthorSession = "session"
)

// PipelineRun is one run of the deploy pipeline: a bundle on its way from a
// principal to production, stage by stage.
type PipelineRun struct {
	ID    string `json:"id"`
	Agent string `json:"agent"`
	// State is the run's state (RunPending ... RunCancelled); Stage names
	// the stage it is at (the last one once it has ended).
	State     string            `json:"state"`
	Stage     string            `json:"stage"`
	Principal PipelinePrincipal `json:"principal"`
	// Bundle is the new version's content digest ("sha256:..."), Parent
	// the version that was current when the run was made ("" for an
	// agent's first version).
	Bundle   string          `json:"bundle"`
	Parent   string          `json:"parent,omitempty"`
	Message  string          `json:"message,omitempty"`
	Created  time.Time       `json:"created"`
	Updated  time.Time       `json:"updated"`
	Finished time.Time       `json:"finished,omitzero"`
	Stages   []PipelineStage `json:"stages"`
	// Error says why a failed or cancelled run ended.
	Error string `json:"error,omitempty"`
	// CancelRequested is set when a cancel was asked for; the run ends
	// cancelled at its next step.
	CancelRequested bool `json:"cancel_requested,omitempty"`

	Change   *PipelineChange      `json:"change,omitempty"`
	Build    *PipelineBuild       `json:"build,omitempty"`
	Tests    *PipelineTestSummary `json:"tests,omitempty"`
	Decision *PipelineDecision    `json:"decision,omitempty"`
	Review   *PipelineReview      `json:"review,omitempty"`
	// Provenance is the digest of the signed provenance statement (the
	// DSSE envelope's payload), once signed.
	Provenance string `json:"provenance,omitempty"`
	// Ledger holds the ledger entries the run recorded, by kind (change,
	// test, policy, approval, provenance).
	Ledger map[string]PipelineLedgerRef `json:"ledger,omitempty"`
	// Kind is RunKindConfig for a change to the platform's configuration
	// (Config says which), RunKindPreview for an agent's preview (never
	// released); empty for an agent's new version.
	Kind   string                `json:"kind,omitempty"`
	Config *PipelineConfigChange `json:"config,omitempty"`
}

// Terminal reports whether the run has ended.
func (r PipelineRun) Terminal() bool {
	return r.State == RunPassed || r.State == RunFailed || r.State == RunCancelled
}

// PipelinePrincipal is who started a run: a person (human), an agent, or a
// session of an agent, with its labels at the time.
type PipelinePrincipal struct {
	Kind string `json:"kind"` // AuthorHuman, AuthorAgent or AuthorSession
	// ID is the SPIFFE ID (or principal name) that acted.
	ID     string            `json:"id"`
	Labels map[string]string `json:"labels,omitempty"`
}

// PipelineStage is one stage of a run.
type PipelineStage struct {
	Name     string    `json:"name"`
	State    string    `json:"state"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// DurationMs is Finished - Started.
	DurationMs int64 `json:"duration_ms,omitempty"`
	// Attempts counts how often the stage started (more than one after a
	// restart resumed it).
	Attempts int `json:"attempts,omitempty"`
	// Reason says why the stage failed, waits, or was skipped.
	Reason string `json:"reason,omitempty"`
	// LogBytes is how much the stage logged; LogDropped how much of it
	// went over the stage's log limit and was not kept.
	LogBytes   int64 `json:"log_bytes,omitempty"`
	LogDropped int64 `json:"log_dropped,omitempty"`
}

// PipelineChange is what a run changes, from the parent version's manifest
// to the new one: the capabilities added and removed, the limits, and the
// entry code. It is the policy gate's input.
type PipelineChange struct {
	FirstRelease   bool          `json:"first_release,omitempty"`
	NewHosts       []string      `json:"new_hosts,omitempty"`
	RemovedHosts   []string      `json:"removed_hosts,omitempty"`
	NewSecrets     []string      `json:"new_secrets,omitempty"`
	RemovedSecrets []string      `json:"removed_secrets,omitempty"`
	NewTools       []string      `json:"new_tools,omitempty"`
	RemovedTools   []string      `json:"removed_tools,omitempty"`
	Limits         PipelineLimit `json:"limits"`
	ParentLimits   PipelineLimit `json:"parent_limits"`
	// EntryDigest is "sha256:" of the entry file; EntryChanged says it
	// differs from the parent's.
	EntryDigest       string `json:"entry_digest"`
	ParentEntryDigest string `json:"parent_entry_digest,omitempty"`
	EntryChanged      bool   `json:"entry_changed,omitempty"`
	FilesAdded        int    `json:"files_added,omitempty"`
	FilesRemoved      int    `json:"files_removed,omitempty"`
	FilesChanged      int    `json:"files_changed,omitempty"`
}

// PipelineLimit is a version's per-session limits.
type PipelineLimit struct {
	MemoryMiB int `json:"memory_mib"`
	CPUMs     int `json:"cpu_ms"`
	WallMs    int `json:"wall_ms"`
}

// PipelineBuild is what the build stage made: the stored version and the
// digest of its template image (the post-init heap every session starts
// from; "" for a wasm agent).
type PipelineBuild struct {
	Version  string `json:"version"`
	Template string `json:"template,omitempty"`
}

// PipelineTestSummary is the test stage's result.
type PipelineTestSummary struct {
	Passed  bool `json:"passed"`
	Total   int  `json:"total"`
	Failed  int  `json:"failed"`
	Skipped int  `json:"skipped,omitempty"`
	// Files are the tests/*.test.js files run.
	Files []string `json:"files,omitempty"`
	// Failure is the first failing test, with its output.
	Failure *PipelineTestFailure `json:"failure,omitempty"`
	// Command is the manifest's test command's result, if it has one.
	Command *PipelineTestCommand `json:"command,omitempty"`
	// Report is the digest of the full report (GET .../report).
	Report string `json:"report,omitempty"`
}

// PipelineTestFailure names a failing test and what it printed.
type PipelineTestFailure struct {
	File   string `json:"file,omitempty"`
	Name   string `json:"name"`
	Error  string `json:"error"`
	Output string `json:"output,omitempty"`
}

// PipelineTestCommand is the result of the manifest's test command.
type PipelineTestCommand struct {
	Command  string `json:"command"`
	ExitCode int    `json:"exit_code"`
	// Output is the end of what it printed (bounded).
	Output   string `json:"output,omitempty"`
	TimedOut bool   `json:"timed_out,omitempty"`
}

// Policy gate results: allow releases at once, review waits for a person,
// deny ends the run.
const (
	GateAllow  = "allow"
	GateReview = "review"
	GateDeny   = "deny"
)

// PipelineDecision is the policy gate's decision (Cedar action
// agent.release) and what it was decided on.
type PipelineDecision struct {
	Result  string   `json:"result"`
	Reasons []string `json:"reasons,omitempty"`
	// PolicySetDigest and InputDigest are "sha256:" digests of the policy
	// set in force and of the request decided (principal, resource,
	// context), as the ledger records them.
	PolicySetDigest string `json:"policy_set_digest"`
	InputDigest     string `json:"input_digest"`
}

// Review decisions.
const (
	ReviewApproved = "approved"
	ReviewRejected = "rejected"
)

// PipelineReview is the review stage's state: the approval it waits on and
// the decision once made.
type PipelineReview struct {
	Required bool      `json:"required"`
	Approval string    `json:"approval,omitempty"`
	Decision string    `json:"decision,omitempty"`
	By       string    `json:"by,omitempty"`
	At       time.Time `json:"at,omitzero"`
	Comment  string    `json:"comment,omitempty"`
}

// PipelineLedgerRef names a ledger entry: its index and leaf hash (64 hex
// digits).
type PipelineLedgerRef struct {
	Index uint64 `json:"index"`
	Hash  string `json:"hash"`
}

// PipelineRunList is the body of GET /v1/pipeline/runs.
type PipelineRunList struct {
	Runs []PipelineRun `json:"runs"`
}

// Pipeline event types.
const (
	EventRun   = "run"   // the run's state changed (State)
	EventStage = "stage" // a stage's state changed (Stage, State, Message)
	EventLog   = "log"   // a stage logged Message
)

// PipelineEvent is one entry of a run's event stream: progress for the
// CLI's live display, and the stages' logs.
type PipelineEvent struct {
	Seq     uint64    `json:"seq"`
	Run     string    `json:"run"`
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	Stage   string    `json:"stage,omitempty"`
	State   string    `json:"state,omitempty"`
	Message string    `json:"message,omitempty"`
}

// PipelineEventContentType is the media type of a run's event stream
// (one JSON PipelineEvent per line); with Accept: text/event-stream the
// same events come as server-sent events.
const PipelineEventContentType = "application/x-ndjson"

// PipelineLogs is the body of GET /v1/pipeline/runs/{run}/logs: the log
// and progress events, oldest first, and the sequence to continue from.
type PipelineLogs struct {
	Events []PipelineEvent `json:"events"`
	Next   uint64          `json:"next"`
}

// PipelineReviewRequest is the body of approve and reject.
type PipelineReviewRequest struct {
	Comment string `json:"comment,omitempty"`
}

// PipelineDiff is what a run changes, file by file, against its parent
// version (every file is added for a first release).
type PipelineDiff struct {
	Run   string             `json:"run"`
	Agent string             `json:"agent"`
	From  string             `json:"from,omitempty"`
	To    string             `json:"to"`
	Files []PipelineFileDiff `json:"files"`
}

// File diff statuses.
const (
	DiffAdded    = "added"
	DiffRemoved  = "removed"
	DiffModified = "modified"
)

// PipelineFileDiff is one file's change as a unified diff. Binary is set
// (and Diff empty) for files that are not text; Truncated when the diff
// was cut at the size limit.
type PipelineFileDiff struct {
	Path      string `json:"path"`
	Status    string `json:"status"`
	Diff      string `json:"diff,omitempty"`
	Binary    bool   `json:"binary,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
}

// PipelineProvenance is a released version's signed provenance: a DSSE
// envelope around an in-toto Statement with an SLSA provenance v1
// predicate, and the key to verify it with.
type PipelineProvenance struct {
	Run      string `json:"run"`
	Subject  string `json:"subject"` // the bundle digest
	Digest   string `json:"digest"`  // "sha256:" of the statement (the payload)
	Envelope []byte `json:"envelope"`
	// PublicKey is the platform's verification key (PEM, PKIX Ed25519).
	PublicKey string `json:"public_key"`
	KeyID     string `json:"key_id"`
}

// PipelineTestReport is the test stage's full report.
type PipelineTestReport struct {
	Passed  bool                 `json:"passed"`
	Files   []PipelineTestFile   `json:"files"`
	Command *PipelineTestCommand `json:"command,omitempty"`
}

// PipelineTestFile is one tests/*.test.js file's results.
type PipelineTestFile struct {
	File  string             `json:"file"`
	Error string             `json:"error,omitempty"` // it did not load
	Tests []PipelineTestCase `json:"tests"`
}

// Test case results.
const (
	TestPassed  = "passed"
	TestFailed  = "failed"
	TestSkipped = "skipped"
)

// PipelineTestCase is one test's result.
type PipelineTestCase struct {
	Name       string `json:"name"`
	Result     string `json:"result"`
	DurationMs int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
	Output     string `json:"output,omitempty"`
}

// RunKindConfig is the kind of a run that changes the platform's
// configuration (policies, tool pins, trusted and private hosts, secret
// metadata) rather than an agent's version.
const RunKindConfig = "config"

// StageApply is a configuration run's last stage: the change takes effect.
const StageApply = "apply"

// ConfigStages lists the stages of a configuration run in the order they
// run.
func ConfigStages() []string {
	return []string{StageValidate, StageGate, StageReview, StageRecord, StageApply}
}

// RunKindPreview is the kind of a run that makes a version an agent's
// preview (agentcloud dev): validated, built, tested, gated like a
// release (a new capability waits for review) and recorded in the ledger
// as a preview, never signed or released; production keeps its version.
const RunKindPreview = "preview"

// StagePreview is a preview run's last stage: the agent's preview
// sessions run the version.
const StagePreview = "preview"

// PreviewStages lists the stages of a preview run in the order they run.
func PreviewStages() []string {
	return []string{StageValidate, StageBuild, StageTest, StageGate, StageReview, StageRecord, StagePreview}
}

// Configuration targets a run may change.
const (
	ConfigPolicies     = "policies"      // the user Cedar policy set
	ConfigTrustedHosts = "trusted-hosts" // host patterns that keep integrity
	ConfigPrivateHosts = "private-hosts" // host patterns whose data is private
	ConfigToolPins     = "tool-pins"     // an upstream's pinned tool definitions (Name: the upstream)
	ConfigSecret       = "secret"        // a secret's metadata (Name: the secret)
)

// PipelineConfigChange is what a configuration run changes: the target
// (and its name, for a secret or an upstream), the digests of the value in
// force when the run was made and of the proposed one, what the change
// adds (new hosts, tools), and a one-line summary.
type PipelineConfigChange struct {
	Target string `json:"target"`
	Name   string `json:"name,omitempty"`
	// Owner is who owns the target (a secret's owner), "" for the
	// platform's own configuration.
	Owner   string   `json:"owner,omitempty"`
	Digest  string   `json:"digest"`
	Parent  string   `json:"parent,omitempty"`
	Adds    []string `json:"adds,omitempty"`
	Removes []string `json:"removes,omitempty"`
	Summary string   `json:"summary,omitempty"`
}
