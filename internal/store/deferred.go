package store

import (
	"context"
	"sync"
)

// Deferred puts off the durability wait of the writes made with its
// context (WithDeferred) until Wait, so a caller can publish a write, go on
// with other work, and wait for it together with its later writes: they
// share one group-commit round instead of waiting for two in series
// (docs/RATIONALE.md, "Why a new session's record is not waited for
// alone"). The writes are acknowledged by the server as usual (a Create
// still fails at once on an existing key); only the fsync wait moves.
// Without group commit (a cluster, an external server, a listener) a
// write is durable when the server acknowledges it and Wait has nothing
// to do. Only Create honours it.
type Deferred struct {
	mu     sync.Mutex
	gs     *groupSync
	ticket uint64
}

type deferredKey struct{}

// WithDeferred returns ctx whose Creates register their durability in d
// instead of waiting for it.
func WithDeferred(ctx context.Context, d *Deferred) context.Context {
	return context.WithValue(ctx, deferredKey{}, d)
}

// deferredOf returns the Deferred of ctx, or nil.
func deferredOf(ctx context.Context) *Deferred {
	d, _ := ctx.Value(deferredKey{}).(*Deferred)
	return d
}

// add records a write registered with gs under ticket.
func (d *Deferred) add(gs *groupSync, ticket uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gs = gs
	d.ticket = max(d.ticket, ticket)
}

// Pending reports whether a write waits for Wait.
func (d *Deferred) Pending() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ticket != 0
}

// Wait returns once every write registered in d is on disk, or the group
// commit's error. A nil d, or one with nothing registered, returns nil.
func (d *Deferred) Wait() error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	gs, ticket := d.gs, d.ticket
	d.mu.Unlock()
	if gs == nil || ticket == 0 {
		return nil
	}
	if err := gs.await(ticket); err != nil {
		return err
	}
	d.mu.Lock()
	if d.ticket == ticket {
		d.gs, d.ticket = nil, 0
	}
	d.mu.Unlock()
	return nil
}
