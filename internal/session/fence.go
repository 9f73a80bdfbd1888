package session

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/internal/store"
)

// Store fencing. In a cluster the in-memory ownership check (owner.go) is
// not enough: a node whose lease was taken while it was paused or cut off
// still believes it owns its sessions until its clock says otherwise, and
// a write it sends in that window must not land. So every durable write
// of a session (its state, its multi-key commit record, its hibernated
// heap) is a fenced write (store.Fence): the store accepts it only while
// the session's fence key in the same bucket is at the revision this node
// wrote when it activated the session, checked in the same JetStream
// operation. A node activating a session first claims the fence keys with
// its ownership epoch, which only grows; once it has, every write of the
// previous owner is refused, and everything the previous owner wrote
// before is there for the new owner to load, since it reads only after
// claiming. Without an Owner (one node) nothing is fenced.

// fenceToken is the first token of a fence key: agent names start with a
// letter, so no session's key begins with it.
const fenceToken = "_fence"

// fenceKey is the fence key of session k in each of its buckets.
func fenceKey(k sessKey) string { return store.Key(fenceToken, k.agent, k.id) }

// errFencedOut: a newer epoch holds the session's fence.
var errFencedOut = errors.New("session: a newer owner holds the fence")

// fences are a live session's claimed fence keys, one per bucket it
// writes; nil without an Owner.
type fences struct {
	state, txns, snapshots store.Fence
}

// claimFences writes epoch into k's fence keys unless a newer epoch is
// there (errFencedOut). The three buckets are claimed at once: this is on
// the path of a session's first request after a failover.
func (m *Manager) claimFences(ctx context.Context, k sessKey, epoch uint64) (*fences, error) {
	if m.b.Owner == nil {
		return nil, nil
	}
	f := &fences{}
	claims := []struct {
		kv  store.KV
		to  *store.Fence
		err error
	}{{kv: m.state, to: &f.state}, {kv: m.txns, to: &f.txns}, {kv: m.snapshots, to: &f.snapshots}}
	var wg sync.WaitGroup
	for i := range claims {
		c := &claims[i]
		wg.Go(func() { *c.to, c.err = claimFence(ctx, c.kv, fenceKey(k), epoch) })
	}
	wg.Wait()
	for _, c := range claims {
		if isFencedOut(c.err) {
			return nil, c.err
		}
	}
	for _, c := range claims {
		if c.err != nil {
			return nil, c.err
		}
	}
	return f, nil
}

// claimFence sets key to epoch by compare-and-set and returns the fence at
// the revision written. The stream's leader refuses a compare-and-set of
// a key while a fenced write that checks it is in flight: that conflict is
// retried while the key is unchanged.
func claimFence(ctx context.Context, kv store.KV, key string, epoch uint64) (store.Fence, error) {
	val := []byte(strconv.FormatUint(epoch, 10))
	wait := time.Millisecond
	for attempt := 0; ; attempt++ {
		e, err := kv.Get(ctx, key)
		var rev uint64
		switch {
		case isNotFound(err):
			rev, err = kv.Create(ctx, key, val)
		case err != nil:
			return store.Fence{}, fmt.Errorf("fence: %w", err)
		default:
			held, perr := strconv.ParseUint(string(e.Value), 10, 64)
			switch {
			case perr == nil && held > epoch:
				return store.Fence{}, errFencedOut
			case perr == nil && held == epoch:
				// Written by this node under this ownership (an epoch is
				// one member's lease take): still ours.
				return store.Fence{Key: key, Revision: e.Revision}, nil
			}
			rev, err = kv.Update(ctx, key, val, e.Revision)
		}
		if err == nil {
			return store.Fence{Key: key, Revision: rev}, nil
		}
		if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrExists) || attempt >= 40 {
			return store.Fence{}, fmt.Errorf("fence: %w", err)
		}
		select {
		case <-ctx.Done():
			return store.Fence{}, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// putFenced writes under f when fencing (f set), else plainly.
func putFenced(ctx context.Context, kv store.KV, f *store.Fence, key string, v []byte) error {
	var err error
	if f != nil {
		_, err = kv.PutFenced(ctx, key, v, *f)
	} else {
		_, err = kv.Put(ctx, key, v)
	}
	return err
}

// deleteFenced deletes under f when fencing (f set), else plainly.
func deleteFenced(ctx context.Context, kv store.KV, f *store.Fence, key string) error {
	if f != nil {
		return kv.DeleteFenced(ctx, key, *f)
	}
	return kv.Delete(ctx, key)
}

// The fence of s in each bucket (nil when not fencing).
func (s *session) stateFence() *store.Fence {
	if s.fences == nil {
		return nil
	}
	return &s.fences.state
}

func (s *session) txnsFence() *store.Fence {
	if s.fences == nil {
		return nil
	}
	return &s.fences.txns
}

func (s *session) snapshotsFence() *store.Fence {
	if s.fences == nil {
		return nil
	}
	return &s.fences.snapshots
}

// isFencedOut reports whether err says another node took the session.
func isFencedOut(err error) bool {
	return errors.Is(err, store.ErrFenced) || errors.Is(err, errFencedOut)
}
