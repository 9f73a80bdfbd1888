package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/internal/store"
)

// tickParallel bounds the partitions one tick works on at once.
const tickParallel = 16

// tick is one heartbeat: rewrite the member record, then renew, release
// or take each partition as the desired owners say. Partitions are worked
// on concurrently, each write with its own deadline (opTimeout): while
// the bucket elects a leader (a member died) a write waits unanswered,
// and one after another they held up the whole tick, so the survivors
// took the dead member's partitions seconds after they could.
func (m *Member) tick(ctx context.Context) {
	m.mu.Lock()
	m.beat++
	rec := memberRecord{Node: m.cfg.Node, Addr: m.cfg.Addr, API: m.cfg.API, Version: m.cfg.Version, Draining: m.draining, Beat: m.beat}
	m.mu.Unlock()
	val, _ := json.Marshal(rec)
	wctx, cancel := context.WithTimeout(ctx, m.opTimeout())
	_, err := m.cfg.KV.Put(wctx, memberKey(m.cfg.Node), val)
	cancel()
	if err != nil && ctx.Err() == nil {
		m.log.Warn("cluster heartbeat failed", "err", err)
	}
	m.mu.Lock()
	switch {
	case err != nil:
		m.blind = true
	case m.blind:
		m.blind, m.back = false, m.cfg.Now()
	}
	m.mu.Unlock()
	candidates := m.candidates()
	sem := make(chan struct{}, tickParallel)
	var wg sync.WaitGroup
	var takenMu sync.Mutex
	var taken []int
	for p := range m.cfg.Partitions {
		if ctx.Err() != nil {
			break
		}
		want := desiredOwner(p, candidates)
		m.mu.Lock()
		h := m.held[p]
		m.mu.Unlock()
		var work func()
		switch {
		case h != nil && want != "" && want != m.cfg.Node:
			work = func() {
				if err := m.release(ctx, p); err != nil {
					m.log.Warn("cluster hand-off", "partition", p, "to", want, "err", err)
				}
			}
		case h != nil:
			work = func() { m.renew(ctx, p, h) }
		case want == m.cfg.Node:
			work = func() {
				if m.take(ctx, p) {
					takenMu.Lock()
					taken = append(taken, p)
					takenMu.Unlock()
				}
			}
		default:
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			work()
		})
	}
	wg.Wait()
	if len(taken) > 0 && m.cfg.Acquire != nil {
		slices.Sort(taken)
		m.cfg.Acquire(ctx, taken)
	}
}

// stale reports whether a record (a member's, or a lease) has gone
// unchanged for TTL while this member could see the bucket. While the
// bucket elects a leader nobody can write, so every live member's record
// ages too; a member that judged by age alone took the leases of the
// survivors along with the dead member's the moment the bucket came back,
// and handing them back cost seconds of 503s. So after this member's own
// writes failed, a record is stale only once its holder had two
// heartbeats since the bucket came back to renew it. Called with m.mu
// held.
func (m *Member) stale(o observed, now time.Time) bool {
	if now.Sub(o.at) < m.cfg.TTL {
		return false
	}
	return !m.blind && now.Sub(m.back) >= 2*m.cfg.Heartbeat
}

// opTimeout bounds one lease write: two heartbeats, and never past the
// point where the write could no longer keep the lease alive (Owned turns
// false TTL minus one heartbeat after the last renewal was sent). A write
// sent while the bucket elects a leader is never answered; the tick waits
// for its writes, so a longer bound kept the member from writing (and
// from seeing that the bucket is back) for that much longer after the
// election. A write that timed out is sent again at the next tick.
func (m *Member) opTimeout() time.Duration {
	return min(m.cfg.TTL-m.cfg.Heartbeat, 2*m.cfg.Heartbeat)
}

// candidates are the live members that are not draining (this member
// included unless it drains), sorted.
func (m *Member) candidates() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	var out []string
	if !m.draining {
		out = append(out, m.cfg.Node)
	}
	for k, o := range m.seen {
		if !strings.HasPrefix(k, memberPrefix+".") || m.stale(o, now) {
			continue
		}
		var r memberRecord
		if json.Unmarshal(o.value, &r) != nil || r.Node == "" || r.Draining || r.Node == m.cfg.Node {
			continue
		}
		if memberKey(r.Node) != k {
			continue // a record under another member's key
		}
		out = append(out, r.Node)
	}
	return sortedCopy(out)
}

// renew rewrites a held lease at the revision this member wrote last.
func (m *Member) renew(ctx context.Context, p int, h *held) {
	sent := m.cfg.Now()
	val, _ := json.Marshal(leaseRecord{Owner: m.cfg.Node, Epoch: h.epoch, Beat: h.beat + 1})
	wctx, cancel := context.WithTimeout(ctx, m.opTimeout())
	defer cancel()
	rev, err := m.cfg.KV.Update(wctx, leaseKey(p), val, h.rev)
	if errors.Is(err, store.ErrConflict) {
		// A renewal whose answer was lost (its deadline passed) may have
		// been written all the same: the lease is then still this
		// member's, one beat on.
		if e, gerr := m.cfg.KV.Get(wctx, leaseKey(p)); gerr == nil && bytes.Equal(e.Value, val) {
			rev, err = e.Revision, nil
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.held[p] != h {
		return
	}
	switch {
	case err == nil:
		h.rev, h.sentAt, h.beat = rev, sent, h.beat+1
		m.noteWrite(leaseKey(p), val, rev)
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
		// Taken by another member after this one went quiet for TTL.
		delete(m.held, p)
		m.log.Warn("cluster lease lost", "partition", p, "epoch", h.epoch)
	default:
		// Unreachable store: keep trying; Owned turns false on its own.
		if ctx.Err() == nil {
			m.log.Debug("cluster lease renewal failed", "partition", p, "err", err)
		}
	}
}

// take creates a free lease, or takes over one unchanged for TTL, and
// reports whether it did.
func (m *Member) take(ctx context.Context, p int) bool {
	key := leaseKey(p)
	m.mu.Lock()
	o, found := m.seen[key]
	stale := found && m.stale(o, m.cfg.Now())
	m.mu.Unlock()
	if found && !stale {
		return false // held by a live member; it hands over when it sees this one
	}
	sent := m.cfg.Now()
	val, _ := json.Marshal(leaseRecord{Owner: m.cfg.Node})
	var rev uint64
	var err error
	wctx, cancel := context.WithTimeout(ctx, m.opTimeout())
	defer cancel()
	if found {
		rev, err = m.cfg.KV.Update(wctx, key, val, o.rev)
	} else {
		rev, err = m.cfg.KV.Create(wctx, key, val)
	}
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrExists) {
			m.log.Debug("cluster lease take failed", "partition", p, "err", err)
		}
		return false
	}
	// The epoch is the revision that created or took the lease; write it
	// into the record with the first renewal.
	h := &held{rev: rev, epoch: rev, sentAt: sent}
	m.mu.Lock()
	m.noteWrite(key, val, rev)
	m.held[p] = h
	m.mu.Unlock()
	m.log.Debug("cluster lease taken", "partition", p, "epoch", rev, "from_stale", found)
	return true
}

// release stops owning p, runs Release and deletes the lease so the
// desired owner can create it.
func (m *Member) release(ctx context.Context, p int) error {
	m.mu.Lock()
	h := m.held[p]
	delete(m.held, p)
	m.mu.Unlock()
	if h == nil {
		return nil
	}
	var errs []error
	if m.cfg.Release != nil {
		errs = append(errs, m.cfg.Release(ctx, p))
	}
	// Delete only the lease this member wrote: if it changed meanwhile,
	// someone took it and it is not ours to delete.
	if e, err := m.cfg.KV.Get(ctx, leaseKey(p)); err == nil && e.Revision == h.rev {
		errs = append(errs, m.cfg.KV.Delete(ctx, leaseKey(p)))
	}
	return errors.Join(errs...)
}

func sortMembers(ms []MemberInfo) {
	slices.SortFunc(ms, func(a, b MemberInfo) int { return strings.Compare(a.Node, b.Node) })
}
