// Package rollout owns gradual rollouts and rollbacks of agent versions: a
// deployment serves a stable version and, during a rollout, a canary
// version to a growing share of new sessions, in steps (10 % → 50 % →
// 100 % with pauses); each step's analysis compares the canary's error rate
// and p99 latency with the stable version's, and a canary worse than the
// thresholds is rolled back by itself. Every step, promotion and rollback
// is recorded in the ledger with the figures it rested on.
//
// The rollout state is durable in the store (one record per agent,
// replaced by compare-and-set), so a rollout survives kill -9 of the
// daemon and resumes; the routing itself (which versions serve which
// share) lives in the session manager's agent record (session.Routing),
// which follows the rollout state.
//
// It does not own how a session picks its version (internal/session), the
// pipeline that starts a rollout (internal/pipeline), the ledger
// (internal/ledger), or authorization (its routes, in rollouthttp, ask the
// Authorizer they are given).
package rollout
