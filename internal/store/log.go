package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func sortStrings(s []string) { slices.Sort(s) }

// Record is one entry of a Log.
type Record struct {
	Seq     uint64
	Subject string
	Data    []byte
	Time    time.Time
}

// Log is an append-only stream of records (audit, events).
type Log interface {
	// Append writes data under subject (which must be within the log's
	// subjects) and returns its sequence number once it is durable.
	Append(ctx context.Context, subject string, data []byte) (uint64, error)
	// AppendExpect is Append that succeeds only while the log's last
	// sequence is lastSeq (0: the log is empty), and fails with ErrConflict
	// otherwise. A writer that must not interleave with another (the
	// ledger's one committer) appends in order this way, or learns that
	// something else appended and rereads before it writes again.
	AppendExpect(ctx context.Context, subject string, data []byte, lastSeq uint64) (uint64, error)
	// Read returns up to limit records from sequence from (1 is the first),
	// optionally only those matching filter (a subject pattern; "" for all).
	// Records dropped by the retention limits are skipped.
	Read(ctx context.Context, from uint64, limit int, filter string) ([]Record, error)
	// Info reports how much the log holds now.
	Info(ctx context.Context) (LogInfo, error)
}

// LogInfo is what a log holds: its record count and bytes, and the first
// and last sequence numbers still kept.
type LogInfo struct {
	Records  uint64
	Bytes    uint64
	FirstSeq uint64
	LastSeq  uint64
}

// LogOptions configures a log.
type LogOptions struct {
	Description string
	// Subjects the log accepts, e.g. "audit.>".
	Subjects []string
	// MaxAge drops records older than this (0: keep forever).
	MaxAge time.Duration
	// MaxBytes drops the oldest records while the log holds more than
	// this many bytes (0: no limit).
	MaxBytes int64
}

// Log opens the named log, creating or updating its stream.
func (s *Store) Log(ctx context.Context, name string, o LogOptions) (Log, error) {
	cfg := jetstream.StreamConfig{
		Name:        name,
		Description: o.Description,
		Subjects:    o.Subjects,
		MaxAge:      o.MaxAge,
		MaxBytes:    o.MaxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    s.opts.Replicas,
		DenyDelete:  true,
		DenyPurge:   true,
	}
	l := &natsLog{s: s, stream: name}
	l.b = binding[jetstream.Stream]{s: s, open: func(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, cfg)
	}}
	if _, err := l.b.get(ctx); err != nil {
		return nil, fmt.Errorf("open log %s: %w", name, err)
	}
	return l, nil
}

type natsLog struct {
	s      *Store
	stream string
	b      binding[jetstream.Stream]
}

func (l *natsLog) Append(ctx context.Context, subject string, data []byte) (uint64, error) {
	if err := checkName("subject", subject); err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	if _, err := l.b.get(ctx); err != nil {
		return 0, fmt.Errorf("append %s: %w", short(subject), err)
	}
	t0 := time.Now()
	l.s.send()
	ack, err := l.s.cur.Load().js.Publish(ctx, subject, data)
	err = l.s.durable(l.stream, err)
	l.s.met.wrote("append", t0, err)
	if err != nil {
		return 0, fmt.Errorf("append %s: %w", short(subject), mapConnErr(tooLarge("record", len(data), err)))
	}
	return ack.Sequence, nil
}

func (l *natsLog) AppendExpect(ctx context.Context, subject string, data []byte, lastSeq uint64) (uint64, error) {
	if err := checkName("subject", subject); err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	if _, err := l.b.get(ctx); err != nil {
		return 0, fmt.Errorf("append %s: %w", short(subject), err)
	}
	t0 := time.Now()
	l.s.send()
	ack, err := l.s.cur.Load().js.Publish(ctx, subject, data, jetstream.WithExpectLastSequence(lastSeq))
	err = l.s.durable(l.stream, err)
	l.s.met.wrote("append", t0, err)
	if isWrongLastSeq(err) {
		return 0, fmt.Errorf("append %s after sequence %d: %w", short(subject), lastSeq, ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("append %s: %w", short(subject), mapConnErr(tooLarge("record", len(data), err)))
	}
	return ack.Sequence, nil
}

// isWrongLastSeq reports a failed expected-last-sequence check (the server
// sends 10164 instead of 10071 for replicated streams).
func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

func (l *natsLog) Read(ctx context.Context, from uint64, limit int, filter string) ([]Record, error) {
	if filter != "" {
		if err := checkName("filter", filter); err != nil {
			return nil, fmt.Errorf("read log: %w", err)
		}
	}
	st, err := l.b.get(ctx)
	if err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	if from == 0 {
		from = 1
	}
	var out []Record
	retries := 0
	for seq := from; len(out) < limit; {
		var (
			m   *jetstream.RawStreamMsg
			err error
		)
		if filter == "" {
			m, err = st.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				info, ierr := st.Info(ctx)
				if ierr != nil {
					return out, fmt.Errorf("read log: %w", mapConnErr(ierr))
				}
				if seq > info.State.LastSeq {
					break
				}
				if seq >= info.State.FirstSeq && retries < maxLoadRetries {
					// Inside the stream and not dropped by its limits: the
					// server answers "not found" for any failed load, also
					// a passing one under concurrent writes. Ask again.
					retries++
					if err := sleepCtx(ctx, time.Duration(retries)*time.Millisecond); err != nil {
						return out, fmt.Errorf("read log at %d: %w", seq, err)
					}
					continue
				}
				// Skip what the retention limits dropped in one step (or
				// a record that stays unreadable: the reader sees the gap).
				retries = 0
				seq = max(seq+1, info.State.FirstSeq)
				continue
			}
		} else {
			m, err = st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
		}
		if err != nil {
			return out, fmt.Errorf("read log at %d: %w", seq, mapConnErr(err))
		}
		out = append(out, Record{Seq: m.Sequence, Subject: m.Subject, Data: m.Data, Time: m.Time})
		seq, retries = m.Sequence+1, 0
	}
	return out, nil
}

// maxLoadRetries bounds how often Read asks again for a record the stream
// should hold but the server said it could not find.
const maxLoadRetries = 5

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (l *natsLog) Info(ctx context.Context) (LogInfo, error) {
	st, err := l.b.get(ctx)
	if err != nil {
		return LogInfo{}, fmt.Errorf("log info: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return LogInfo{}, fmt.Errorf("log info: %w", mapConnErr(err))
	}
	return LogInfo{Records: info.State.Msgs, Bytes: info.State.Bytes, FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq}, nil
}
