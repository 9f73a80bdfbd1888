// Package audit owns agentcloud's append-only audit stream: authentication
// failures, policy decisions, label changes, approvals, secret uses and
// egress decisions, each one JSON record in a store.Log kept under a
// retention policy (age and size). It also offers the tools that keep
// records of untrusted input bounded: Clip for fields, Limiter for records
// per source. It records and reads; it does not decide anything and it
// never sees secret values.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/store"
)

// Event types.
const (
	TypeAuth     = "auth"
	TypeDecision = "decision"
	TypeLabel    = "label"
	TypeApproval = "approval"
	TypeSecret   = "secret"
	TypeEgress   = "egress"
	TypePolicy   = "policy"
	TypeToken    = "token"
)

// subjectPrefix is the first token of every audit subject: audit.<type>.
const subjectPrefix = "audit"

// queueSize bounds events waiting to be written; Record blocks beyond it.
const queueSize = 4096

// Log is the audit stream. Records are written in order by one background
// writer (group-committed by the store's fsync), so a request never waits
// for the disk; List and Close wait for everything recorded before them.
type Log struct {
	log store.Log
	sl  *slog.Logger
	now func() time.Time

	mu     sync.Mutex // protects enq and closed, and orders sends on q
	enq    uint64     // events queued so far
	closed bool
	q      chan []byte
	done   atomic.Uint64 // events written (or given up on) so far
	wg     sync.WaitGroup
}

// Retention is how long and how much of the audit stream is kept; the
// oldest records go first. Zero values keep everything.
type Retention struct {
	MaxAge   time.Duration
	MaxBytes int64
}

// Open opens (or creates) the audit stream in st, applying the retention
// policy (also to an existing stream).
func Open(ctx context.Context, st *store.Store, log *slog.Logger, keep Retention) (*Log, error) {
	l, err := st.Log(ctx, "audit", store.LogOptions{Description: "append-only security audit stream", Subjects: []string{subjectPrefix + ".>"},
		MaxAge: keep.MaxAge, MaxBytes: keep.MaxBytes})
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Log{log: l, sl: log, now: time.Now, q: make(chan []byte, queueSize)}
	a.wg.Add(1)
	go a.write()
	return a, nil
}

func (l *Log) write() {
	defer l.wg.Done()
	for b := range l.q {
		var ev struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(b, &ev)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := l.log.Append(ctx, subjectPrefix+"."+ev.Type, b); err != nil {
			l.sl.Error("audit record lost", "type", ev.Type, "err", err)
		}
		cancel()
		l.done.Add(1)
	}
}

// Flush waits until every event recorded before the call is written.
func (l *Log) Flush(ctx context.Context) error {
	l.mu.Lock()
	target := l.enq
	l.mu.Unlock()
	for l.done.Load() < target {
		select {
		case <-ctx.Done():
			return fmt.Errorf("flush audit: %w", ctx.Err())
		case <-time.After(100 * time.Microsecond):
		}
	}
	return nil
}

// Close writes what is queued and stops the writer.
func (l *Log) Close() {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.q)
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// Source is the stream the records are in, for sealing them into the
// ledger (read only; write with Record).
func (l *Log) Source() store.Log { return l.log }

// Record queues ev (Time defaults to now) for writing, in order. It blocks
// only while the queue is full. A failure to write is logged.
func (l *Log) Record(ctx context.Context, ev api.AuditEvent) error {
	if ev.Time.IsZero() {
		ev.Time = l.now().UTC()
	}
	ev.Seq = 0
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("audit %s: %w", ev.Type, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		l.sl.ErrorContext(ctx, "audit record after close", "type", ev.Type)
		return fmt.Errorf("audit %s: log closed", ev.Type)
	}
	l.enq++
	l.q <- b
	return nil
}

// Size reports the records and bytes the stream holds, once everything
// recorded before the call is written.
func (l *Log) Size(ctx context.Context) (records, bytes uint64, err error) {
	if err := l.Flush(ctx); err != nil {
		return 0, 0, err
	}
	info, err := l.log.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("audit size: %w", err)
	}
	return info.Records, info.Bytes, nil
}

// Filter selects events.
type Filter struct {
	From    uint64 // first sequence (1 = oldest)
	Limit   int    // default 100, at most 1000
	Type    string // "" for all
	Session string // AGENT/SESSION; "" for all
}

// maxScan bounds how many records one List reads while filtering.
const maxScan = 20000

// List returns events matching f and the sequence to continue from.
func (l *Log) List(ctx context.Context, f Filter) ([]api.AuditEvent, uint64, error) {
	if err := l.Flush(ctx); err != nil {
		return nil, f.From, err
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	subject := ""
	if f.Type != "" {
		subject = subjectPrefix + "." + f.Type
	}
	from := max(f.From, 1)
	out := []api.AuditEvent{}
	for scanned := 0; len(out) < f.Limit && scanned < maxScan; {
		recs, err := l.log.Read(ctx, from, min(500, maxScan-scanned), subject)
		if err != nil {
			return nil, from, fmt.Errorf("list audit: %w", err)
		}
		if len(recs) == 0 {
			break
		}
		scanned += len(recs)
		for _, r := range recs {
			from = r.Seq + 1
			var ev api.AuditEvent
			if json.Unmarshal(r.Data, &ev) != nil {
				continue
			}
			if f.Session != "" && ev.Session != f.Session {
				continue
			}
			ev.Seq = r.Seq
			out = append(out, ev)
			if len(out) == f.Limit {
				break
			}
		}
	}
	return out, from, nil
}
