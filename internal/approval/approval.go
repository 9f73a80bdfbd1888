// Package approval owns pending approvals: requests denied by an approvable
// policy (such as the lethal trifecta) that a person may approve or deny.
// Approvals are kept in a store.KV bucket, so they survive restarts and are
// shared by every node. An approved approval lets exactly one retry of the
// same request through (Consume). The package does not decide what is
// approvable (internal/policy does) nor who may resolve (the daemon asks the
// policy engine); it records who resolved and when.
package approval

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/store"
)

// Statuses.
const (
	Pending  = "pending"
	Approved = "approved"
	Denied   = "denied"
	Used     = "used"
)

// Errors.
var (
	ErrNotFound = errors.New("approval not found")
	ErrResolved = errors.New("approval already resolved")
)

const keyPrefix = "approval"

// record is what the bucket holds: the wire form plus its match key.
type record struct {
	api.Approval
	Key string `json:"key"`
}

// Store keeps approvals.
type Store struct {
	kv  store.KV
	now func() time.Time

	mu      sync.Mutex               // guards waiters
	waiters map[string]chan struct{} // closed when the approval is resolved here
}

// New returns a Store over kv; now is the clock (nil: time.Now).
func New(kv store.KV, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{kv: kv, now: now, waiters: map[string]chan struct{}{}}
}

// waitPoll is how often Wait rereads an approval, for resolutions made on
// another node; resolutions on this node wake it at once.
const waitPoll = 250 * time.Millisecond

// Wait blocks until approval id is no longer pending or ctx ends, and
// returns it as last read (still pending when ctx ended first). A read
// cut short by ctx's end is not an error: the approval is still pending as
// far as the caller can know (on a loaded node the read itself may outlast
// a short wait).
func (s *Store) Wait(ctx context.Context, id string) (api.Approval, error) {
	last := api.Approval{ID: id, Status: Pending}
	for {
		s.mu.Lock()
		ch, ok := s.waiters[id]
		if !ok {
			ch = make(chan struct{})
			s.waiters[id] = ch
		}
		s.mu.Unlock()
		a, err := s.Get(ctx, id)
		if err != nil && ctx.Err() != nil {
			return last, nil
		}
		if err != nil || a.Status != Pending {
			return a, err
		}
		last = a
		t := time.NewTimer(waitPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return a, nil
		case <-ch:
		case <-t.C:
		}
		t.Stop()
	}
}

// wake releases the waiters of id.
func (s *Store) wake(id string) {
	s.mu.Lock()
	if ch, ok := s.waiters[id]; ok {
		close(ch)
		delete(s.waiters, id)
	}
	s.mu.Unlock()
}

// MatchKey identifies "the same request" for approval purposes.
func MatchKey(principal, action, resource string) string {
	return principal + "\x00" + action + "\x00" + resource
}

func newID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "ap_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// Request returns the pending approval for the same request, creating one
// if there is none. created reports whether it is new.
func (s *Store) Request(ctx context.Context, a api.Approval) (out api.Approval, created bool, err error) {
	key := MatchKey(a.Principal, a.Action, a.Resource)
	all, err := s.all(ctx)
	if err != nil {
		return api.Approval{}, false, err
	}
	for _, r := range all {
		if r.Key == key && r.Status == Pending {
			return r.Approval, false, nil
		}
	}
	a.ID = newID()
	a.Status = Pending
	a.Created = s.now().UTC()
	b, _ := json.Marshal(record{Approval: a, Key: key})
	if _, err := s.kv.Create(ctx, store.Key(keyPrefix, a.ID), b); err != nil {
		return api.Approval{}, false, fmt.Errorf("request approval: %w", err)
	}
	return a, true, nil
}

// Consume marks one approved approval for the request as used and returns
// it; ok is false when there is none.
func (s *Store) Consume(ctx context.Context, principal, action, resource string) (api.Approval, bool, error) {
	key := MatchKey(principal, action, resource)
	all, err := s.all(ctx)
	if err != nil {
		return api.Approval{}, false, err
	}
	for _, r := range all {
		if r.Key != key || r.Status != Approved {
			continue
		}
		r.Status = Used
		b, _ := json.Marshal(r)
		if _, err := s.kv.Update(ctx, store.Key(keyPrefix, r.ID), b, r.rev); err != nil {
			if errors.Is(err, store.ErrConflict) {
				continue // someone else used it
			}
			return api.Approval{}, false, fmt.Errorf("consume approval %s: %w", r.ID, err)
		}
		return r.Approval, true, nil
	}
	return api.Approval{}, false, nil
}

// Get returns one approval.
func (s *Store) Get(ctx context.Context, id string) (api.Approval, error) {
	r, err := s.get(ctx, id)
	return r.Approval, err
}

// Resolve approves or denies a pending approval, recording by.
func (s *Store) Resolve(ctx context.Context, id string, approve bool, by string) (api.Approval, error) {
	r, err := s.get(ctx, id)
	if err != nil {
		return api.Approval{}, err
	}
	if r.Status != Pending {
		return r.Approval, fmt.Errorf("approval %s is %s: %w", id, r.Status, ErrResolved)
	}
	r.Status = Denied
	if approve {
		r.Status = Approved
	}
	r.ResolvedBy, r.ResolvedAt = by, s.now().UTC()
	b, _ := json.Marshal(r)
	if _, err := s.kv.Update(ctx, store.Key(keyPrefix, id), b, r.rev); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return api.Approval{}, fmt.Errorf("approval %s changed meanwhile: %w", id, ErrResolved)
		}
		return api.Approval{}, fmt.Errorf("resolve approval %s: %w", id, err)
	}
	s.wake(id)
	return r.Approval, nil
}

// List returns approvals, newest first, optionally only those with status.
func (s *Store) List(ctx context.Context, status string) ([]api.Approval, error) {
	all, err := s.all(ctx)
	if err != nil {
		return nil, err
	}
	out := []api.Approval{}
	for _, r := range all {
		if status == "" || r.Status == status {
			out = append(out, r.Approval)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

type recRev struct {
	record
	rev uint64
}

func (s *Store) get(ctx context.Context, id string) (recRev, error) {
	e, err := s.kv.Get(ctx, store.Key(keyPrefix, id))
	if errors.Is(err, store.ErrNotFound) {
		return recRev{}, fmt.Errorf("approval %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return recRev{}, fmt.Errorf("approval %s: %w", id, err)
	}
	var r record
	if err := json.Unmarshal(e.Value, &r); err != nil {
		return recRev{}, fmt.Errorf("approval %s: %w", id, err)
	}
	return recRev{record: r, rev: e.Revision}, nil
}

func (s *Store) all(ctx context.Context) ([]recRev, error) {
	keys, err := s.kv.Keys(ctx, keyPrefix)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	out := make([]recRev, 0, len(keys))
	for _, k := range keys {
		parts, err := store.KeyParts(k)
		if err != nil || len(parts) != 2 {
			continue
		}
		r, err := s.get(ctx, parts[1])
		if err != nil {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}
