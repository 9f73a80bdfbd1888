package session

import (
	"context"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/agentcloud/agentcloud/api"
)

// LogLimits bounds the log streams this node keeps of its live sessions
// (console.* output and the errors requests end with). The streams are in
// memory only (docs/RATIONALE.md says why); every limit applies on append,
// in one place (logBuffer.add), so no caller can forget one.
type LogLimits struct {
	// AgentLines and AgentBytes cap one agent's stream (defaults 1000
	// entries, 1 MiB): its oldest entries go first.
	AgentLines int
	AgentBytes int64
	// TenantBytes caps the streams of one owner's agents together
	// (default 8 MiB): past it, the owner's largest stream loses its
	// oldest entries.
	TenantBytes int64
	// TotalBytes caps every stream on the node (default 64 MiB): past it,
	// the largest stream of the owner holding the most loses its oldest
	// entries, so one tenant's noise never evicts another's lines first.
	TotalBytes int64
	// LineBytes is the longest text kept of one entry (default 8 KiB);
	// the rest is cut off and counted in LogEntry.Truncated.
	LineBytes int
}

// Default log limits.
const (
	DefaultLogAgentLines  = 1000
	DefaultLogAgentBytes  = 1 << 20
	DefaultLogTenantBytes = 8 << 20
	DefaultLogTotalBytes  = 64 << 20
	DefaultLogLineBytes   = 8 << 10
)

// logEntryOverhead is what an entry costs beside its text and session id.
const logEntryOverhead = 96

func (l LogLimits) withDefaults() LogLimits {
	if l.AgentLines <= 0 {
		l.AgentLines = DefaultLogAgentLines
	}
	if l.AgentBytes <= 0 {
		l.AgentBytes = DefaultLogAgentBytes
	}
	if l.TenantBytes <= 0 {
		l.TenantBytes = DefaultLogTenantBytes
	}
	if l.TotalBytes <= 0 {
		l.TotalBytes = DefaultLogTotalBytes
	}
	if l.LineBytes <= 0 {
		l.LineBytes = DefaultLogLineBytes
	}
	return l
}

// logRing is one agent's stream, oldest entry first.
type logRing struct {
	agent   string
	tenant  *logTenant
	entries []api.LogEntry
	bytes   int64
	first   uint64 // Seq of the ring's first entry ever (seqFloor+1 at creation)
	next    uint64 // Seq of the next entry
	// wake is closed by the next append (nil when nobody waits).
	wake chan struct{}
}

// oldest is the Seq of the oldest entry kept (next when none is).
func (r *logRing) oldest() uint64 {
	if len(r.entries) == 0 {
		return r.next
	}
	return r.entries[0].Seq
}

type logTenant struct {
	owner string
	bytes int64
	rings map[*logRing]struct{}
}

// logBuffer holds every agent's stream on this node.
type logBuffer struct {
	lim LogLimits

	mu      sync.Mutex
	rings   map[string]*logRing
	tenants map[string]*logTenant
	total   int64
	closed  bool
	// seqFloor is above every Seq this node has issued: a new stream
	// numbers from seqFloor+1. It starts at the node's start time in
	// microseconds, so a restarted node (its streams are in memory) numbers
	// above every entry of its run before, and a cursor from then reads
	// the new run from its start rather than skipping it; it then follows
	// every Seq issued, so a stream made again (an agent deleted and made
	// anew) does too. (A run would have to log more than one entry per
	// microsecond of its life to overtake the next run's start.)
	seqFloor uint64
}

// newLogBuffer makes a node's log streams; start is the node's start time
// in microseconds (seqFloor).
func newLogBuffer(lim LogLimits, start uint64) *logBuffer {
	return &logBuffer{lim: lim.withDefaults(), rings: map[string]*logRing{}, tenants: map[string]*logTenant{}, seqFloor: start}
}

// truncateLine cuts text to at most max bytes on a UTF-8 boundary and
// says how many bytes were cut.
func truncateLine(text string, max int) (string, int) {
	if len(text) <= max {
		return text, 0
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	return text[:cut], len(text) - cut
}

func entrySize(e *api.LogEntry) int64 {
	return int64(len(e.Text) + len(e.Session) + logEntryOverhead)
}

// ring returns agent's stream, creating it for owner; b.mu must be held.
func (b *logBuffer) ring(agent, owner string) *logRing {
	if r := b.rings[agent]; r != nil {
		return r
	}
	t := b.tenants[owner]
	if t == nil {
		t = &logTenant{owner: owner, rings: map[*logRing]struct{}{}}
		b.tenants[owner] = t
	}
	r := &logRing{agent: agent, tenant: t, first: b.seqFloor + 1, next: b.seqFloor + 1}
	t.rings[r] = struct{}{}
	b.rings[agent] = r
	return r
}

// add appends e (its Text already truncated) to agent's stream and evicts
// what the limits require.
func (b *logBuffer) add(agent, owner string, e api.LogEntry) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	r := b.ring(agent, owner)
	e.Seq = r.next
	r.next++
	b.seqFloor = max(b.seqFloor, e.Seq)
	r.entries = append(r.entries, e)
	n := entrySize(&e)
	r.bytes += n
	r.tenant.bytes += n
	b.total += n
	for len(r.entries) > b.lim.AgentLines || r.bytes > b.lim.AgentBytes {
		b.evict(r)
	}
	for r.tenant.bytes > b.lim.TenantBytes {
		b.evict(largestRing(r.tenant))
	}
	for b.total > b.lim.TotalBytes {
		var big *logTenant
		for _, t := range b.tenants {
			if big == nil || t.bytes > big.bytes {
				big = t
			}
		}
		b.evict(largestRing(big))
	}
	if r.wake != nil {
		close(r.wake)
		r.wake = nil
	}
}

func largestRing(t *logTenant) *logRing {
	var big *logRing
	for r := range t.rings {
		if big == nil || r.bytes > big.bytes {
			big = r
		}
	}
	return big
}

// evict drops r's oldest entry; b.mu must be held.
func (b *logBuffer) evict(r *logRing) {
	n := entrySize(&r.entries[0])
	r.entries[0] = api.LogEntry{}
	r.entries = r.entries[1:]
	r.bytes -= n
	r.tenant.bytes -= n
	b.total -= n
}

// read returns up to limit entries of agent's stream after Seq after (of
// one session when session is not ""), and a channel closed by the next
// append (or by close) for a reader that follows.
func (b *logBuffer) read(agent, owner, session string, after uint64, limit int) (api.LogList, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := api.LogList{Entries: []api.LogEntry{}}
	if b.closed {
		done := make(chan struct{})
		close(done)
		return l, done
	}
	r := b.ring(agent, owner)
	switch {
	case after >= r.next:
		// Ahead of the stream: not a position it gave; start at the end.
		after = r.next - 1
	case after+1 < r.first:
		// From before the stream began (the node's run before a restart,
		// or the agent before it was deleted and made anew): those
		// entries are gone with that run; read this one from its start.
		after = r.first - 1
	}
	if old := r.oldest(); after+1 < old {
		l.Missed = old - after - 1
		after = old - 1
	}
	l.Next = after
	// Entries are numbered without gaps, so the first one after after is
	// found by arithmetic.
	for i := int(after + 1 - r.oldest()); i < len(r.entries) && len(l.Entries) < limit; i++ {
		e := r.entries[i]
		l.Next = e.Seq
		if session == "" || e.Session == session {
			l.Entries = append(l.Entries, e)
		}
	}
	if r.wake == nil {
		r.wake = make(chan struct{})
	}
	return l, r.wake
}

// drop forgets agent's stream (the agent was deleted).
func (b *logBuffer) drop(agent string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.rings[agent]
	if r == nil {
		return
	}
	for len(r.entries) > 0 {
		b.evict(r)
	}
	delete(r.tenant.rings, r)
	if len(r.tenant.rings) == 0 {
		delete(b.tenants, r.tenant.owner)
	}
	delete(b.rings, agent)
	if r.wake != nil {
		close(r.wake)
	}
}

// close wakes every follower for the last time.
func (b *logBuffer) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for _, r := range b.rings {
		if r.wake != nil {
			close(r.wake)
			r.wake = nil
		}
	}
}

// usage is the bytes kept in all streams (tests).
func (b *logBuffer) usage() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total
}

// MaxLogRead is the most entries one read of an agent's log answers.
const MaxLogRead = 1000

// logOwner is the tenant an agent's stream counts against ("" when the
// agent is unknown).
func (m *Manager) logOwner(ctx context.Context, agent string) string {
	ar, _, _ := m.agentRecord(ctx, agent)
	return ar.Owner
}

// record adds one entry to agent's stream, truncating its text, and
// returns the text kept. The pipeline's scratch sessions (tests of a
// version not yet released) are not the agent's traffic: their lines go
// to the daemon's log only.
func (m *Manager) record(ctx context.Context, agent, session, level, text string) string {
	text, cut := truncateLine(text, m.logs.lim.LineBytes)
	if strings.HasPrefix(session, scratchPrefix) {
		return text
	}
	m.logs.mu.Lock()
	r := m.logs.rings[agent]
	m.logs.mu.Unlock()
	owner := ""
	if r != nil {
		owner = r.tenant.owner
	} else {
		owner = m.logOwner(ctx, agent)
	}
	m.logs.add(agent, owner, api.LogEntry{Time: m.now(), Agent: agent, Session: session, Level: level, Text: text, Truncated: cut})
	return text
}

// Logs reads an agent's log stream on this node: up to limit entries
// (at most MaxLogRead) after Seq after, of one session when session is not
// "". The channel is closed when a newer entry arrives or the Manager
// closes; a follower reads again then (Stopping says which).
func (m *Manager) Logs(ctx context.Context, agent, session string, after uint64, limit int) (api.LogList, <-chan struct{}, error) {
	if p := api.CheckID("agent", api.IDAgent, agent); p != nil {
		return api.LogList{}, nil, p
	}
	if session != "" {
		if p := api.CheckID("session", api.IDSession, session); p != nil {
			return api.LogList{}, nil, p
		}
	}
	return m.logsOf(ctx, agent, session, after, limit)
}

// PreviewLogs reads the log stream of agent's preview sessions (agentcloud
// dev) as Logs reads the agent's; a 404 when the agent has no preview the
// caller's traffic reaches (PreviewAgent).
func (m *Manager) PreviewLogs(ctx context.Context, agent, session string, after uint64, limit int) (api.LogList, <-chan struct{}, error) {
	if session != "" {
		if p := api.CheckID("session", api.IDSession, session); p != nil {
			return api.LogList{}, nil, p
		}
	}
	name, err := m.PreviewAgent(ctx, agent)
	if err != nil {
		return api.LogList{}, nil, err
	}
	return m.logsOf(ctx, name, session, after, limit)
}

// logsOf reads the stream of the agent named name (ids checked).
func (m *Manager) logsOf(ctx context.Context, agent, session string, after uint64, limit int) (api.LogList, <-chan struct{}, error) {
	if limit <= 0 || limit > MaxLogRead {
		limit = MaxLogRead
	}
	ar, ok, err := m.agentRecord(ctx, agent)
	if err != nil {
		return api.LogList{}, nil, err
	}
	if !ok {
		return api.LogList{}, nil, api.Errorf(api.KindNotFound, "agent %s is not deployed", agent)
	}
	l, wake := m.logs.read(agent, ar.Owner, session, after, limit)
	return l, wake, nil
}

// Stopping is closed when the Manager begins to close.
func (m *Manager) Stopping() <-chan struct{} { return m.stop }
