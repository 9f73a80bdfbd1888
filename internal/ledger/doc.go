// Package ledger owns agentcloud's verifiable ledger: an append-only Merkle
// log (RFC 6962 hashing, golang.org/x/mod/sumdb/tlog) of typed entries —
// changes, test results, policy decisions, approvals, provenance, rollout
// steps, rollbacks and batches of audit-record digests — whose parents are
// named by hash, so the chain identity → change → test → policy → approval
// → deploy can be walked (Why) and proved.
//
// It publishes the log in the C2SP formats: signed checkpoints
// (tlog-checkpoint, a signed note with origin, size and root), hash tiles
// and entry bundles (tlog-tiles), and serves inclusion and consistency
// proofs that verify offline with only a checkpoint, the public key and the
// entry bytes (VerifyInclusion, VerifyConsistency). Verify re-derives the
// whole tree from the entries and checks every stored tile and every
// checkpoint ever signed, naming the first bad entry.
//
// Storage is internal/store: a Log (stream) of group-committed batch
// records is the one copy of the entries (a batch is one store write, one
// fsync, so many concurrent Appends cost one disk sync), a KV bucket holds
// the full hash tiles and the recovery marker, and a second Log every
// signed checkpoint. Partial tiles and the newest entries live in memory
// and are rebuilt from the log on Open. See docs/ARCHITECTURE.md
// ("Ledger") and docs/RATIONALE.md.
//
// The package records and proves; it decides nothing (the pipeline and the
// audit stream write to it) and it is not wired into the daemon yet. The
// HTTP routes are in ledgerhttp.
package ledger
