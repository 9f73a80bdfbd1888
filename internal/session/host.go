package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/agentcloud/agentcloud/internal/telemetry"
)

// maxStateValue caps one state value (JSON bytes).
const maxStateValue = 1 << 20

// callHost is the isolate.Host of one request (or alarm). State writes are
// buffered here and committed atomically by commit after the call succeeds;
// reads see the buffer first.
type callHost struct {
	m   *Manager
	s   *session
	ctx context.Context
	// writes maps user key -> value (nil value: delete).
	writes map[string][]byte
	order  []string
	alarm  *alarmChange
	// hostNanos is time spent in finished host calls, excluded from the
	// CPU limit; hostSince is when the host call in progress began (unix
	// nanoseconds, 0 when none), so a long one (env.sandbox.run, a fetch
	// waiting for an approval) does not count as CPU while it lasts.
	hostNanos atomic.Int64
	hostSince atomic.Int64
	// cpu is the watch of the call's limits (limitCtx), told of the
	// guest's yields; nil outside a limited call.
	cpu *cpuWatch
	// lim is the call's context, which the watch ends (callctx.go).
	lim callCtx
	// storeDown is set when a state read found the store unable to answer
	// (storeUnavailable): the request then fails as 503, not as the
	// agent's error, whatever the agent made of the exception.
	storeDown atomic.Bool
	// cacheName is the agent's name in the node's response cache, once
	// looked up in the call (cache.go).
	cacheName string
}

// stateErr notes a store that cannot answer and wraps err.
func (h *callHost) stateErr(op string, err error) error {
	if errors.Is(err, store.ErrUnavailable) {
		h.storeDown.Store(true)
	}
	return fmt.Errorf("%s: %w", op, err)
}

type alarmChange struct {
	at     time.Time // zero: delete
	delete bool
}

var (
	_ isolate.Host    = (*callHost)(nil)
	_ isolate.Yielder = (*callHost)(nil)
)

// Yield is called by the isolate on the call's thread at the guest's
// yields: the call's CPU time is judged there (cpuWatch.yield).
func (h *callHost) Yield() {
	if h.cpu != nil {
		h.cpu.yield(h)
	}
}

// enter marks the start of a host call; pass its result to timed.
func (h *callHost) enter() time.Time {
	now := time.Now()
	h.hostSince.Store(now.UnixNano())
	return now
}

func (h *callHost) timed(start time.Time) {
	h.hostNanos.Add(int64(time.Since(start)))
	h.hostSince.Store(0)
}

// hostTime is the time spent in host calls so far, including the one in
// progress.
// hostSince is read first: a call ending in between is then counted twice
// (erring towards less CPU), never missed.
func (h *callHost) hostTime() time.Duration {
	since := h.hostSince.Load()
	d := time.Duration(h.hostNanos.Load())
	if since != 0 {
		d += time.Since(time.Unix(0, since))
	}
	return d
}

func (h *callHost) stateKey(key string) string {
	return store.Key(h.s.key.agent, h.s.key.id, key)
}

func (h *callHost) StateGet(key string) ([]byte, bool, error) {
	if p := api.CheckID("key", api.IDStateKey, key); p != nil {
		return nil, false, p
	}
	defer h.timed(h.enter())
	if v, ok := h.writes[key]; ok {
		return v, v != nil, nil
	}
	e, err := h.m.state.Get(h.ctx, h.stateKey(key))
	if err != nil {
		if isNotFound(err) {
			return nil, false, nil
		}
		return nil, false, h.stateErr("state get", err)
	}
	return e.Value, true, nil
}

func (h *callHost) StatePut(key string, value []byte) error {
	if len(value) > maxStateValue {
		return fmt.Errorf("state value for %q is %d bytes; the limit is %d", key, len(value), maxStateValue)
	}
	if p := api.CheckID("key", api.IDStateKey, key); p != nil {
		return p
	}
	h.buffer(key, append([]byte(nil), value...))
	return nil
}

func (h *callHost) StateDelete(key string) error {
	if p := api.CheckID("key", api.IDStateKey, key); p != nil {
		return p
	}
	h.buffer(key, nil)
	return nil
}

func (h *callHost) buffer(key string, v []byte) {
	if h.writes == nil {
		h.writes = map[string][]byte{}
	}
	if _, seen := h.writes[key]; !seen {
		h.order = append(h.order, key)
	}
	h.writes[key] = v
}

func (h *callHost) StateList(prefix string, limit int) ([]isolate.KV, error) {
	if len(prefix) > api.IDRules[api.IDStateKey].Max {
		return nil, api.FieldErrorf(api.KindInvalidID, "prefix", "state list prefix is %d bytes; the limit is %d", len(prefix), api.IDRules[api.IDStateKey].Max)
	}
	defer h.timed(h.enter())
	base := store.Key(h.s.key.agent, h.s.key.id)
	keys, err := h.m.state.Keys(h.ctx, base)
	if err != nil {
		return nil, h.stateErr("state list", err)
	}
	merged := map[string][]byte{}
	var names []string
	for _, k := range keys {
		parts, err := store.KeyParts(k)
		if err != nil || len(parts) != 3 || !strings.HasPrefix(parts[2], prefix) {
			continue
		}
		if _, buffered := h.writes[parts[2]]; buffered {
			continue
		}
		merged[parts[2]] = nil // fetched below
		names = append(names, parts[2])
	}
	for k, v := range h.writes {
		if v != nil && strings.HasPrefix(k, prefix) {
			merged[k] = v
			names = append(names, k)
		}
	}
	sort.Strings(names)
	if limit > 0 && len(names) > limit {
		names = names[:limit]
	}
	out := make([]isolate.KV, 0, len(names))
	for _, k := range names {
		v := merged[k]
		if v == nil {
			e, err := h.m.state.Get(h.ctx, h.stateKey(k))
			if err != nil {
				continue // deleted concurrently: impossible under the input gate, but harmless
			}
			v = e.Value
		}
		out = append(out, isolate.KV{Key: k, Value: v})
	}
	return out, nil
}

func (h *callHost) SetAlarm(at time.Time) error {
	h.alarm = &alarmChange{at: at.UTC()}
	return nil
}

func (h *callHost) GetAlarm() (time.Time, bool, error) {
	if h.alarm != nil {
		return h.alarm.at, !h.alarm.delete, nil
	}
	if h.s.meta.Alarm != nil {
		return *h.s.meta.Alarm, true, nil
	}
	return time.Time{}, false, nil
}

func (h *callHost) DeleteAlarm() error {
	h.alarm = &alarmChange{delete: true}
	return nil
}

func (h *callHost) Fetch(ctx context.Context, req isolate.Request) (_ isolate.Response, err error) {
	defer h.timed(h.enter())
	ctx, span := telemetry.Start(ctx, "isolate.host fetch", "http.request.method", req.Method)
	defer func() { telemetry.End(span, err) }()
	if h.m.b.Fetcher == nil {
		return isolate.Response{}, fmt.Errorf("fetch %s: outbound requests are disabled on this node", req.URL)
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, req.URL, bytes.NewReader(req.Body))
	if err != nil {
		return isolate.Response{}, fmt.Errorf("fetch: %w", err)
	}
	for _, kv := range req.Headers {
		hr.Header.Add(kv[0], kv[1])
	}
	resp, err := h.m.b.Fetcher.Fetch(ctx, h.caller(), hr)
	if err != nil {
		return isolate.Response{}, fmt.Errorf("fetch %s: %w", req.URL, err)
	}
	defer resp.Body.Close()
	limit := h.m.MaxBodyBytes()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return isolate.Response{}, fmt.Errorf("fetch %s: read body: %w", req.URL, err)
	}
	if len(body) > limit {
		return isolate.Response{}, fmt.Errorf("fetch %s: the response body is larger than the session body limit of %d bytes", req.URL, limit)
	}
	out := isolate.Response{Status: resp.StatusCode, Body: body}
	for k, vs := range resp.Header {
		for _, v := range vs {
			out.Headers = append(out.Headers, [2]string{k, v})
		}
	}
	return out, nil
}

// caller names this call's session and carries its manifest's allowlists.
func (h *callHost) caller() Caller {
	return h.s.callerBase()
}

// Invoke dispatches env.<service>.<method>(args) to the configured Service.
func (h *callHost) Invoke(ctx context.Context, service, method string, args []byte) (_ []byte, err error) {
	defer h.timed(h.enter())
	ctx, span := telemetry.Start(ctx, "isolate.host env", "agentcloud.env.service", service, "agentcloud.env.method", method)
	defer func() { telemetry.End(span, err) }()
	if service == "websocket" {
		return h.m.sockets.invoke(h.s.key, method, args)
	}
	svc := h.m.service(service)
	if svc == nil {
		return nil, isolate.HostErrorf("NotSupportedError", "env.%s is not available on this node", service)
	}
	return svc.Invoke(ctx, h.caller(), method, args)
}

// Log records the agent's console output at the slog level of its console
// method; the method and text go under "console" and "text", never under
// slog's own "level" and "msg" keys (a JSON log line would repeat them).
// It also goes to the agent's log stream (logs.go), truncated as there.
// A backtrace in it is mapped to the agent's source first (sourcemap.go).
func (h *callHost) Log(level, msg string) {
	if h.s.ver != nil && strings.Contains(msg, "    at ") {
		// A backtrace names the agent's source. Mapping it (and decoding
		// the map, the first time) is the platform's work, not the
		// agent's: host time, outside its CPU limit.
		start := h.enter()
		msg = h.s.ver.srcMap.mapStack(msg)
		h.timed(start)
	}
	msg = h.m.record(h.ctx, h.s.key.agent, h.s.key.id, level, msg)
	h.m.log.Log(h.ctx, consoleLevel(level), "agent console", "agent", h.s.key.agent, "session", h.s.key.id, "console", level, "text", msg)
}

// consoleLevel maps a console method to a slog level.
func consoleLevel(method string) slog.Level {
	switch method {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// txnRecord is the write-ahead record of a multi-key commit.
type txnRecord struct {
	Puts    map[string]json.RawMessage `json:"puts,omitempty"`
	Deletes []string                   `json:"deletes,omitempty"`
}

// commit makes the call's buffered writes durable, atomically: a single
// write goes straight to the state bucket; several are first recorded as one
// write-ahead record (the commit point), then applied, then the record is
// removed. A crash between the two is repaired by recoverTxn on activation.
//
// A session this node no longer owns (or owns under a newer epoch) commits
// nothing and drops its heap: the owner runs it now (owner.go). The store
// checks the same in each write (fence.go), so a node that still believes
// it owns the session commits nothing either once another has taken it.
func (h *callHost) commit(ctx context.Context) error {
	if h.m.fenced(h.s) {
		h.m.discardLocked(h.s)
		return notOwner(h.s.key)
	}
	err := h.commitWrites(ctx)
	if isFencedOut(err) {
		h.m.discardLocked(h.s)
		return notOwner(h.s.key)
	}
	if err != nil {
		return err
	}
	// A new session's record is durable before its first answer: after
	// the writes above it costs no round of its own (their round synced
	// it too).
	return h.m.recordDurable(h.s)
}

// commitWrites is commit after the ownership check.
func (h *callHost) commitWrites(ctx context.Context) error {
	limit := h.m.cfg.Store.MaxRecordBytes()
	switch {
	case len(h.order) == 1:
		k := h.order[0]
		var err error
		if v := h.writes[k]; v != nil {
			if len(v) > limit {
				return commitTooLarge(len(v), limit)
			}
			err = putFenced(ctx, h.m.state, h.s.stateFence(), h.stateKey(k), v)
		} else {
			err = deleteFenced(ctx, h.m.state, h.s.stateFence(), h.stateKey(k))
		}
		if err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	case len(h.order) > 1:
		rec := txnRecord{Puts: map[string]json.RawMessage{}}
		for _, k := range h.order {
			if v := h.writes[k]; v != nil {
				rec.Puts[k] = v
			} else {
				rec.Deletes = append(rec.Deletes, k)
			}
		}
		b, err := encodeTxn(rec)
		if err != nil {
			return fmt.Errorf("encode commit: %w", err)
		}
		if len(b) > limit {
			return commitTooLarge(len(b), limit)
		}
		tkey := store.Key(h.s.key.agent, h.s.key.id)
		h.m.txnIdx.mark(tkey) // before the record exists (txnindex.go)
		if err := putFenced(ctx, h.m.txns, h.s.txnsFence(), tkey, b); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		// The record is the commit point: from here the commit stands. If
		// another node took the session meanwhile, it applies the record
		// when it activates the session (it claimed the fence after the
		// record was written); this node only stops serving it.
		err = h.m.applyTxn(ctx, h.s, rec)
		if err == nil {
			if err = deleteFenced(ctx, h.m.txns, h.s.txnsFence(), tkey); err != nil {
				err = fmt.Errorf("commit cleanup: %w", err)
			} else {
				h.m.txnIdx.unmark(tkey)
			}
		}
		if err = h.m.lostAfterCommit(h.s, err); err != nil {
			return err
		}
	}
	n := 0
	for _, v := range h.writes {
		n += len(v)
	}
	h.m.met.stateWritten(n)
	h.writes, h.order = nil, nil
	if a := h.alarm; a != nil && !h.s.lost {
		h.alarm = nil
		return h.m.saveAlarm(ctx, h.s, a)
	}
	return nil
}

// encodeTxn encodes a write-ahead record as compact JSON without HTML
// escaping, so the record is about the size of the values it carries (a
// value full of "<" would otherwise grow sixfold).
func encodeTxn(rec txnRecord) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rec); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// commitTooLarge is the 413 problem for a request whose state writes do not
// fit the one store record that commits them atomically. It is also
// store.ErrTooLarge. Nothing of the request is committed.
func commitTooLarge(n, limit int) error {
	return api.Errorf(api.KindTooLarge, "the state writes of this request are %d bytes together; one request may commit at most %d bytes (the store's record size), so nothing was written: split the writes over several requests: %w", n, limit, store.ErrTooLarge)
}

// lostAfterCommit handles a write refused by the fence after the commit
// point: the commit stands (the new owner finishes it), so the request's
// answer goes out, but s is marked lost and dropped at its next use.
func (m *Manager) lostAfterCommit(s *session, err error) error {
	if isFencedOut(err) {
		s.lost = true
		return nil
	}
	return err
}

func (m *Manager) applyTxn(ctx context.Context, s *session, rec txnRecord) error {
	k := s.key
	for key, v := range rec.Puts {
		if err := putFenced(ctx, m.state, s.stateFence(), store.Key(k.agent, k.id, key), v); err != nil {
			return fmt.Errorf("apply commit: %w", err)
		}
	}
	for _, key := range rec.Deletes {
		if err := deleteFenced(ctx, m.state, s.stateFence(), store.Key(k.agent, k.id, key)); err != nil {
			return fmt.Errorf("apply commit: %w", err)
		}
	}
	return nil
}

// recoverTxn finishes a commit interrupted by a crash. On one node it
// reads the bucket only for a key that may hold one (txnindex.go).
func (m *Manager) recoverTxn(ctx context.Context, s *session) error {
	k := s.key
	tkey := store.Key(k.agent, k.id)
	if m.txnIdx.absent(tkey) {
		return nil
	}
	e, err := m.txns.Get(ctx, tkey)
	if isNotFound(err) {
		m.txnIdx.unmark(tkey)
		return nil
	}
	if err != nil {
		return err
	}
	var rec txnRecord
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		return fmt.Errorf("pending commit of %s/%s: %w", k.agent, k.id, err)
	}
	if err := m.applyTxn(ctx, s, rec); err != nil {
		return err
	}
	if err := deleteFenced(ctx, m.txns, s.txnsFence(), tkey); err != nil {
		return err
	}
	m.txnIdx.unmark(tkey)
	return nil
}
