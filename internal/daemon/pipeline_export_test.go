package daemon

import (
	"time"

	"github.com/agentcloud/agentcloud/internal/store"
)

// SetPipelineClock sets the clock of the node's pipeline runs and
// rollouts (step pauses pass without waiting).
func (d *Daemon) SetPipelineClock(f func() time.Time) { d.pipelineClock.Store(&f) }

// StoreForTest is the node's store (a test tampers with the ledger in it).
func (d *Daemon) StoreForTest() *store.Store { return d.store }
