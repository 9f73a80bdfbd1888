package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Sandbox states as the Manager keeps them.
const (
	StateRunning = "running"
	StatePaused  = "paused"
	// StateStopped: the sandbox has no processes but keeps its record and
	// its workspace (after a daemon restart, every sandbox is stopped);
	// Manager.StartSandbox runs it again.
	StateStopped = "stopped"
	// stateStarting: StartSandbox is bringing it up (shown as stopped).
	stateStarting = "starting"
)

// ErrStopped: the sandbox exists but runs no processes; start it first.
var ErrStopped = errors.New("sandbox stopped")

// RestartGrace is the least time a sandbox gets when it is started again:
// a sandbox whose deadline passed while the daemon was down is not lost.
const RestartGrace = 5 * time.Minute

// Record is the durable description of one sandbox: enough to list it and
// to start it again with the same spec after a daemon restart. Its files
// live in the Manager's Dir, not here.
type Record struct {
	ID       string            `json:"id"`
	Tier     string            `json:"tier"`
	Template string            `json:"template"`
	Limits   Limits            `json:"limits"`
	Env      map[string]string `json:"env,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Created  time.Time         `json:"created"`
	State    string            `json:"state"`
	Reason   string            `json:"reason,omitempty"`
	// Deadline while running; Remaining while the clock is stopped.
	Deadline  time.Time     `json:"deadline,omitzero"`
	Remaining time.Duration `json:"remaining_ns,omitempty"`
	// Volumes mounted into the sandbox (they outlive it).
	Volumes []VolumeMount `json:"volumes,omitempty"`
	// Parked: a copy of a fork not yet run (park.go).
	Parked bool `json:"parked,omitempty"`
}

// Records keeps sandbox records durably (internal/sandbox/sandboxstate
// keeps them in the store). Put must be durable when it returns.
type Records interface {
	Put(ctx context.Context, r Record) error
	Delete(ctx context.Context, id string) error
	// List returns every record of this node.
	List(ctx context.Context) ([]Record, error)
}

func (e *entry) record() Record {
	r := Record{ID: e.id, Tier: e.spec.Tier, Template: e.spec.Template, Limits: e.spec.Limits, Env: e.spec.Env,
		Labels: e.spec.Labels, Created: e.created, State: e.state, Reason: e.reason, Volumes: e.spec.Volumes, Parked: e.parked}
	switch e.state {
	case StateRunning:
		r.Deadline = e.deadline
	case stateStarting:
		r.State, r.Remaining = StateStopped, e.remaining
	default:
		r.Remaining = e.remaining
	}
	return r
}

// persist writes e's record (a no-op without Records).
func (m *Manager) persist(ctx context.Context, e *entry) error {
	if m.cfg.Records == nil {
		return nil
	}
	m.mu.Lock()
	r := e.record()
	m.mu.Unlock()
	if err := m.cfg.Records.Put(ctx, r); err != nil {
		return fmt.Errorf("sandbox %s: save record: %w", e.id, err)
	}
	return nil
}

// unrecord deletes the record of a create that failed, if persist wrote
// it (absent is no error). Should that fail too, the record stays, and so
// must the sandbox's host directory (the caller keeps it): at the next
// start the sandbox comes back stopped with its (empty) files, for its
// owner to start or delete; shown, never silently lost.
func (m *Manager) unrecord(ctx context.Context, id string) error {
	if m.cfg.Records == nil {
		return nil
	}
	if err := m.cfg.Records.Delete(context.WithoutCancel(ctx), id); err != nil {
		m.log.Warn("failed create: delete its record; its files stay with it", logKeySandbox, id, logKeyErr, err)
		return err
	}
	return nil
}

// lockEntry finds id's entry and takes its op lock; the caller unlocks.
func (m *Manager) lockEntry(id string) (*entry, error) {
	m.mu.Lock()
	e, ok := m.sandboxes[id]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("sandbox %s: %w", id, ErrNotFound)
	}
	e.op.Lock()
	m.mu.Lock()
	still := m.sandboxes[id] == e
	m.mu.Unlock()
	if !still {
		e.op.Unlock()
		return nil, fmt.Errorf("sandbox %s: %w", id, ErrNotFound)
	}
	return e, nil
}

// HostDir is the host directory of sandbox id ("" without ManagerConfig.Dir).
func (m *Manager) HostDir(id string) string {
	if m.cfg.Dir == "" {
		return ""
	}
	return filepath.Join(m.cfg.Dir, id)
}

// makeHostDir creates id's host directory and its workspace and points
// spec at it.
func (m *Manager) makeHostDir(id string, spec *Spec) error {
	dir := m.HostDir(id)
	if dir == "" {
		return nil
	}
	ws := filepath.Join(dir, "workspace")
	if !m.hostWorkspace(spec.Tier) {
		return os.MkdirAll(dir, 0o700)
	}
	if err := os.MkdirAll(ws, 0o700); err != nil {
		return fmt.Errorf("host dir: %w", err)
	}
	spec.HostWorkspace = ws
	return nil
}

// HostWorkspacer is implemented by tiers that mount Spec.HostWorkspace
// (the process tier); the others keep /workspace in memory.
type HostWorkspacer interface {
	HostWorkspace() bool
}

func (m *Manager) hostWorkspace(tier string) bool {
	hw, ok := m.tiers[tier].(HostWorkspacer)
	return ok && hw.HostWorkspace()
}

func (m *Manager) removeHostDir(id string) { m.removeDir(id, true) }

// removeDir removes id's host directory, unmounting its workspace first;
// release drops its fork layer's reference (not for a directory load
// found without a record, which was never counted).
func (m *Manager) removeDir(id string, release bool) {
	if dir := m.HostDir(id); dir != "" {
		layer := dirLayer(dir)
		if err := unmountWorkspace(dir); err != nil {
			m.log.Warn("remove sandbox dir", logKeySandbox, id, logKeyErr, err)
			return // never remove through a mount
		}
		if err := os.RemoveAll(dir); err != nil {
			m.log.Warn("remove sandbox dir", logKeySandbox, id, logKeyErr, err)
		}
		if release && layer != "" && m.layerPath(layer) != "" {
			m.layerRef(layer, -1)
		}
	}
}

// load lists the records of an earlier run as stopped sandboxes (their
// processes died with it), and removes host directories without a record:
// creates that were never acknowledged.
func (m *Manager) load(ctx context.Context) error {
	if m.cfg.Records == nil {
		return nil
	}
	recs, err := m.cfg.Records.List(ctx)
	if err != nil && recs == nil {
		return fmt.Errorf("load sandbox records: %w", err)
	}
	if err != nil {
		m.log.Warn("sandbox records skipped", logKeyErr, err)
	}
	now := m.now()
	known := map[string]bool{}
	m.mu.Lock()
	for _, r := range recs {
		known[r.ID] = true
		spec := Spec{Tier: r.Tier, Template: r.Template, Limits: r.Limits, Env: r.Env, Labels: r.Labels, Volumes: r.Volumes}
		e := &entry{id: r.ID, spec: spec, created: r.Created, state: StateStopped, remaining: r.Remaining, reason: r.Reason}
		if r.State == StateRunning {
			e.remaining = max(r.Deadline.Sub(now), 0)
			e.reason = "the daemon restarted"
		}
		m.loadParked(e, r)
		if dir := m.HostDir(r.ID); dir != "" && m.hostWorkspace(r.Tier) {
			e.spec.HostWorkspace = filepath.Join(dir, "workspace")
		} else if !e.parked {
			e.reason = "the daemon restarted; this tier keeps /workspace in memory, so its files were lost"
		}
		m.sandboxes[r.ID] = e
	}
	m.mu.Unlock()
	if m.cfg.Dir == "" {
		return nil
	}
	ents, err := os.ReadDir(m.cfg.Dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sandbox dir: %w", err)
	}
	var kept []string
	for _, d := range ents {
		switch {
		case d.Name() == layersDir:
		case known[d.Name()]:
			kept = append(kept, d.Name())
		default:
			m.log.Info("remove sandbox dir without a record", logKeySandbox, d.Name())
			m.removeDir(d.Name(), false)
		}
	}
	m.loadLayers(kept)
	if len(recs) > 0 {
		m.log.Info("sandboxes kept from an earlier run (stopped, or paused copies of a fork)", "count", len(recs))
	}
	return nil
}

// StartSandbox runs a stopped sandbox again with its recorded spec and
// workspace; its clock resumes with what was left (at least
// RestartGrace). A running or paused sandbox is answered as it is.
func (m *Manager) StartSandbox(ctx context.Context, id string) (Sandbox, error) {
	leave, err := m.enter("start", id)
	if err != nil {
		return nil, err
	}
	defer leave()
	e, err := m.lockEntry(id)
	if err != nil {
		return nil, err
	}
	defer e.op.Unlock()
	m.mu.Lock()
	if e.sb != nil {
		sb := e.sb
		m.mu.Unlock()
		return sb, nil
	}
	if e.parked { // a copy of a fork: from its memory where it can (park.go)
		m.mu.Unlock()
		return m.startParked(ctx, e)
	}
	t, ok := m.tiers[e.spec.Tier]
	spec := e.spec
	e.state = stateStarting
	m.mu.Unlock()
	restore := func() {
		m.mu.Lock()
		e.state = StateStopped
		m.mu.Unlock()
	}
	if !ok {
		restore()
		return nil, fmt.Errorf("start sandbox %s: tier %q: %w", id, spec.Tier, ErrUnknownTier)
	}
	if over, err := m.overQuota(spec); err != nil || over != "" {
		restore()
		return nil, fmt.Errorf("start sandbox %s: %w", id, errors.Join(err, quotaErr(over)))
	}
	sb, err := m.activate(ctx, t, id, spec)
	if err != nil {
		restore()
		return nil, err
	}
	m.mu.Lock()
	e.sb, e.state, e.reason = sb, StateRunning, ""
	e.deadline = m.now().Add(max(e.remaining, RestartGrace))
	m.mu.Unlock()
	if err := m.persist(ctx, e); err != nil {
		m.log.Warn("save started sandbox", logKeySandbox, id, logKeyErr, err)
	}
	return sb, nil
}

// Pause freezes every process of the sandbox and stops its clock: the
// rest of its timeout is kept until Resume.
func (m *Manager) Pause(ctx context.Context, id string) error {
	return m.pause(ctx, id, "")
}

func (m *Manager) pause(ctx context.Context, id, reason string) error {
	e, err := m.lockEntry(id)
	if err != nil {
		return err
	}
	defer e.op.Unlock()
	m.mu.Lock()
	state, sb := e.state, e.sb
	m.mu.Unlock()
	switch {
	case state == StatePaused:
		return fmt.Errorf("pause sandbox %s: %w", id, ErrPaused)
	case sb == nil:
		return fmt.Errorf("pause sandbox %s: %w", id, ErrStopped)
	}
	if err := sb.Pause(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	e.state, e.reason = StatePaused, reason
	e.remaining = max(e.deadline.Sub(m.now()), 0)
	m.mu.Unlock()
	return m.persist(ctx, e)
}

// Resume thaws a paused sandbox and restarts its clock with the time that
// was left. A sandbox paused for its disk quota stays paused while its
// workspace is over it (ErrDiskLimit).
func (m *Manager) Resume(ctx context.Context, id string) error {
	e, err := m.lockEntry(id)
	if err != nil {
		return err
	}
	defer e.op.Unlock()
	m.mu.Lock()
	state, sb, spec := e.state, e.sb, e.spec
	m.mu.Unlock()
	switch {
	case sb == nil && state == StatePaused: // a parked copy (park.go)
		leave, err := m.enter("resume", id)
		if err != nil {
			return err
		}
		defer leave()
		_, err = m.unpark(ctx, e, false, "")
		return err
	case sb == nil:
		return fmt.Errorf("resume sandbox %s: %w", id, ErrStopped)
	case state != StatePaused:
		return nil
	}
	if over, err := m.overQuota(spec); err != nil || over != "" {
		return fmt.Errorf("resume sandbox %s: %w", id, errors.Join(err, quotaErr(over)))
	}
	if err := sb.Resume(ctx); err != nil {
		return err
	}
	m.mu.Lock()
	e.state, e.reason = StateRunning, ""
	e.deadline = m.now().Add(e.remaining)
	m.mu.Unlock()
	return m.persist(ctx, e)
}

// Paused reports whether sandbox id is paused.
func (m *Manager) Paused(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.sandboxes[id]
	return ok && e.state == StatePaused
}

func quotaErr(over string) error {
	if over == "" {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrDiskLimit, over)
}

// overQuota measures spec's host workspace against Limits.DiskMB and says
// by how much it is over ("" when it is not).
func (m *Manager) overQuota(spec Spec) (string, error) {
	if spec.HostWorkspace == "" {
		return overVolumeQuota(spec)
	}
	used, err := DiskUsage(spec.HostWorkspace)
	if err != nil {
		return "", err
	}
	limit := int64(spec.Limits.WithDefaults().DiskMB) << 20
	if used <= limit {
		return overVolumeQuota(spec)
	}
	return fmt.Sprintf("workspace uses %d MiB, over its limit of %d MiB: remove files, then resume", used>>20, limit>>20), nil
}

// DiskUsage is the disk space the files under dir take (allocated blocks,
// so sparse files count what they hold).
func DiskUsage(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed while walking
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		}
		return nil
	})
	return n, err
}

// quotaLoop checks every running sandbox's workspace against its disk
// limit every QuotaInterval and pauses the ones over it (see Resume). A
// single file cannot pass the limit (RLIMIT_FSIZE); many files can, by
// what a sandbox writes in one interval.
func (m *Manager) quotaLoop() {
	defer m.wg.Done()
	every := m.cfg.QuotaInterval
	if every <= 0 {
		every = 5 * time.Second
	}
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-tk.C:
			m.CheckQuotas(context.Background())
		case <-m.stop:
			return
		}
	}
}

// CheckQuotas pauses every running sandbox whose workspace is over its
// disk limit and returns their ids (the quota loop calls it; tests too).
func (m *Manager) CheckQuotas(ctx context.Context) []string {
	m.mu.Lock()
	var running []*entry
	for _, e := range m.sandboxes {
		if e.state == StateRunning && (e.spec.HostWorkspace != "" || len(e.spec.Volumes) > 0) {
			running = append(running, e)
		}
	}
	m.mu.Unlock()
	var paused []string
	for _, e := range running {
		over, err := m.overQuota(e.spec)
		if err != nil || over == "" {
			continue
		}
		m.log.Warn("sandbox over its disk limit, pausing", logKeySandbox, e.id, "why", over)
		if err := m.pause(ctx, e.id, over); err != nil {
			m.log.Warn("pause sandbox over quota", logKeySandbox, e.id, logKeyErr, err)
			continue
		}
		paused = append(paused, e.id)
	}
	return paused
}
