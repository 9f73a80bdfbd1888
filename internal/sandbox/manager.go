package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// NetworkHook is called by the Manager for every sandbox it creates, after
// activation and before Create returns, with the path of the sandbox's
// network namespace (Sandbox.NetNSPath). The sandbox has only loopback. The
// intended use is the egress proxy: the daemon enters that namespace on a
// locked OS thread (ListenInNetNS does this), listens on 127.0.0.1 there,
// keeps the listener, serves it from the host side, and returns the
// environment (HTTP_PROXY, HTTPS_PROXY, ...) that the Manager then adds to
// the sandbox's Spec.Env for every later exec. An error fails the Create.
// Tiers without a host network namespace (gVisor with --network=none) make
// NetNSPath fail with ErrUnsupported; the hook is then called with "".
type NetworkHook func(ctx context.Context, sb Sandbox, netnsPath string) (env map[string]string, err error)

// Admission decides what may be created and for how long, in one place
// that every way of creating a sandbox goes through (the daemon's caps
// per owner). The Manager calls it under its lock, so that a decision and
// the sandbox it admits are atomic against other creates: it must be quick
// and must not call back into the Manager.
type Admission interface {
	// AdmitCreate sees the spec as asked for (zero limits and timeout are
	// still "the default") and may refuse it or fill in omitted values;
	// live lists every sandbox that exists or is being created (Failure
	// not filled in).
	AdmitCreate(spec *Spec, live []Info) error
	// AdmitExtend may refuse to set info's sandbox to expire d from now.
	AdmitExtend(info Info, d time.Duration) error
}

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	Tiers          []Tier
	Pools          []PoolConfig
	DefaultTimeout time.Duration    // default 30m
	MaxTimeout     time.Duration    // cap for Extend; default 24h
	Now            func() time.Time // clock of timeouts; default time.Now
	Logger         *slog.Logger     // default: slog.Default()
	NetworkHook    NetworkHook      // optional
	// OnClose, if set, is called with a sandbox's id after the Manager has
	// closed it (delete, timeout or Close), to free what the network hook
	// set up for it. A hook that fails frees its own work.
	OnClose func(id string)
	// ReapInterval is how often expired sandboxes are removed; default 1s.
	ReapInterval time.Duration
	// Admission, if set, admits or refuses every Create and Extend.
	Admission Admission
	// Metrics registers the Manager's collectors (metrics.go); nil: none.
	Metrics prometheus.Registerer
	// Node, in a cluster, is this member's name: the ids of the sandboxes
	// made here carry it (ids.go), so any member routes to this one.
	Node string
	// Records, if set, keeps every sandbox's record durable (state.go):
	// after a restart the Manager lists them again as stopped, and Close
	// keeps them (and their directories) instead of deleting them.
	Records Records
	// Dir, if set, holds one host directory per sandbox, Dir/<id>, whose
	// workspace/ is mounted on /workspace (Spec.HostWorkspace) and checked
	// against Limits.DiskMB every QuotaInterval (default 5s).
	Dir           string
	QuotaInterval time.Duration
}

// Info describes a live sandbox.
type Info struct {
	ID       string            `json:"id"`
	Tier     string            `json:"tier"`
	Template string            `json:"template"`
	Created  time.Time         `json:"created"`
	Deadline time.Time         `json:"deadline"`
	Labels   map[string]string `json:"labels,omitempty"`
	// Failure is why the sandbox stopped working (Sandbox.Failure), ""
	// while it works. A failed sandbox stays listed until it is deleted or
	// times out.
	Failure string `json:"failure,omitempty"`
	// State is StateRunning, StatePaused or StateStopped (state.go);
	// Reason says why the platform paused or stopped it, if it did.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	Limits Limits `json:"limits"`
	// Volumes are the named volumes mounted into the sandbox.
	Volumes []VolumeMount `json:"volumes,omitempty"`
}

type entry struct {
	id       string
	sb       Sandbox // nil while stopped or starting
	spec     Spec    // as created, without the network hook's env
	created  time.Time
	deadline time.Time // while running
	// state is StateRunning, StatePaused, StateStopped or stateStarting;
	// remaining is the rest of the timeout while the clock is stopped
	// (paused, stopped); reason why the platform paused or stopped it.
	state     string
	remaining time.Duration
	reason    string
	// parked: a copy of a fork not yet run, its state in HostDir/parked
	// (park.go); recorded (Record.Parked).
	parked bool
	op     sync.Mutex // serializes pause, resume, start and delete
}

// Manager owns the live sandboxes of a node: creation (from warm pools when
// one matches), lookup by id, timeouts and deletion.
type Manager struct {
	cfg   ManagerConfig
	log   *slog.Logger
	now   func() time.Time
	tiers map[string]Tier
	pools map[poolKey]*pool

	mu        sync.Mutex // guards sandboxes, pending and shut
	sandboxes map[string]*entry
	pending   map[string]Spec // admitted, being created
	layers    layers          // fork layers in use (forklayer.go)
	shut      bool            // Close has begun: nothing new is started
	// busy counts the operations under way that can start a sandbox
	// (create, fork, start): Close waits for them, so none registers a
	// live sandbox after Close has taken the list (enter).
	busy sync.WaitGroup

	stop chan struct{}
	wg   sync.WaitGroup
	met  *metrics // nil: no metrics
}

// Logging keys.
const (
	logKeySandbox = "sandbox"
	logKeyTier    = "tier"
	logKeyErr     = "err"
)

// NewManager validates cfg. Call Start to fill pools and run the reaper.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.DefaultTimeout <= 0 {
		cfg.DefaultTimeout = DefaultTimeout
	}
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ReapInterval <= 0 {
		cfg.ReapInterval = time.Second
	}
	m := &Manager{
		cfg: cfg, log: cfg.Logger, now: cfg.Now,
		tiers: map[string]Tier{}, pools: map[poolKey]*pool{},
		sandboxes: map[string]*entry{}, pending: map[string]Spec{}, stop: make(chan struct{}),
	}
	for _, t := range cfg.Tiers {
		m.tiers[t.Name()] = t
	}
	for i, pc := range cfg.Pools {
		if pc.Template == "" {
			pc.Template = TemplateHost
		}
		if _, ok := m.tiers[pc.Tier]; !ok {
			return nil, fmt.Errorf("pools[%d].tier %q: %w", i, pc.Tier, ErrUnknownTier)
		}
		if pc.Size <= 0 {
			return nil, fmt.Errorf("pools[%d].size must be positive", i)
		}
		if pc.Refill < 0 {
			return nil, fmt.Errorf("pools[%d].refill must not be negative", i)
		}
		k := poolKey{pc.Tier, pc.Template}
		m.pools[k] = newPool(k, pc.Size, pc.Refill)
	}
	var err error
	if m.met, err = newMetrics(cfg.Metrics, m); err != nil {
		return nil, fmt.Errorf("sandbox metrics: %w", err)
	}
	return m, nil
}

// Start fills the pools in the background and starts the timeout reaper.
// ctx bounds nothing but this call; background work stops at Close.
func (m *Manager) Start(ctx context.Context) error {
	for _, p := range m.pools {
		m.wg.Add(1)
		go m.fill(p)
	}
	if err := m.load(ctx); err != nil {
		return err
	}
	m.wg.Add(1)
	go m.reapLoop()
	if m.cfg.Dir != "" {
		m.wg.Add(1)
		go m.quotaLoop()
	}
	return nil
}

func (m *Manager) reapLoop() {
	defer m.wg.Done()
	tk := time.NewTicker(m.cfg.ReapInterval)
	defer tk.Stop()
	for {
		select {
		case <-tk.C:
			m.ReapExpired(context.Background())
		case <-m.stop:
			return
		}
	}
}

// ReapExpired deletes every sandbox whose deadline has passed according to
// the Manager's clock, and returns their ids. The reaper calls it
// periodically; tests call it after advancing a fake clock.
func (m *Manager) ReapExpired(ctx context.Context) []string {
	now := m.now()
	var expired []string
	m.mu.Lock()
	for id, e := range m.sandboxes {
		if e.state == StateRunning && !now.Before(e.deadline) {
			expired = append(expired, id)
		}
	}
	m.mu.Unlock()
	sort.Strings(expired)
	for _, id := range expired {
		m.log.Info("sandbox timed out", logKeySandbox, id)
		if err := m.Delete(ctx, id); err != nil && !errors.Is(err, ErrNotFound) {
			m.log.Warn("delete expired sandbox", logKeySandbox, id, logKeyErr, err)
		}
	}
	return expired
}

// NewID returns a fresh random sandbox id (without a node: outside a
// cluster, and for tests of a tier alone).
func NewID() string { return newID("") }

// NewID returns a fresh id for a sandbox of this Manager: in a cluster it
// names this node (ids.go).
func (m *Manager) NewID() string {
	if m.cfg.Node == "" {
		return newID("")
	}
	return newID(NodeTag(m.cfg.Node))
}

// Create makes a sandbox, from a warm pool when one exists for the spec's
// tier and template. An empty id gets a random one.
func (m *Manager) Create(ctx context.Context, id string, spec Spec) (Sandbox, error) {
	return m.create(ctx, id, spec, "")
}

// create is Create, with the files of directory seed (if not "") copied
// into the new sandbox's host workspace before it starts (fork).
func (m *Manager) create(ctx context.Context, id string, spec Spec, seed string) (Sandbox, error) {
	return m.createFrom(ctx, id, spec, origin{seed: seed})
}

// createFrom is create from an origin: a seed directory copied into the
// workspace (before the sandbox starts where the workspace is on host
// storage, after it where the tier keeps it), or a checkpoint image.
func (m *Manager) createFrom(ctx context.Context, id string, spec Spec, o origin) (Sandbox, error) {
	leave, err := m.enter("create", id)
	if err != nil {
		return nil, err
	}
	defer leave()
	t, id, release, err := m.reserve("create", id, &spec)
	if err != nil {
		return nil, err
	}
	defer release()
	if o, err = m.placeWorkspace(t, id, spec, o); err != nil {
		m.removeHostDir(id)
		return nil, fmt.Errorf("create sandbox %s: %w", id, err)
	}
	timeout := m.timeoutOf(spec)
	now := m.now()
	e := &entry{id: id, spec: spec, created: now, deadline: now.Add(timeout), state: StateRunning}
	sb, err := m.activateRecorded(ctx, t, e, o)
	if err == nil && o.seed != "" && spec.HostWorkspace == "" && o.image == "" && o.lower == "" {
		if err = seedHeld(sb, o.seed); err != nil {
			_ = sb.Close()
			m.closed(id)
			err = fmt.Errorf("create sandbox %s: copy workspace: %w", id, err)
		}
	}
	if err != nil {
		// A failed write may still have landed (its answer lost): take
		// it back either way. A record that stays keeps its files.
		if m.unrecord(ctx, id) == nil {
			m.removeHostDir(id)
		}
		return nil, err
	}
	now = m.now()
	e.sb, e.created, e.deadline = sb, now, now.Add(timeout)
	m.mu.Lock()
	m.sandboxes[id] = e
	delete(m.pending, id)
	m.mu.Unlock()
	return sb, nil
}

// reserve admits a new sandbox of spec as id (a new id if ""), for op
// (create, fork): it finds its tier, normalizes spec and makes its host
// directory. release, set when err is nil, ends the reservation once the
// sandbox is listed or has failed.
func (m *Manager) reserve(op, id string, spec *Spec) (t Tier, _ string, release func(), err error) {
	if spec.Tier == "" {
		spec.Tier = TierProcess
	}
	t, ok := m.tiers[spec.Tier]
	if !ok {
		return nil, "", nil, fmt.Errorf("%s sandbox: tier %q: %w", op, spec.Tier, ErrUnknownTier)
	}
	if id == "" {
		id = m.NewID()
	}
	if err := m.checkVolumes(*spec); err != nil {
		return nil, "", nil, fmt.Errorf("%s sandbox: %w", op, err)
	}
	if err := m.admit(id, spec); err != nil {
		return nil, "", nil, err
	}
	release = func() {
		m.mu.Lock()
		delete(m.pending, id)
		m.mu.Unlock()
	}
	*spec = spec.normalize(spec.Tier)
	if err := m.makeHostDir(id, spec); err != nil {
		release()
		return nil, "", nil, fmt.Errorf("%s sandbox %s: %w", op, id, err)
	}
	return t, id, release, nil
}

// placeWorkspace puts o's files in new sandbox id's host workspace (none
// without one): the fork layer mounted (o.lower), else a copy of o.seed.
// Where the layer cannot be mounted (no privilege, a kernel without
// metacopy) the copy gets the layer's files instead, and the origin
// returned says so (no lower, the layer as seed).
func (m *Manager) placeWorkspace(t Tier, id string, spec Spec, o origin) (origin, error) {
	if spec.HostWorkspace == "" {
		return o, nil
	}
	if o.lower != "" {
		err := m.useLayer(t, id, o.lower)
		if err == nil {
			return o, nil
		}
		m.log.Warn("fork layer not mounted; copying it", logKeySandbox, id, logKeyErr, err)
		o.lower, o.seed = "", m.layerPath(o.lower)
	}
	if o.seed == "" {
		return o, nil
	}
	return o, hostFault("copy workspace", copyTree(o.seed, spec.HostWorkspace))
}

// timeoutOf is spec's timeout: its own or the default, within the most.
func (m *Manager) timeoutOf(spec Spec) time.Duration {
	timeout := spec.Timeout
	if timeout <= 0 {
		timeout = m.cfg.DefaultTimeout
	}
	return min(timeout, m.cfg.MaxTimeout)
}

// activateRecorded activates e's sandbox (activateFrom) while e's record
// is written, and returns once both are done. Acknowledged only once
// durable: the record does not depend on the live sandbox, so it is
// written beside the activation rather than after it (the write's fsync
// was a quarter of a pooled create: docs/PERFORMANCE.md). A write that
// fails cancels the activation and fails the create (the sandbox, if it
// came up, is closed); the caller takes the record back on any failure
// (unrecord). The record's clock starts before the activation, the live
// one after it (createFrom): a record's clock only matters after a
// restart, which gives every sandbox at least RestartGrace.
func (m *Manager) activateRecorded(ctx context.Context, t Tier, e *entry, o origin) (Sandbox, error) {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	persisted := make(chan error, 1)
	go func() {
		err := m.persist(actx, e)
		if err != nil {
			cancel() // the create fails anyway: stop its activation
		}
		persisted <- err
	}()
	sb, err := m.activateFrom(actx, t, e.id, e.spec, o)
	perr := <-persisted
	switch {
	case perr == nil:
		return sb, err
	case sb != nil:
		_ = sb.Close()
		m.closed(e.id)
	case err != nil && !errors.Is(err, context.Canceled):
		return nil, fmt.Errorf("create sandbox %s: %w; and %w", e.id, perr, err)
	}
	return nil, fmt.Errorf("create sandbox %s: %w", e.id, perr)
}

// activate makes the live sandbox of spec (from the warm pool when one
// matches) and runs the network hook on it.
func (m *Manager) activate(ctx context.Context, t Tier, id string, spec Spec) (Sandbox, error) {
	return m.activateFrom(ctx, t, id, spec, origin{})
}

// activateFrom is activate, restoring o.image (Restorer) when set.
func (m *Manager) activateFrom(ctx context.Context, t Tier, id string, spec Spec, o origin) (Sandbox, error) {
	t0 := time.Now()
	var pr Prepared
	if o.image != "" {
		sb, err := t.(Restorer).Restore(ctx, id, spec, o.image, o.seed, o.upper)
		if err != nil {
			return nil, fmt.Errorf("restore sandbox %s: %w", id, err)
		}
		return m.finishActivate(ctx, sb, spec, false, t0)
	}
	up, seedUpper := t.(UpperPreparer)
	if seedUpper = seedUpper && o.upper != ""; seedUpper { // upper.go: no pool
		var err error
		if pr, err = up.PrepareWithUpper(ctx, spec.Template, o.upper, spec.Volumes); err != nil {
			return nil, fmt.Errorf("create sandbox %s: %w", id, err)
		}
	} else if vp, ok := t.(VolumePreparer); ok && len(spec.Volumes) > 0 { // volumes.go: no pool
		var err error
		if pr, err = vp.PrepareWithVolumes(ctx, spec.Template, spec.Volumes); err != nil {
			return nil, fmt.Errorf("create sandbox %s: %w", id, err)
		}
	} else if p, ok := m.pools[poolKey{spec.Tier, spec.Template}]; ok {
		pr = p.claim(ctx, m.stop)
		// Refill after this create and, while the pool still has one
		// ready, after its first command too (refillDelay): a refill
		// competes with them for the CPU (and, with a tier that forks
		// this process, stalled its other threads). A claimed sandbox's
		// refill also waits for the other claimed ones still activating
		// (a burst: pool.nudgeAfterActivate).
		if pr != nil {
			defer p.activatingOne(m.stop)()
		} else {
			defer p.nudgeSoon(m.stop)
		}
	}
	pooled := pr != nil && len(spec.Volumes) == 0 && !seedUpper // a sandbox with volumes never comes from the pool
	if pr == nil {
		var err error
		pr, err = t.Prepare(ctx, spec.Template)
		if err != nil {
			return nil, fmt.Errorf("create sandbox %s: %w", id, err)
		}
	}
	sb, err := pr.Activate(ctx, id, spec)
	if err != nil {
		_ = pr.Discard()
		return nil, fmt.Errorf("create sandbox %s: %w", id, err)
	}
	return m.finishActivate(ctx, sb, spec, pooled, t0)
}

// finishActivate runs the network hook on a new sandbox and meters it.
func (m *Manager) finishActivate(ctx context.Context, sb Sandbox, spec Spec, pooled bool, t0 time.Time) (Sandbox, error) {
	id := sb.ID()
	if m.cfg.NetworkHook != nil {
		if err := m.runNetworkHook(ctx, sb); err != nil {
			_ = sb.Close()
			return nil, fmt.Errorf("create sandbox %s: network: %w", id, err)
		}
	}
	if m.met != nil {
		sb = meter(sb, m.met)
		m.met.created(spec.Tier, pooled, time.Since(t0))
	}
	return sb, nil
}

// enter counts an operation that can start a sandbox (leave ends it), or
// refuses it once Close has begun: Close waits for those under way, so
// every sandbox they start is in the list Close deletes.
func (m *Manager) enter(op, id string) (leave func(), err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.shut {
		return nil, fmt.Errorf("%s sandbox %s: the sandbox manager is closing: %w", op, id, ErrUnavailable)
	}
	m.busy.Add(1)
	return m.busy.Done, nil
}

// admit reserves id for spec, after the Admission (if any) accepted it,
// atomically with every other create: a sandbox counts from the moment it
// is admitted until it is deleted, or its creation fails.
func (m *Manager) admit(id string, spec *Spec) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, dup := m.sandboxes[id]
	_, dupPending := m.pending[id]
	if dup || dupPending {
		return fmt.Errorf("create sandbox %s: id in use", id)
	}
	if a := m.cfg.Admission; a != nil {
		if err := a.AdmitCreate(spec, m.liveLocked()); err != nil {
			return fmt.Errorf("create sandbox: %w", err)
		}
	}
	m.pending[id] = *spec
	return nil
}

// liveLocked lists the live and pending sandboxes for admission. m.mu is
// held.
func (m *Manager) liveLocked() []Info {
	live := make([]Info, 0, len(m.sandboxes)+len(m.pending))
	for _, e := range m.sandboxes {
		live = append(live, e.info(m.now()))
	}
	for pid, ps := range m.pending {
		live = append(live, Info{ID: pid, Tier: ps.Tier, Template: ps.Template, Labels: ps.Labels})
	}
	return live
}

// preAdmit asks admission whether a create of spec would be let in now,
// reserving nothing: a fork whose copies would all be refused (the owner
// at their cap, a timeout over it) fails before its source is frozen.
// Each copy is still admitted as it is made.
func (m *Manager) preAdmit(spec Spec) error {
	a := m.cfg.Admission
	if a == nil {
		return nil
	}
	m.mu.Lock()
	live := m.liveLocked()
	m.mu.Unlock()
	if err := a.AdmitCreate(&spec, live); err != nil {
		return fmt.Errorf("create sandbox: %w", err)
	}
	return nil
}

// envSetter is implemented by tiers whose sandboxes can take environment
// added after activation (the network hook's proxy settings).
type envSetter interface {
	AddEnv(env map[string]string)
}

func (m *Manager) runNetworkHook(ctx context.Context, sb Sandbox) error {
	ns, err := sb.NetNSPath()
	if err != nil && !errors.Is(err, ErrUnsupported) {
		return err
	}
	env, err := m.cfg.NetworkHook(ctx, sb, ns)
	if err != nil {
		return err
	}
	if len(env) > 0 {
		es, ok := sb.(envSetter)
		if !ok {
			return fmt.Errorf("tier %s cannot add environment: %w", sb.Tier(), ErrUnsupported)
		}
		es.AddEnv(env)
	}
	return nil
}

// Get returns a live sandbox by id; a stopped one answers ErrStopped, a
// paused copy of a fork not yet resumed ErrPaused.
func (m *Manager) Get(id string) (Sandbox, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.sandboxes[id]
	if !ok {
		return nil, fmt.Errorf("sandbox %s: %w", id, ErrNotFound)
	}
	switch {
	case e.sb == nil && e.state == StatePaused: // a parked copy (park.go)
		return nil, fmt.Errorf("sandbox %s: %w (a copy of a fork not yet run)", id, ErrPaused)
	case e.sb == nil:
		return nil, fmt.Errorf("sandbox %s: %w (start it first)", id, ErrStopped)
	}
	return e.sb, nil
}

// Info describes a live sandbox.
func (m *Manager) Info(id string) (Info, error) {
	m.mu.Lock()
	e, ok := m.sandboxes[id]
	var info Info
	var sb Sandbox
	if ok {
		info, sb = e.info(m.now()), e.sb
	}
	m.mu.Unlock()
	if !ok {
		return Info{}, fmt.Errorf("sandbox %s: %w", id, ErrNotFound)
	}
	return info.withFailure(sb), nil
}

// info describes e; call with m.mu held. Failure is filled in by
// withFailure, outside the lock: a tier may need a moment to tell why a
// sandbox died.
func (e *entry) info(now time.Time) Info {
	s := e.spec
	info := Info{ID: e.id, Tier: s.Tier, Template: s.Template, Created: e.created, Deadline: e.deadline, Labels: s.Labels,
		State: e.state, Reason: e.reason, Limits: s.Limits, Volumes: s.Volumes}
	if e.state != StateRunning {
		info.Deadline = now.Add(e.remaining)
	}
	if e.state == stateStarting {
		info.State = StateStopped
	}
	return info
}

func (info Info) withFailure(sb Sandbox) Info {
	if sb != nil {
		info.Failure = FailureReason(sb.Failure())
	}
	return info
}

// List describes every live sandbox, ordered by id.
func (m *Manager) List() []Info {
	m.mu.Lock()
	out := make([]Info, 0, len(m.sandboxes))
	sbs := make([]Sandbox, 0, len(m.sandboxes))
	for _, e := range m.sandboxes {
		out = append(out, e.info(m.now()))
		sbs = append(sbs, e.sb)
	}
	m.mu.Unlock()
	for i := range out {
		out[i] = out[i].withFailure(sbs[i])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Extend sets the sandbox's deadline to now+d (capped by MaxTimeout) and
// returns it, if the Admission (if any) agrees. A paused or stopped
// sandbox keeps its clock stopped with d left.
func (m *Manager) Extend(id string, d time.Duration) (time.Time, error) {
	e, err := m.lockEntry(id)
	if err != nil {
		return time.Time{}, err
	}
	defer e.op.Unlock()
	m.mu.Lock()
	if a := m.cfg.Admission; a != nil {
		if err := a.AdmitExtend(e.info(m.now()), d); err != nil {
			m.mu.Unlock()
			return time.Time{}, fmt.Errorf("extend sandbox %s: %w", id, err)
		}
	}
	d = min(d, m.cfg.MaxTimeout)
	end := m.now().Add(d)
	if e.state == StateRunning {
		e.deadline = end
	} else {
		e.remaining = d
	}
	m.mu.Unlock()
	return end, m.persist(context.Background(), e)
}

// Delete closes a sandbox and forgets it: its record and its host
// directory go too.
func (m *Manager) Delete(ctx context.Context, id string) error {
	m.mu.Lock()
	e, ok := m.sandboxes[id]
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("sandbox %s: %w", id, ErrNotFound)
	}
	e.op.Lock()
	defer e.op.Unlock()
	m.mu.Lock()
	if m.sandboxes[id] != e {
		m.mu.Unlock()
		return fmt.Errorf("sandbox %s: %w", id, ErrNotFound)
	}
	delete(m.sandboxes, id)
	m.mu.Unlock()
	var err error
	if e.sb != nil {
		err = e.sb.Close()
		m.closed(id)
	}
	if m.cfg.Records != nil {
		if rerr := m.cfg.Records.Delete(ctx, id); rerr != nil {
			// The files stay with the record: the sandbox comes back
			// stopped at the next start rather than half deleted.
			return fmt.Errorf("delete sandbox %s: record: %w", id, errors.Join(err, rerr))
		}
	}
	m.removeHostDir(id)
	if err != nil {
		return fmt.Errorf("delete sandbox %s: %w", id, err)
	}
	return nil
}

func (m *Manager) closed(id string) {
	if m.cfg.OnClose != nil {
		m.cfg.OnClose(id)
	}
}

// Close deletes every sandbox and discards the pools. It does not close the
// tiers: their owner does, after the Manager. A second call does nothing.
func (m *Manager) Close() error {
	m.mu.Lock()
	again := m.shut
	m.shut = true
	m.mu.Unlock()
	if again { // closed already, or closing
		return nil
	}
	close(m.stop) // a pool claim under way gives up; prepares end
	m.busy.Wait()
	m.wg.Wait()
	var errs []error
	for _, p := range m.pools {
		for {
			select {
			case pr := <-p.ready:
				errs = append(errs, pr.Discard())
				continue
			default:
			}
			break
		}
	}
	m.mu.Lock()
	all := m.sandboxes
	m.sandboxes = map[string]*entry{}
	m.mu.Unlock()
	for id, e := range all {
		if e.sb != nil {
			errs = append(errs, e.sb.Close())
			m.closed(id)
		}
		if m.cfg.Records == nil {
			m.removeHostDir(id) // nothing would find it again
		} else if dir := m.HostDir(id); dir != "" {
			if err := unmountWorkspace(dir); err != nil { // load mounts it again
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
