// Package cluster gives every session exactly one owner among the members
// of a cluster. Sessions hash into a fixed number of partitions
// (PartitionOf); each partition is held by one member through a lease in a
// replicated KV bucket of the store (NATS JetStream clustered: the
// consensus is JetStream's, nothing here elects anything).
//
// A Member announces itself by rewriting its member record every
// heartbeat and renews each lease it holds with a compare-and-set on the
// lease's revision. Liveness is judged only by what a member observes
// with its own monotonic clock: a record or lease that has not changed
// for TTL is gone, and only then may another member take the lease (a
// compare-and-set on the revision it saw). The holder stops regarding
// itself as owner earlier, TTL minus one heartbeat after it last sent a
// successful renewal, so an isolated member stops serving its partitions
// before anyone else can start (Owned is the fence to check before a
// commit); the revision that created or took a lease is its epoch, a
// fencing token that only grows.
//
// Which member should hold a partition is rendezvous hashing over the live
// members that are not draining, so a join or a loss moves about 1/n of
// the partitions. A holder that is no longer the desired owner runs
// Config.Release (the daemon hibernates the partition's sessions) and only
// then deletes its lease; the desired owner creates it anew. Drain makes a
// member give everything up before a restart.
//
// The package owns membership and leases. It does not forward requests,
// run sessions or open the store: the daemon does, asking OwnerOf where a
// partition's sessions live.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/store"
)

// Defaults of Config.
const (
	DefaultHeartbeat = 500 * time.Millisecond
	DefaultTTL       = 3 * time.Second
)

// Config configures a Member.
type Config struct {
	// Node is this member's name (api.IDNode), unique in the cluster.
	Node string
	// Addr is where other members reach this one (its peer listener,
	// where Forwarder sends requests).
	Addr string
	// API and Version are shown to operators (Members): the member's API
	// address and its software version.
	API, Version string
	// KV is the cluster bucket, replicated across the members.
	KV store.KV
	// Partitions is the number of partitions (DefaultPartitions); every
	// member must use the same.
	Partitions int
	// Heartbeat is how often records and leases are rewritten; TTL is how
	// long an unchanged one stays alive. TTL must be at least three
	// heartbeats.
	Heartbeat, TTL time.Duration
	// Acquire, if set, is called once per heartbeat with the partitions
	// this member took in it (sorted), so what a takeover loads (the
	// sessions' alarms) is read once for all of them, not once each.
	Acquire func(ctx context.Context, ps []int)
	// Release, if set, is called before this member hands partition p to
	// another (Owned(p) is already false then); the lease is deleted once
	// it returns. An error keeps the lease deleted anyway after logging:
	// the sessions' state is in the store, so the next owner restores it.
	Release func(ctx context.Context, p int) error
	Logger  *slog.Logger
	// Now is the clock (time.Now); it must be monotonic.
	Now func() time.Time
}

// memberRecord is the value of a member's key.
type memberRecord struct {
	Node     string `json:"node"`
	Addr     string `json:"addr,omitempty"`
	API      string `json:"api,omitempty"`
	Version  string `json:"version,omitempty"`
	Draining bool   `json:"draining,omitempty"`
	Beat     uint64 `json:"beat"`
}

// leaseRecord is the value of a partition's lease key.
type leaseRecord struct {
	Owner string `json:"owner"`
	Epoch uint64 `json:"epoch"`
	Beat  uint64 `json:"beat"`
}

// observed is the last value this member saw for a key and when, with
// what forwarding asks of it per request decoded once when it is seen:
// a lease's owner, a member record's peer address ("" if the value does
// not decode).
type observed struct {
	value []byte
	rev   uint64
	at    time.Time
	owner string // of a lease
	addr  string // of a member record
}

// newObserved is what this member notes for key's value seen at rev.
func newObserved(key string, value []byte, rev uint64, at time.Time) observed {
	o := observed{value: value, rev: rev, at: at}
	switch {
	case strings.HasPrefix(key, leasePrefix+"."):
		var l leaseRecord
		if json.Unmarshal(value, &l) == nil {
			o.owner = l.Owner
		}
	case strings.HasPrefix(key, memberPrefix+"."):
		var r memberRecord
		if json.Unmarshal(value, &r) == nil {
			o.addr = r.Addr
		}
	}
	return o
}

// held is a lease this member holds.
type held struct {
	rev    uint64    // revision of the last successful write
	epoch  uint64    // revision that created or took the lease
	sentAt time.Time // when the last successful write was sent
	beat   uint64
}

// Member is one node's part in the cluster. Its methods are safe for
// concurrent use.
type Member struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	seen     map[string]observed // by key, from the watch
	held     map[int]*held
	draining bool
	beat     uint64
	// blind is set while this member's own heartbeat write fails (the
	// bucket elects a leader, or is out of reach); back is when a write
	// first succeeded again. See stale.
	blind bool
	back  time.Time

	cancel context.CancelFunc
	done   chan struct{}
}

// Key prefixes in the cluster bucket.
const (
	memberPrefix = "member"
	leasePrefix  = "lease"
)

func memberKey(node string) string { return store.Key(memberPrefix, node) }
func leaseKey(p int) string        { return store.Key(leasePrefix, strconv.Itoa(p)) }

// New checks cfg and returns a Member; Start runs it.
func New(cfg Config) (*Member, error) {
	if p := api.CheckID("node", api.IDNode, cfg.Node); p != nil {
		return nil, p
	}
	if cfg.KV == nil {
		return nil, errors.New("cluster: no KV bucket")
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = DefaultPartitions
	}
	if cfg.Partitions < 1 || cfg.Partitions > 4096 {
		return nil, api.FieldErrorf(api.KindBadRequest, "partitions", "partitions %d: give 1 to 4096", cfg.Partitions)
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.TTL < 3*cfg.Heartbeat {
		return nil, api.FieldErrorf(api.KindBadRequest, "ttl", "ttl %v is less than three heartbeats (%v)", cfg.TTL, 3*cfg.Heartbeat)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Member{cfg: cfg, log: cfg.Logger, seen: map[string]observed{}, held: map[int]*held{}}, nil
}

// Start watches the bucket and runs the heartbeat loop until Close.
func (m *Member) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if _, err := m.cfg.KV.Watch(ctx, "", m.observe); err != nil {
		cancel()
		return fmt.Errorf("cluster: watch: %w", err)
	}
	m.cancel, m.done = cancel, make(chan struct{})
	m.tick(ctx)
	go m.run(ctx)
	return nil
}

// observe records one watched change with the time this member saw it.
func (m *Member) observe(ev store.WatchEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.seen[ev.Key]; ok && o.rev >= ev.Revision {
		return // this member's own write, noted when it was made
	}
	if ev.Deleted {
		delete(m.seen, ev.Key)
		return
	}
	m.seen[ev.Key] = newObserved(ev.Key, ev.Value, ev.Revision, m.cfg.Now())
}

// noteWrite records this member's own successful write at once, so what
// it reports (OwnerOf) never lags what it holds; the watch delivers the
// same revision later and is ignored. Called with m.mu held.
func (m *Member) noteWrite(key string, value []byte, rev uint64) {
	if o, ok := m.seen[key]; !ok || o.rev < rev {
		m.seen[key] = newObserved(key, value, rev, m.cfg.Now())
	}
}

func (m *Member) run(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(m.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.tick(ctx)
		}
	}
}

// Close gives up every partition (running Release for each), removes the
// member record and stops. After Close the member owns nothing.
func (m *Member) Close(ctx context.Context) error {
	if m.cancel == nil {
		return nil
	}
	m.cancel()
	<-m.done
	m.mu.Lock()
	ps := make([]int, 0, len(m.held))
	for p := range m.held {
		ps = append(ps, p)
	}
	m.mu.Unlock()
	var errs []error
	for _, p := range ps {
		errs = append(errs, m.release(ctx, p))
	}
	if err := m.cfg.KV.Delete(ctx, memberKey(m.cfg.Node)); err != nil {
		errs = append(errs, err)
	}
	m.cancel = nil
	return errors.Join(errs...)
}

// Drain marks the member draining, so the others become the desired owners
// of its partitions, and waits until it holds none (or ctx ends).
func (m *Member) Drain(ctx context.Context) error {
	m.mu.Lock()
	m.draining = true
	m.mu.Unlock()
	for {
		m.mu.Lock()
		n := len(m.held)
		m.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: drain with %d partitions left: %w", n, ctx.Err())
		case <-time.After(m.cfg.Heartbeat / 4):
		}
	}
}

// Owned reports whether this member owns partition p now, with the
// lease's fencing epoch: a commit for a session of p must check it first.
// It turns false TTL minus one heartbeat after the last renewal that
// succeeded was sent, before any other member may take the lease.
func (m *Member) Owned(p int) (epoch uint64, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.held[p]
	if h == nil || m.cfg.Now().Sub(h.sentAt) >= m.cfg.TTL-m.cfg.Heartbeat {
		return 0, false
	}
	return h.epoch, true
}

// OwnedCount is how many partitions this member owns now.
func (m *Member) OwnedCount() int {
	n := 0
	for p := range m.cfg.Partitions {
		if _, ok := m.Owned(p); ok {
			n++
		}
	}
	return n
}

// Partition is PartitionOf with this cluster's partition count.
func (m *Member) Partition(agent, session string) int {
	return PartitionOf(agent, session, m.cfg.Partitions)
}

// OwnerOf names the member that holds partition p as this member sees it,
// with its address; ok is false while nobody holds it (a hand-off or
// failover in progress: callers answer 503 with Retry-After).
func (m *Member) OwnerOf(p int) (node, addr string, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	o, found := m.seen[leaseKey(p)]
	if !found || m.stale(o, now) || o.owner == "" {
		return "", "", false
	}
	mo, found := m.seen[memberKey(o.owner)]
	if !found {
		return o.owner, "", true
	}
	return o.owner, mo.addr, true
}

// Locate finds the member whose name match selects, as this member sees
// it: its peer address and whether it is live (its record changed within
// TTL).
func (m *Member) Locate(match func(node string) bool) (node, addr string, live, found bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	for k, o := range m.seen {
		if !strings.HasPrefix(k, memberPrefix+".") {
			continue
		}
		var r memberRecord
		if json.Unmarshal(o.value, &r) != nil || r.Node == "" || memberKey(r.Node) != k || !match(r.Node) {
			continue
		}
		return r.Node, r.Addr, !m.stale(o, now), true
	}
	return "", "", false, false
}

// Partitions is the number of partitions.
func (m *Member) Partitions() int { return m.cfg.Partitions }

// Draining reports whether Drain was called.
func (m *Member) Draining() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.draining
}

// MemberInfo is one member as this member sees it.
type MemberInfo struct {
	Node     string
	Addr     string
	API      string
	Version  string
	Draining bool
	Live     bool
}

// Members lists the members this member has seen, sorted by name.
func (m *Member) Members() []MemberInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	var out []MemberInfo
	for k, o := range m.seen {
		if !strings.HasPrefix(k, memberPrefix+".") {
			continue
		}
		var r memberRecord
		if json.Unmarshal(o.value, &r) != nil || r.Node == "" {
			continue
		}
		out = append(out, MemberInfo{Node: r.Node, Addr: r.Addr, API: r.API, Version: r.Version, Draining: r.Draining,
			Live: !m.stale(o, now)})
	}
	sortMembers(out)
	return out
}
