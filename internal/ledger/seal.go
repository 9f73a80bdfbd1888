package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/store"
)

// Sealer makes another append-only log (the audit stream) tamper-evident:
// Seal appends its new records to the ledger in batches, one TypeAudit
// entry per batch holding each record's sha256, and Check re-reads the
// sealed records and compares them with the ledger. Where it got to is
// kept in the store, and a batch entry's bytes depend only on the records
// (its time is the last record's), so a batch a crash left unrecorded is
// found by its hash and not appended twice.
type Sealer struct {
	l    *Ledger
	src  store.Log
	name string
	kv   store.KV
}

// NewSealer seals src, named name in the entries (1 to 128 bytes).
func NewSealer(ctx context.Context, st *store.Store, l *Ledger, name string, src store.Log) (*Sealer, error) {
	if err := checkText("audit.log", name, MaxName, true); err != nil {
		return nil, err
	}
	kv, err := st.KV(ctx, "ledger-seal", store.KVOptions{Description: "how far each sealed log is in the ledger"})
	if err != nil {
		return nil, fmt.Errorf("ledger sealer: %w", err)
	}
	return &Sealer{l: l, src: src, name: name, kv: kv}, nil
}

// next is the first sequence not sealed yet.
func (s *Sealer) next(ctx context.Context) (uint64, error) {
	e, err := s.kv.Get(ctx, s.name)
	if errors.Is(err, store.ErrNotFound) {
		return 1, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(e.Value), 10, 64)
}

// Seal appends every record not sealed yet, in batches of at most
// MaxAuditRecords consecutive records, and returns how many it sealed.
// Records dropped by the source's retention before they were sealed are
// skipped (a batch never spans a gap).
func (s *Sealer) Seal(ctx context.Context) (int, error) {
	sealed := 0
	for {
		from, err := s.next(ctx)
		if err != nil {
			return sealed, fmt.Errorf("seal %s: %w", s.name, err)
		}
		recs, err := s.src.Read(ctx, from, MaxAuditRecords, "")
		if err != nil {
			return sealed, fmt.Errorf("seal %s: %w", s.name, err)
		}
		if len(recs) == 0 {
			return sealed, nil
		}
		batch := &AuditBatch{Log: s.name, FirstSeq: recs[0].Seq}
		last := recs[0]
		for i, r := range recs {
			if r.Seq != recs[0].Seq+uint64(i) {
				break
			}
			batch.Digests = append(batch.Digests, DigestOf(r.Data))
			last = r
		}
		e := Entry{Type: TypeAudit, Time: last.Time.UTC().Truncate(time.Microsecond), Audit: batch}
		data, err := e.Encode()
		if err != nil {
			return sealed, fmt.Errorf("seal %s: %w", s.name, err)
		}
		if _, err := s.l.Lookup(ctx, LeafHash(data)); err != nil {
			if !api.IsKind(err, api.KindNotFound) {
				return sealed, fmt.Errorf("seal %s: %w", s.name, err)
			}
			if _, err := s.l.Append(ctx, e); err != nil {
				return sealed, fmt.Errorf("seal %s records %d-%d: %w", s.name, batch.FirstSeq, last.Seq, err)
			}
		}
		if _, err := s.kv.Put(ctx, s.name, []byte(strconv.FormatUint(last.Seq+1, 10))); err != nil {
			return sealed, fmt.Errorf("seal %s: %w", s.name, err)
		}
		sealed += len(batch.Digests)
	}
}

// SealError names the first sealed record that no longer matches.
type SealError struct {
	Log    string
	Seq    uint64
	Entry  uint64 // the ledger entry that sealed it
	Reason string
}

func (e *SealError) Error() string {
	return fmt.Sprintf("%s record %d (sealed by ledger entry %d): %s", e.Log, e.Seq, e.Entry, e.Reason)
}

// Check reads every TypeAudit entry of this log in the ledger and the
// records they seal, and returns a *SealError for the first record that
// was changed or is missing while the source still keeps its sequence
// (records older than the source's first kept one were dropped by its
// retention and are not checked). It returns how many records it checked.
func (s *Sealer) Check(ctx context.Context) (int, error) {
	info, err := s.src.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("check %s: %w", s.name, err)
	}
	checked := 0
	for i := uint64(0); i < s.l.Size(); i++ {
		rec, err := s.l.Entry(ctx, i)
		if err != nil {
			return checked, err
		}
		b := rec.Entry.Audit
		if rec.Entry.Type != TypeAudit || b == nil || b.Log != s.name {
			continue
		}
		recs, err := s.src.Read(ctx, b.FirstSeq, len(b.Digests), "")
		if err != nil {
			return checked, fmt.Errorf("check %s: %w", s.name, err)
		}
		byseq := map[uint64][]byte{}
		for _, r := range recs {
			byseq[r.Seq] = r.Data
		}
		for j, d := range b.Digests {
			seq := b.FirstSeq + uint64(j)
			if seq < info.FirstSeq {
				continue // dropped by retention
			}
			data, ok := byseq[seq]
			switch {
			case !ok:
				return checked, &SealError{Log: s.name, Seq: seq, Entry: i, Reason: "is missing"}
			case DigestOf(data) != d:
				return checked, &SealError{Log: s.name, Seq: seq, Entry: i, Reason: "was changed after it was sealed"}
			}
			checked++
		}
	}
	return checked, nil
}

// SealEvery calls seal every interval until ctx ends, logging its errors
// (a failed batch is sealed at the next tick: where it got to is kept).
func SealEvery(ctx context.Context, interval time.Duration, seal func(context.Context) error, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := seal(ctx); err != nil && ctx.Err() == nil {
			log.Warn("seal records into the ledger", "err", err)
		}
	}
}
