// Package session runs durable agent sessions: actors addressed as
// /agents/{agent}/sessions/{id}, each backed by an isolate. It owns agent
// deployment records (immutable, content-addressed versions), the session
// lifecycle (create on first use, one request at a time, hibernate to a heap
// snapshot when idle or when the memory budget is reached, restore on the
// next request), durable per-session state with atomic per-request commits
// released only once durable (the output gate), alarms, streamed responses
// (stream.go) and the WebSockets sessions accept (sockets.go).
//
// It does not own the JavaScript engine (internal/isolate), storage
// (internal/store), bundle parsing (internal/bundle), egress policy (the
// Fetcher it is given), authorization (the DeployAuthorizer it is given) or
// HTTP: its API is internal/session/sessionhttp.
package session

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Fetcher sends an agent's outbound request (the egress proxy).
type Fetcher interface {
	Fetch(ctx context.Context, caller Caller, req *http.Request) (*http.Response, error)
}

// Caller names the session making an outbound request or a service call.
type Caller struct {
	Agent   string
	Session string
	// ID is the session's SPIFFE ID from the Identity provider ("" without one).
	ID string
	// Egress is the agent manifest's host allowlist.
	Egress []string
	// Tools is the agent manifest's tool list (what it asks to call).
	Tools []string
}

// Service is a platform capability agent code reaches as env.<name> (tools,
// ai, sandbox). Args and the result are JSON. An *isolate.HostError
// surfaces in JavaScript as the Error class it names.
type Service interface {
	Invoke(ctx context.Context, caller Caller, method string, args []byte) ([]byte, error)
}

// Config configures a Manager.
type Config struct {
	Store   *store.Store
	Runtime *isolate.Runtime
	// ReadCache is the memory of the store read caches of session records
	// and heaps (0: defaultReadCache; negative: none).
	ReadCache int64
	// MemoryBudget caps the linear memory of all live isolates together;
	// least recently used sessions are hibernated past it (default 4 GiB).
	MemoryBudget int64
	// JanitorInterval is how often idle sessions are looked for (default 1s).
	JanitorInterval time.Duration
	// TrimAfter is how long a live session stays quiet before its isolate
	// gives back memory it can do without (isolate.Isolate.Trim; default
	// 1s). A session is also trimmed right after the request that
	// activated it.
	TrimAfter time.Duration
	// InitTimeout caps agent initialisation (module top level, wasm
	// _initialize, a template build, an activation) below the manifest's
	// wall_ms (default DefaultInitTimeout).
	InitTimeout time.Duration
	// Now is the clock of every timestamp, idle and alarm decision (default
	// time.Now). Elapsed-time measurements (CPU accounting, trim pacing)
	// use the monotonic clock instead.
	Now    func() time.Time
	Logger *slog.Logger
	// Sockets bounds the WebSockets sessions hold (sockets.go).
	Sockets SocketLimits
	// Metrics registers the manager's collectors (metrics.go); nil: none.
	Metrics prometheus.Registerer
	// Logs bounds the log streams of live sessions (logs.go).
	Logs LogLimits
	// CacheBytes and CacheEntryBytes bound the node's Cache API storage
	// (cache.go): all entries together and each one (0: the defaults,
	// isolate.DefaultCacheBytes and DefaultCacheEntryBytes).
	CacheBytes, CacheEntryBytes int64
}

type sessKey struct{ agent, id string }

// defaultReadCache is Config.ReadCache's default: the read caches of the
// session records (a fifth) and hibernated heaps (store KVOptions.ReadCache).
// An activation reads both, and a read from a JetStream block that went
// cold costs ~20 ms here. 160 MiB hold the last ~100,000 records and
// ~40,000 heaps of ~3 KB written by this process (a single node only):
// memfds, RAM outside the Go heap.
const defaultReadCache = 160 << 20

// Manager owns every live session of this node.
type Manager struct {
	cfg Config
	// b are the parts built after the Manager, handed over once by Start
	// and read-only after it (bindings.go).
	b Bindings
	// agentCache mirrors the agents bucket (agentcache.go).
	agentCache agentCache
	log        *slog.Logger
	now        func() time.Time

	agents    store.KV // agent name -> agentRecord
	versions  store.KV // agent.digest -> versionRecord
	bundles   store.Blobs
	meta      store.KV    // agent.session -> Meta
	state     store.KV    // agent.session.key -> JSON value
	txns      store.KV    // agent.session -> pending multi-key commit
	snapshots store.KV    // agent.session -> heap snapshot (or a pointer into heaps)
	heaps     store.Blobs // snapshots larger than one store record (snapshots.go)
	alarmKV   store.KV    // agent.session -> alarm time

	mu       sync.Mutex // guards sessions, lru and liveMem
	sessions map[sessKey]*session
	lru      *list.List // of *session, most recent at front
	liveMem  int64

	// caches is the node's Cache API storage (cache.go).
	caches *isolate.CacheStore

	vmu    sync.Mutex          // guards versionCache
	vcache map[string]*version // digest -> loaded version (template built lazily)
	alarms *alarmScheduler
	stop   chan struct{}
	wg     sync.WaitGroup
	trims  atomic.Int64
	// hibPeak is the most hibernations a sweep or shutdown ran at once.
	hibPeak atomic.Int32
	// lastActivation is when the latest activation started (UnixNano).
	lastActivation atomic.Int64
	closeErr       error
	sockets        *socketHub
	logs           *logBuffer
	// routeMu serialises SetRouting and DeleteVersion on this node
	// (routing.go).
	routeMu sync.Mutex
	met     *metrics // nil: no metrics
	// txnIdx knows, on one node, which sessions may have a pending
	// multi-key commit (txnindex.go).
	txnIdx txnIndex
}

// session is one addressable actor. mu is the input gate: it is held for a
// whole request, so a session runs one request at a time. Lock order:
// session.mu before Manager.mu.
type session struct {
	key  sessKey
	mu   sync.Mutex
	iso  instance // nil when not activated
	ver  *version
	meta Meta
	// created holds the durability wait of the record's Create when
	// activate made a new session: the call that activated it waits for it
	// with its own writes (recordDurable), before s.mu is released.
	created store.Deferred
	// gone is set (under mu) when the session left the live map; a request
	// that finds it set looks the session up again.
	gone       bool
	lastActive time.Time // guarded by Manager.mu
	elem       *list.Element
	mem        int64
	digest     string // the live version's digest, guarded by Manager.mu
	// fresh is set (under mu) on activation and cleared by the first
	// request; trimmed says the isolate was trimmed since its last request.
	fresh   bool
	trimmed atomic.Bool
	// trimHeld says mu is held by a trim, not a request: the sweep waits
	// for a trim rather than take the session for busy.
	trimHeld atomic.Bool
	// spiffeID is the identity attached at activation (under mu).
	spiffeID string
	// epoch is the ownership epoch it was activated under (owner.go).
	epoch uint64
	// fences are the fence keys claimed at activation (fence.go); lost
	// says the store refused a write under them: another node took it.
	fences *fences
	lost   bool
	// cpu watches the CPU-time limit of the running call (cpuwatch.go).
	cpu cpuWatch
}

// New opens the session buckets. Start begins background work.
func New(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.Store == nil || cfg.Runtime == nil {
		return nil, errors.New("session: Store and Runtime are required")
	}
	if cfg.MemoryBudget <= 0 {
		cfg.MemoryBudget = 4 << 30
	}
	if cfg.JanitorInterval <= 0 {
		cfg.JanitorInterval = time.Second
	}
	if cfg.TrimAfter <= 0 {
		cfg.TrimAfter = time.Second
	}
	if cfg.InitTimeout <= 0 {
		cfg.InitTimeout = DefaultInitTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, now: cfg.Now, sockets: newSocketHub(cfg.Sockets),
		caches:   isolate.NewCacheStore(cfg.CacheBytes, cfg.CacheEntryBytes, cfg.Now),
		logs:     newLogBuffer(cfg.Logs, uint64(time.Now().UnixMicro())),
		sessions: map[sessKey]*session{}, lru: list.New(), vcache: map[string]*version{}, stop: make(chan struct{})}
	var err error
	kv := func(name, desc string, maxValue int32, readCache int64) store.KV {
		if err != nil {
			return nil
		}
		var b store.KV
		b, err = cfg.Store.KV(ctx, name, store.KVOptions{Description: desc, MaxValueSize: maxValue, ReadCache: readCache})
		return b
	}
	m.agents = kv("agents", "agent name -> current version", 0, 0)
	m.versions = kv("agent_versions", "immutable agent versions", 0, 0)
	rc := cfg.ReadCache
	if rc == 0 {
		rc = defaultReadCache
	}
	rc = max(rc, 0)
	m.meta = kv("sessions", "session metadata", 0, rc/5)
	m.state = kv("session_state", "durable session key-value state", 0, 0)
	m.txns = kv("session_txns", "multi-key commits in flight", 0, 0)
	m.snapshots = kv("session_snapshots", "hibernated session heaps", 0, rc-rc/5)
	m.alarmKV = kv("session_alarms", "scheduled session alarms", 0, 0)
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	if m.bundles, err = cfg.Store.Blobs(ctx, "agent_bundles"); err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	if m.heaps, err = cfg.Store.Blobs(ctx, "session_heaps"); err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	m.alarms = newAlarmScheduler(m)
	if m.met, err = newMetrics(cfg.Metrics, m); err != nil {
		return nil, fmt.Errorf("session metrics: %w", err)
	}
	return m, nil
}

// Start takes the manager's bindings (bindings.go), loads scheduled alarms
// and starts the janitor.
func (m *Manager) Start(ctx context.Context, b Bindings) error {
	m.b = b
	if err := m.resumeDeletes(ctx); err != nil {
		return err
	}
	if err := m.alarms.load(ctx, nil); err != nil {
		return err
	}
	m.met.countStored(ctx, m)
	watchCtx, stopWatch := context.WithCancel(context.Background())
	if err := m.agentCache.watch(watchCtx, m.agents); err != nil {
		stopWatch()
		return err
	}
	m.txnIdx.start(watchCtx, b.Owner != nil || !m.cfg.Store.Exclusive(), func(ctx context.Context) ([]string, error) { return m.txns.Keys(ctx, "") },
		&m.wg, func(err error) { m.log.Warn("list pending commits: every activation reads them", "err", err) })
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		<-m.stop
		stopWatch()
	}()
	m.wg.Add(2)
	go m.janitor()
	go m.alarms.run(m.stop, &m.wg)
	return nil
}

// Close hibernates every live session (so globals survive a restart) and
// stops background work.
func (m *Manager) Close(ctx context.Context) error {
	select {
	case <-m.stop:
		return m.closeErr
	default:
	}
	close(m.stop)
	m.logs.close()
	m.sockets.closeAll()
	m.wg.Wait()
	m.mu.Lock()
	live := make([]*session, 0, len(m.sessions))
	for _, s := range m.sessions {
		live = append(live, s)
	}
	m.mu.Unlock()
	// Lock waits for a request or background trim in flight.
	errs := m.hibernateAll(ctx, live, func(s *session) bool { s.mu.Lock(); return true },
		func(*session) string { return leaveShutdown })
	if len(errs) == 0 {
		m.met.saveStoredCount(ctx, m)
	}
	m.closeErr = errors.Join(errs...)
	return m.closeErr
}

// hibernateWorkers is how many sessions a sweep or a shutdown hibernates at
// once: their snapshots use every core and their store writes share fsyncs
// (the store's group commit), where one at a time each waited for its own.
const hibernateWorkers = 8

// hibernateAll hibernates ss, hibernateWorkers at a time. lock takes a
// session's lock (false: leave it be, unlocked); reason is why, for the
// metrics. It returns the errors.
func (m *Manager) hibernateAll(ctx context.Context, ss []*session, lock func(*session) bool, reason func(*session) string) []error {
	var (
		mu       sync.Mutex
		errs     []error
		next     = make(chan *session)
		wg       sync.WaitGroup
		inflight atomic.Int32
	)
	for range min(hibernateWorkers, len(ss)) {
		wg.Go(func() {
			for s := range next {
				if !lock(s) {
					continue
				}
				if !s.gone {
					if n := inflight.Add(1); n > m.hibPeak.Load() {
						m.hibPeak.Store(n) // only a statistic: a lost race is fine
					}
					err := m.hibernate(ctx, s, reason(s))
					inflight.Add(-1)
					if err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				}
				s.mu.Unlock()
			}
		})
	}
	for _, s := range ss {
		next <- s
	}
	close(next)
	wg.Wait()
	return errs
}

// lookup returns the live-map entry for a session, creating an empty one.
func (m *Manager) lookup(k sessKey) *session {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sessions[k]
	if s == nil {
		s = &session{key: k}
		m.sessions[k] = s
	}
	return s
}

// acquire returns the session with its input gate held and its isolate active.
func (m *Manager) acquire(ctx context.Context, agent, id string) (*session, error) {
	if err := CheckAddr(agent, id); err != nil {
		return nil, err
	}
	k := sessKey{agent, id}
	for {
		s := m.lookup(k)
		s.mu.Lock()
		if s.gone {
			s.mu.Unlock()
			continue
		}
		epoch, owned := m.owns(k)
		if !owned || s.iso != nil && (epoch != s.epoch || s.lost) {
			// Another node owns it, or owned it since this heap was
			// activated: the heap here is stale.
			m.discardLocked(s)
			s.mu.Unlock()
			if !owned {
				return nil, notOwner(k)
			}
			continue
		}
		if s.iso != nil && m.unserved(ctx, s) {
			// Its version stopped serving (a rollout or rollback on
			// another node): the session moves now, at its next request.
			m.retireLocked(s)
			s.mu.Unlock()
			continue
		}
		if s.iso == nil {
			m.lastActivation.Store(time.Now().UnixNano())
			f, err := m.claimFences(ctx, k, epoch)
			if err != nil {
				m.forget(s)
				s.mu.Unlock()
				if isFencedOut(err) {
					return nil, notOwner(k)
				}
				return nil, err
			}
			s.fences = f
			if err := m.tracedActivate(ctx, s); err != nil {
				m.met.activationFailed()
				// A record created before the failure stays: the next
				// activation finds it and may answer without a round of
				// its own, so it must be durable first.
				if werr := s.created.Wait(); werr != nil {
					err = errors.Join(err, fmt.Errorf("create session: %w", werr))
				}
				m.forget(s)
				s.mu.Unlock()
				return nil, err
			}
			if !waitsForRecord(ctx) {
				if err := m.recordDurable(s); err != nil {
					s.mu.Unlock()
					return nil, err
				}
			}
			s.epoch = epoch
		}
		return s, nil
	}
}

// forget removes s from the live map; s.mu must be held.
func (m *Manager) forget(s *session) {
	s.gone = true
	m.releaseIdentity(s)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sessions[s.key] == s {
		delete(m.sessions, s.key)
	}
	if s.elem != nil {
		m.lru.Remove(s.elem)
		s.elem = nil
	}
	m.liveMem -= s.mem
	s.mem = 0
}

// touch marks s used now and accounts its memory; s.mu must be held.
func (m *Manager) touch(s *session) {
	mem := int64(0)
	if s.iso != nil {
		mem = int64(s.iso.MemoryBytes())
	}
	m.mu.Lock()
	s.lastActive = m.now()
	if s.ver != nil {
		s.digest = s.ver.rec.Digest
	}
	if s.elem == nil {
		s.elem = m.lru.PushFront(s)
	} else {
		m.lru.MoveToFront(s.elem)
	}
	m.liveMem += mem - s.mem
	s.mem = mem
	m.mu.Unlock()
}

// janitor hibernates idle sessions and enforces the memory budget.
func (m *Manager) janitor() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.JanitorInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.sweep(context.Background())
		}
	}
}

// sweep hibernates sessions idle past their agent's idle time, then least
// recently used ones while live memory is over budget.
func (m *Manager) sweep(ctx context.Context) {
	now := m.now()
	var victims, quiet []*session
	evicted := map[*session]bool{} // victims over the memory budget
	m.mu.Lock()
	over := m.liveMem - m.cfg.MemoryBudget
	for e := m.lru.Back(); e != nil; e = e.Prev() {
		s := e.Value.(*session)
		idle := time.Duration(0)
		if s.ver != nil {
			idle = s.ver.idle
		}
		switch {
		case over > 0:
			victims = append(victims, s)
			evicted[s] = true
			over -= s.mem
		case idle > 0 && now.Sub(s.lastActive) >= idle:
			victims = append(victims, s)
		case now.Sub(s.lastActive) >= m.cfg.TrimAfter && !s.trimmed.Load():
			quiet = append(quiet, s)
		}
	}
	m.mu.Unlock()
	for _, s := range quiet {
		if s.mu.TryLock() { // busy: not quiet after all
			m.trimLocked(s)
			s.mu.Unlock()
		}
	}
	// TryLock: a busy session is not idle after all.
	errs := m.hibernateAll(ctx, victims, func(s *session) bool {
		if !lockUnlessBusy(s) {
			return false
		}
		if s.iso == nil {
			s.mu.Unlock()
			return false
		}
		return true
	}, func(s *session) string {
		if evicted[s] {
			return leaveMemory
		}
		return leaveIdle
	})
	for _, err := range errs {
		m.log.Warn("hibernate", "err", err)
	}
}

// Stats are the manager's counters.
type Stats struct {
	Live       int
	LiveMemory int64
	// Trims counts isolates trimmed while their sessions were quiet.
	Trims int64
}

// Stats returns live session counts.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Stats{Live: m.lru.Len(), LiveMemory: m.liveMem, Trims: m.trims.Load()}
}

// freshTrimDelay is how long after the request that activated a session
// its isolate is trimmed, if it has been quiet since. The trim also waits
// for a lull of trimLull in activations (at most trimMaxWaits more delays),
// so it does not compete with a burst of them for the CPU.
const (
	freshTrimDelay = 50 * time.Millisecond
	trimLull       = 10 * time.Millisecond
	trimMaxWaits   = 10
)

// requestDone runs after each request (s.mu held): the session is no longer
// trimmed, and a session just activated is trimmed shortly after if it
// stays quiet, since activation leaves the most to give back (restore
// buffers, grown stacks) and most sessions go quiet after a request or two.
// Sessions hibernated or busy by then are skipped (the janitor trims busy
// ones once quiet).
func (m *Manager) requestDone(s *session) {
	s.trimmed.Store(false)
	if !s.fresh {
		return
	}
	s.fresh = false
	iso := s.iso
	waits := 0
	var fire func()
	fire = func() {
		if waits < trimMaxWaits && time.Duration(time.Now().UnixNano()-m.lastActivation.Load()) < trimLull {
			waits++
			time.AfterFunc(freshTrimDelay, fire)
			return
		}
		if !s.mu.TryLock() {
			return
		}
		s.trimHeld.Store(true)
		defer func() { s.trimHeld.Store(false); s.mu.Unlock() }()
		if s.iso != iso || s.trimmed.Load() {
			return
		}
		m.mu.Lock()
		quiet := m.now().Sub(s.lastActive) >= freshTrimDelay/2
		m.mu.Unlock()
		if quiet {
			m.trimLocked(s)
		}
	}
	time.AfterFunc(freshTrimDelay, fire)
}

// lockUnlessBusy locks s unless a request holds it. A trim holding it
// (the one after activation) is waited for: it takes milliseconds, and a
// session being trimmed is quiet, not busy.
func lockUnlessBusy(s *session) bool {
	for range 1000 {
		if s.mu.TryLock() {
			return true
		}
		if !s.trimHeld.Load() {
			return false
		}
		time.Sleep(100 * time.Microsecond)
	}
	return false
}

// trimLocked trims s's isolate; s.mu must be held.
func (m *Manager) trimLocked(s *session) {
	if s.gone || s.iso == nil {
		return
	}
	if err := s.iso.Trim(); err != nil {
		m.log.Debug("trim", "agent", s.key.agent, "session", s.key.id, "err", err)
	}
	s.trimmed.Store(true)
	m.trims.Add(1)
}
