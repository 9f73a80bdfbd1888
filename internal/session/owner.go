package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/agentcloud/agentcloud/api"
)

// Owner tells a member of a cluster which sessions it may run
// (Bindings.Owner). Each session has one owner at a time; the others refuse
// to activate it or commit for it. A nil Owner (one node) owns every
// session.
type Owner interface {
	// Owns reports whether this node owns session agent/id now, with the
	// fencing epoch of that ownership. The epoch only grows: a session
	// activated under one epoch is not served or committed under another,
	// since another node may have run it in between.
	Owns(agent, id string) (epoch uint64, ok bool)
}

// errNotOwner is wrapped by the problem a non-owner answers.
var errNotOwner = errors.New("session: not the owner")

// notOwner is the 503 problem for a session this node does not own (a
// hand-off or failover in progress; the client retries).
func notOwner(k sessKey) error {
	p := api.Errorf(api.KindUnavailable, "session %s/%s is moving to another node of the cluster: retry in a second", k.agent, k.id)
	p.RetryAfterSeconds = 1
	return fmt.Errorf("%w: %w", p, errNotOwner)
}

// owns is Owner.Owns, true for every session without an Owner.
func (m *Manager) owns(k sessKey) (uint64, bool) {
	if m.b.Owner == nil {
		return 0, true
	}
	return m.b.Owner.Owns(k.agent, k.id)
}

// fenced reports whether s may no longer commit or keep its heap: this
// node lost it, owns it again under a newer epoch, or the store refused a
// write of it (fence.go). s.mu must be held.
func (m *Manager) fenced(s *session) bool {
	epoch, ok := m.owns(s.key)
	return !ok || epoch != s.epoch || s.lost
}

// discardLocked drops s's isolate without saving it: its heap is not the
// one to keep (another node owns the session). s.mu must be held.
func (m *Manager) discardLocked(s *session) {
	if s.iso != nil {
		m.met.left(leaveFenced, 0)
		_ = s.iso.Close(context.Background())
		s.iso = nil
	}
	m.forget(s)
}

// HibernateWhere hibernates every live session match selects, saving its
// heap: the cluster calls it for a partition it hands to another node,
// while it still holds the lease (so nobody else runs those sessions yet)
// but no longer serves them.
func (m *Manager) HibernateWhere(ctx context.Context, match func(agent, id string) bool) error {
	m.mu.Lock()
	var live []*session
	for k, s := range m.sessions {
		if match(k.agent, k.id) {
			live = append(live, s)
		}
	}
	m.mu.Unlock()
	var errs []error
	for _, s := range live {
		s.mu.Lock()
		if !s.gone {
			if err := m.saveAndFree(ctx, s, leaveHandoff); err != nil {
				m.discardLocked(s)
				if !isFencedOut(err) { // else another node took it already
					errs = append(errs, err)
				}
			}
		}
		s.mu.Unlock()
	}
	return errors.Join(errs...)
}

// LoadAlarms schedules the stored alarms of the sessions match selects:
// the cluster calls it for a partition this node has just taken, since
// the alarms were set on the node that owned it before.
func (m *Manager) LoadAlarms(ctx context.Context, match func(agent, id string) bool) error {
	return m.alarms.load(ctx, match)
}
