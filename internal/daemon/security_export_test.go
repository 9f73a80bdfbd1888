package daemon

import (
	"context"

	"github.com/agentcloud/agentcloud/internal/store"
)

// SessionSnapshotForTest returns the stored heap snapshot of a hibernated
// session, so tests can search isolate memory.
func SessionSnapshotForTest(ctx context.Context, d *Daemon, agent, id string) ([]byte, error) {
	kv, err := d.store.KV(ctx, "session_snapshots", store.KVOptions{Description: "hibernated session heaps"})
	if err != nil {
		return nil, err
	}
	e, err := kv.Get(ctx, store.Key(agent, id))
	if err != nil {
		return nil, err
	}
	return e.Value, nil
}

// BreakStoreConnectionForTest makes the NATS server close the daemon's
// store connection for good, as the long-key attack once did.
func BreakStoreConnectionForTest(d *Daemon) { d.store.InjectConnectionFault() }

// StoreRedialsForTest counts the store's connection replacements.
func StoreRedialsForTest(d *Daemon) uint64 { return d.store.Redials() }

// AuditSizeForTest reports the audit stream's records and bytes once
// everything recorded so far is written.
func AuditSizeForTest(ctx context.Context, d *Daemon) (records, bytes uint64, err error) {
	return d.sec.Audit().Size(ctx)
}

// SweepAuthFailuresForTest ends the current minute of the failed
// authentication budget, writing its summary records, as the minute's
// ticker would.
func SweepAuthFailuresForTest(ctx context.Context, d *Daemon) error {
	return d.sec.SweepAuthFailures(ctx)
}
