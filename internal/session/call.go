package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/telemetry"
)

// Meta is a session's stored record.
type Meta struct {
	Agent         string     `json:"agent"`
	ID            string     `json:"id"`
	Version       string     `json:"version"`
	Created       time.Time  `json:"created"`
	LastActive    time.Time  `json:"last_active"`
	Hibernated    bool       `json:"hibernated"`
	SnapshotBytes int64      `json:"snapshot_bytes,omitempty"`
	Alarm         *time.Time `json:"alarm,omitempty"`
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// CheckAddr checks an agent name and a session id against api.IDRules (a
// session id is one SPIFFE path segment: not "." or "..") and returns a 400
// invalid-identifier problem naming the field. Every way a session is
// reached (traffic, call_agent and env bindings, alarms, state tools, the
// session routes) passes through it before anything is created.
func CheckAddr(agent, id string) error {
	if _, preview := previewBase(agent); preview {
		// An agent's preview namespace (preview.go): only the preview
		// routes name it, as the router refuses the dot in a path.
	} else if p := api.CheckID("agent", api.IDAgent, agent); p != nil {
		return p
	}
	if p := api.CheckID("session", api.IDSession, id); p != nil {
		return p
	}
	return nil
}

// Span attributes of the session's spans.
const (
	attrAgent   = "agentcloud.agent"
	attrSession = "agentcloud.session"
)

// tracedActivate is activate in a span of the request's trace.
func (m *Manager) tracedActivate(ctx context.Context, s *session) error {
	ctx, span := telemetry.Start(ctx, "session.activate", attrAgent, s.key.agent, attrSession, s.key.id)
	err := m.activate(ctx, s)
	telemetry.End(span, err)
	return err
}

// activate loads or creates the session's record and starts its isolate
// from its snapshot, or from its version's template. s.mu must be held.
func (m *Manager) activate(ctx context.Context, s *session) error {
	t0 := time.Now()
	tr := activationTraceOf(ctx)
	k := s.key
	ar, ok, err := m.agentRecord(ctx, k.agent)
	if err != nil {
		return err
	}
	if !ok {
		return api.Errorf(api.KindNotFound, "agent %q is not deployed: run agentcloud deploy DIR", k.agent)
	}
	rt := ar.routing()
	mkey := store.Key(k.agent, k.id)
	e, err := m.meta.Get(ctx, mkey)
	var cur *version
	switch {
	case isNotFound(err):
		// A new session: its version is picked by the routing and
		// recorded, so it sticks to it (routing.go).
		if cur, err = m.loadVersion(ctx, k.agent, rt.Pick(k.agent, k.id)); err != nil {
			return err
		}
		now := m.now().UTC()
		s.meta = Meta{Agent: k.agent, ID: k.id, Version: cur.rec.Digest, Created: now, LastActive: now}
		b, _ := json.Marshal(s.meta)
		// The record's fsync wait is put off (recordDurable): the call
		// that activates the session waits for it with its state writes,
		// one group-commit round instead of two in series.
		if _, err := m.meta.Create(store.WithDeferred(ctx, &s.created), mkey, b); errors.Is(err, store.ErrExists) {
			// Created meanwhile (by another node): activate that one.
			return m.activate(ctx, s)
		} else if err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		m.met.storedChanged(1)
	case err != nil:
		return fmt.Errorf("load session: %w", err)
	default:
		if err := json.Unmarshal(e.Value, &s.meta); err != nil {
			return fmt.Errorf("session record %s/%s: %w", k.agent, k.id, err)
		}
		if err := m.recoverTxn(ctx, s); err != nil {
			return err
		}
		if cur, err = m.stickyVersion(ctx, s, rt, e.Revision); err != nil {
			return err
		}
	}
	t := t0
	if tr != nil {
		t = tr.lap(&tr.Record, t)
	}
	var snap []byte
	if s.meta.Hibernated && s.meta.Version == cur.rec.Digest {
		if snap, err = m.loadSnapshot(ctx, k); err != nil {
			return err
		}
	}
	if tr != nil {
		t = tr.lap(&tr.Snapshot, t)
	}
	sctx := ctx
	if tr != nil {
		sctx = isolate.WithRestorePhases(ctx, &tr.Restore)
	}
	iso, err := m.start(sctx, cur, k, snap)
	if err != nil {
		return err
	}
	if tr != nil {
		t = tr.lap(&tr.Start, t)
	}
	s.iso, s.ver, s.fresh = iso, cur, true
	s.meta.Version = cur.rec.Digest
	if err := m.attachIdentity(ctx, s); err != nil {
		_ = iso.Close(context.WithoutCancel(ctx))
		s.iso = nil
		return err
	}
	if tr != nil {
		tr.lap(&tr.Identity, t)
	}
	m.met.activated(snap != nil, time.Since(t0))
	return nil
}

// Call runs one request in the session, creating and activating it as
// needed. The response is returned only after the request's state writes are
// durable; a failed request commits nothing. The label Flow, if set, sees
// the request enter and leave.
func (m *Manager) Call(ctx context.Context, agent, id string, req isolate.Request) (resp isolate.Response, err error) {
	ctx, span := telemetry.Start(ctx, "session.invoke", attrAgent, agent, attrSession, id)
	defer func() { telemetry.End(span, err) }()
	if len(req.Body) > m.MaxBodyBytes() {
		return isolate.Response{}, BodyTooLarge("request body", m.MaxBodyBytes())
	}
	if err := CheckAddr(agent, id); err != nil {
		return isolate.Response{}, err
	}
	if m.b.Flow == nil {
		resp, err = m.run(ctx, agent, id, req)
		return resp, storeUnavailable(err)
	}
	if err := m.b.Flow.Enter(ctx, agent, id); err != nil {
		return isolate.Response{}, storeUnavailable(err)
	}
	resp, err = m.run(ctx, agent, id, req)
	if ferr := m.b.Flow.Leave(detach(ctx), agent, id); ferr != nil {
		return isolate.Response{}, storeUnavailable(ferr)
	}
	return resp, storeUnavailable(err)
}

// storeUnavailable makes a store that cannot answer now (a replicated
// stream electing a new leader after a member died) a 503 problem with
// Retry-After instead of an internal error; other errors pass unchanged.
func storeUnavailable(err error) error {
	if err == nil || !errors.Is(err, store.ErrUnavailable) {
		return err
	}
	if k := api.AsProblem(err).Kind(); k != api.KindInternal && k != api.KindAgentError {
		return err
	}
	p := api.Errorf(api.KindUnavailable, "the store cannot answer right now (a cluster member may have just failed): retry in a second")
	p.RetryAfterSeconds = 1
	return fmt.Errorf("%w: %w", p, err)
}

func (m *Manager) call(ctx context.Context, agent, id string, req isolate.Request) (resp isolate.Response, err error) {
	s, err := m.acquire(withRecordWait(ctx), agent, id)
	if err != nil {
		return isolate.Response{}, err
	}
	defer s.mu.Unlock()
	defer func() {
		// A failed call leaves no record waiting either (commit waits
		// for it on success).
		if werr := m.recordDurable(s); werr != nil && err == nil {
			resp, err = isolate.Response{}, werr
		}
	}()
	start := time.Now() // activation is left out: new sessions would look slow
	digest := s.ver.rec.Digest
	defer func() { m.observe(agent, digest, start, resp.Status, err) }()
	f := &callFrame{host: callHost{m: m, s: s}} // one allocation for both
	h := &f.host
	var gate *gatedSink
	parent := ctx
	if req.Sink != nil {
		// A streamed call is not interrupted when its client goes away:
		// the sink says so and the stream is canceled (stream.go).
		ctx = detach(ctx)
		f.gate = gatedSink{BodySink: req.Sink, h: h}
		gate = &f.gate
		req.Sink = gate
	}
	h.ctx = ctx
	resp, err = s.iso.Fetch(m.limitCtx(parent, gate != nil, s.ver, h), req, h)
	cause := h.endCall()
	if gate != nil && gate.err != nil {
		return isolate.Response{}, gate.err
	}
	if err != nil {
		err = m.callFailed(s, err, cause)
		if h.storeDown.Load() {
			err = storeUnavailable(fmt.Errorf("%w: %w", store.ErrUnavailable, err))
		}
		return isolate.Response{}, err
	}
	if err := h.commit(ctx); err != nil {
		return isolate.Response{}, err
	}
	m.touch(s)
	m.requestDone(s)
	m.maybeEvict()
	return resp, nil
}

// callFrame is what one call allocates: its host and, for a call with a
// body sink, the sink's commit gate.
type callFrame struct {
	host callHost
	gate gatedSink
}

// MaxBodyBytes is the most bytes a body into or out of a session may have
// (the runtime's MaxBodyBytes, enforced at the isolate boundary).
func (m *Manager) MaxBodyBytes() int { return m.cfg.Runtime.MaxBodyBytes() }

// BodyTooLarge is the 413 problem for a body (what: "request body") over
// the session body limit.
func BodyTooLarge(what string, limit int) error {
	return api.Errorf(api.KindTooLarge, "%s is larger than the session body limit of %d bytes (session_max_body_bytes)", what, limit)
}

// errCPU and errWall are the causes recorded when a call hits a limit.
var (
	errCPU  = errors.New("cpu time limit exceeded")
	errWall = errors.New("wall time limit exceeded")
)

// testAfterArm, set by tests only, runs on the call's thread right after
// its limits are armed: a sleep there is a thread descheduled before the
// guest's first yield, as on a loaded node.
var testAfterArm func()

// limitCtx bounds a call by the version's wall time and by CPU time, where
// CPU time is the call's thread's CPU time less time spent in host calls
// (state, fetch); see cpuWatch. The context returned is h's (callCtx), with
// ctx's values; detached, ctx's end does not end it (a streamed call). The
// caller must end the call with h.endCall, on the same goroutine.
func (m *Manager) limitCtx(ctx context.Context, detached bool, v *version, h *callHost) context.Context {
	wall := v.wall
	if wall <= 0 {
		wall = 30 * time.Second
	}
	// One context, the host's; the session's watch ends it at either
	// limit (cpuwatch.go), so a call needs no deadline context and timer.
	h.lim.start(ctx, detached)
	w := &h.s.cpu
	if !w.claim() {
		w = &cpuWatch{}
		w.busy.Store(true)
	}
	h.cpu = w
	w.arm(wall, v.cpu, h, nil)
	if testAfterArm != nil {
		testAfterArm()
	}
	return &h.lim
}

// endCall ends a call limitCtx started: it disarms the watch, ends the
// call's context and returns why the call was stopped (errWall, errCPU,
// the parent's cause), or nil when it was not.
func (h *callHost) endCall() (cause error) {
	h.cpu.disarm()
	return h.lim.finish()
}

// callFailed maps an isolate error to a problem, drops a dead isolate
// (the next request restores the last snapshot) and puts the problem in
// the agent's log stream. s.mu must be held. The problem, which any caller
// of the agent may see, names only where the error was thrown; the log
// entry, which only the agent's owner reads, carries the whole backtrace
// (logFrames).
func (m *Manager) callFailed(s *session, err, cause error) error {
	frames, perr := m.callProblem(s, err, cause)
	m.record(context.Background(), s.key.agent, s.key.id, "exception", perr.Error()+frames)
	return perr
}

// callProblem is the problem of an isolate error, and for an error the
// agent threw its backtrace for the log (logFrames), the stack mapped once
// for both.
func (m *Manager) callProblem(s *session, err, cause error) (backtrace string, perr error) {
	var jsErr *isolate.JSError
	// The isolate classifies an interrupt (a CPU or wall limit) as
	// ErrTimeout wrapping the thrown value; that is a timeout, not
	// something the agent threw.
	if errors.As(err, &jsErr) && !errors.Is(err, isolate.ErrTimeout) {
		if jsErr.Name == "InternalError" && strings.Contains(jsErr.Message, "out of memory") {
			// The heap is exhausted: drop the isolate rather than keep
			// serving from a heap that may be full of live garbage.
			_ = s.iso.Close(context.Background())
			s.iso = nil
			m.forget(s)
			return "", api.Errorf(api.KindSessionMemoryExceeded, "session memory limit of %d MiB exceeded", s.ver.memoryMiB())
		}
		stack := s.ver.srcMap.mapStack(jsErr.Stack)
		return logFrames(stack), api.Errorf(api.KindAgentError, "agent threw %s%s", jsErr.Error(), where(stack))
	}
	switch {
	case errors.Is(err, isolate.ErrResponseTooLarge):
		var se *isolate.SizeError
		if errors.As(err, &se) {
			return "", api.Errorf(api.KindAgentResponseTooLarge, "the agent's response is %v bytes (session_max_body_bytes); it was refused unread", se)
		}
		return "", api.Errorf(api.KindAgentResponseTooLarge, "the agent's response is larger than the session body limit of %d bytes", m.MaxBodyBytes())
	case errors.Is(err, isolate.ErrRequestTooLarge):
		return "", BodyTooLarge("request body", m.MaxBodyBytes())
	}
	if s.iso.Err() != nil {
		_ = s.iso.Close(context.Background())
		s.iso = nil
		m.forget(s)
	}
	switch {
	case errors.Is(err, isolate.ErrTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		if cause != nil && !errors.Is(cause, context.Canceled) {
			return "", api.Errorf(api.KindSessionTimeout, "request stopped: %v", cause)
		}
		return "", api.Errorf(api.KindSessionTimeout, "request stopped: %v", err)
	case errors.Is(err, isolate.ErrMemoryExceeded):
		return "", api.Errorf(api.KindSessionMemoryExceeded, "session memory limit exceeded: %v", err)
	case errors.Is(err, isolate.ErrNoHandler):
		return "", api.Errorf(api.KindAgentError, "%v", err)
	default:
		return "", api.Errorf(api.KindSessionCrashed, "session crashed: %v", err)
	}
}

// maybeEvict hibernates LRU sessions when over the memory budget.
func (m *Manager) maybeEvict() {
	m.mu.Lock()
	over := m.liveMem > m.cfg.MemoryBudget
	m.mu.Unlock()
	if over {
		go m.sweep(context.Background())
	}
}

// hibernate snapshots s's heap, stores it and frees the isolate. s.mu must
// be held; reason is why, for the metrics (metrics.go). A session this
// node no longer owns is dropped unsaved: its owner has the newer heap.
func (m *Manager) hibernate(ctx context.Context, s *session, reason string) error {
	_, err := m.hibernateSaved(ctx, s, reason)
	return err
}

// hibernateSaved is hibernate reporting whether it stored s's heap and
// record (s.meta is then what the store holds).
func (m *Manager) hibernateSaved(ctx context.Context, s *session, reason string) (bool, error) {
	if m.fenced(s) {
		m.discardLocked(s)
		return false, nil
	}
	live := s.iso != nil
	err := m.saveAndFree(ctx, s, reason)
	if isFencedOut(err) {
		m.discardLocked(s) // the store refused it: another node took it
		return false, nil
	}
	return live && err == nil, err
}

// saveAndFree is hibernate without the ownership check. s.mu must be held.
func (m *Manager) saveAndFree(ctx context.Context, s *session, reason string) error {
	if s.iso == nil {
		m.forget(s)
		return nil
	}
	snap, err := s.iso.Snapshot()
	if err != nil {
		return fmt.Errorf("snapshot %s/%s: %w", s.key.agent, s.key.id, err)
	}
	next := s.meta
	m.mu.Lock()
	next.LastActive = s.lastActive.UTC()
	m.mu.Unlock()
	next.Hibernated = true
	next.SnapshotBytes = int64(len(snap))
	heapSaved, err := m.saveHibernated(ctx, s, snap, next)
	if heapSaved {
		// Even if the record failed: the stored heap's size decides
		// whether the next save drops a large heap object (snapshots.go).
		s.meta = next
	}
	if err != nil {
		return err
	}
	_ = s.iso.Close(ctx)
	s.iso = nil
	m.forget(s)
	m.met.left(reason, len(snap))
	return nil
}

// HibernateSession is Hibernate returning the session as it then is. The
// record a hibernation wrote is returned as written, without reading it
// back from the store (the API's hibernate answers with it).
func (m *Manager) HibernateSession(ctx context.Context, agent, id string) (api.Session, error) {
	if err := CheckAddr(agent, id); err != nil {
		return api.Session{}, err
	}
	m.mu.Lock()
	s := m.sessions[sessKey{agent, id}]
	m.mu.Unlock()
	if s == nil {
		return m.Session(ctx, agent, id) // hibernated already, or not found
	}
	s.mu.Lock()
	saved, err := false, error(nil)
	if !s.gone {
		saved, err = m.hibernateSaved(ctx, s, leaveRequest)
	}
	meta := s.meta
	s.mu.Unlock()
	if err != nil {
		return api.Session{}, err
	}
	if !saved {
		return m.Session(ctx, agent, id)
	}
	return m.view(meta), nil
}

// saveHibernated stores s's heap, then its record next (hibernated), and
// reports whether the heap was stored. A session that is not fenced (one
// node) writes the two at once, so they share a group-commit round
// (store/groupsync.go) and the hibernation waits for one fsync instead of
// two. Either order is safe after a crash, since nothing was acknowledged:
// a record that says hibernated beside the previous heap restores that heap
// (or the template when there is none); a new heap beside the previous
// record is either used (the session had hibernated before) or ignored (a
// new session restarts from its template). A fenced session writes the
// heap first: once another node holds its fence the heap is refused and
// its record must stay unwritten. So does a heap too large for a record,
// or one replacing such a heap: the record's snapshot size is what says a
// large-heap object exists to drop (saveSnapshot), so it must not be
// written ahead of the heap it describes.
func (m *Manager) saveHibernated(ctx context.Context, s *session, snap []byte, next Meta) (heapSaved bool, err error) {
	mkey := store.Key(s.key.agent, s.key.id)
	b, _ := json.Marshal(next)
	limit := int64(m.cfg.Store.MaxRecordBytes())
	if s.fences != nil || s.meta.SnapshotBytes > limit || int64(len(snap)) > limit {
		if err := m.saveSnapshot(ctx, s, snap); err != nil {
			return false, err
		}
		if _, err := m.meta.Put(ctx, mkey, b); err != nil {
			return true, fmt.Errorf("store session record: %w", err)
		}
		return true, nil
	}
	rec := make(chan error, 1)
	go func() {
		_, err := m.meta.Put(ctx, mkey, b)
		rec <- err
	}()
	err = m.saveSnapshot(ctx, s, snap)
	heapSaved = err == nil
	if rerr := <-rec; rerr != nil && err == nil {
		err = fmt.Errorf("store session record: %w", rerr)
	}
	return heapSaved, err
}

// Hibernate forces a session to hibernate now.
func (m *Manager) Hibernate(ctx context.Context, agent, id string) error {
	if err := CheckAddr(agent, id); err != nil {
		return err
	}
	m.mu.Lock()
	s := m.sessions[sessKey{agent, id}]
	m.mu.Unlock()
	if s == nil {
		_, err := m.Session(ctx, agent, id)
		return err // hibernated already, or not found
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return nil
	}
	return m.hibernate(ctx, s, leaveRequest)
}

// recordWaitKey marks a context whose caller waits for a new session's
// record itself (recordDurable) before it releases the session's lock.
type recordWaitKey struct{}

// withRecordWait returns ctx for acquire by a caller that calls
// recordDurable before it unlocks the session.
func withRecordWait(ctx context.Context) context.Context {
	return context.WithValue(ctx, recordWaitKey{}, true)
}

// waitsForRecord reports whether acquire's caller waits for the record.
func waitsForRecord(ctx context.Context) bool {
	return ctx.Value(recordWaitKey{}) != nil
}

// recordDurable waits until the record of a session activate created is on
// disk (with whatever the group-commit round that syncs it also carries).
// A failure drops the live session: its record may not be stored, so it
// must not serve. s.mu must be held.
func (m *Manager) recordDurable(s *session) error {
	if err := s.created.Wait(); err != nil {
		m.discardLocked(s)
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}
