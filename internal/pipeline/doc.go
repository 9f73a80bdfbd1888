// Package pipeline is agentcloud's deploy pipeline: every change to an
// agent becomes a durable run that goes through validate → build → test →
// policy gate → review → sign → record → roll out, one stage at a time.
//
// A run is kept in internal/store (a KV record replaced by compare-and-set,
// and a Log of progress and log events), so it survives kill -9 of the
// daemon: Runner.Start resumes every run that had not ended, and each stage
// is idempotent or check-pointed (the version store is content-addressed,
// approvals are matched per run, signing is deterministic, ledger entries
// are stamped before they are appended and looked up before they are
// appended again, the release is a compare-and-set that accepts the
// version already current).
//
// Every stage's real work is behind a small interface (Versions, Tester,
// Gate, Reviews, Signer, Ledger, Rollout), so the daemon wires the session
// manager, the JS test runner (jstest), Cedar (gate.go), internal/approval,
// internal/pipeline/provenance, internal/ledger and internal/rollout. The
// HTTP routes are in pipelinehttp. The package is built but not yet wired
// into the daemon.
package pipeline
