package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/store"
)

// editedLog is the audit stream as someone with the store left it: Read
// answers record edit with other bytes and drops record drop.
type editedLog struct {
	store.Log
	edit, drop uint64
}

func (e editedLog) Read(ctx context.Context, from uint64, limit int, filter string) ([]store.Record, error) {
	recs, err := e.Log.Read(ctx, from, limit, filter)
	out := recs[:0]
	for _, r := range recs {
		if r.Seq == e.drop {
			continue
		}
		if r.Seq == e.edit {
			r.Data = []byte(`{"type":"auth","detail":"nothing happened"}`)
		}
		out = append(out, r)
	}
	return out, err
}

// TestAuditSealClass: the audit stream's records are sealed into the
// ledger in batches (never more than MaxAuditRecords, never twice, not
// again after a crash between the append and the progress write), Check
// passes on the untouched stream, and names a record changed or removed
// after it was sealed.
func TestAuditSealClass(t *testing.T) {
	ctx := context.Background()
	l, st := openTest(t, true, Options{})
	src, err := st.Log(ctx, "audit-test", store.LogOptions{Subjects: []string{"audit.>"}})
	if err != nil {
		t.Fatal(err)
	}
	add := func(n int) {
		for i := range n {
			if _, err := src.Append(ctx, "audit.auth", []byte(fmt.Sprintf(`{"type":"auth","n":%d}`, i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	s, err := NewSealer(ctx, st, l, "audit", src)
	if err != nil {
		t.Fatal(err)
	}
	add(700)
	if n, err := s.Seal(ctx); err != nil || n != 700 || l.Size() != 2 {
		t.Fatalf("seal 700: %d %v, ledger %d entries (want 2 batches)", n, err, l.Size())
	}
	if n, err := s.Seal(ctx); err != nil || n != 0 || l.Size() != 2 {
		t.Fatalf("seal again: %d %v, ledger %d", n, err, l.Size())
	}
	add(3)
	// A crash after the append, before the progress was written.
	if n, err := s.Seal(ctx); err != nil || n != 3 || l.Size() != 3 {
		t.Fatalf("seal 3: %d %v, ledger %d", n, err, l.Size())
	}
	if _, err := s.kv.Put(ctx, "audit", []byte("701")); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Seal(ctx); err != nil || n != 3 || l.Size() != 3 {
		t.Fatalf("seal after a lost progress write: %d %v, ledger %d entries (want the batch found, not appended again)", n, err, l.Size())
	}
	if n, err := s.Check(ctx); err != nil || n != 703 {
		t.Fatalf("check: %d %v", n, err)
	}
	for _, c := range []struct {
		log    editedLog
		seq    uint64
		reason string
	}{
		{editedLog{Log: src, edit: 42}, 42, "changed"},
		{editedLog{Log: src, drop: 600}, 600, "missing"},
		{editedLog{Log: src, edit: 702}, 702, "changed"},
	} {
		bad := &Sealer{l: l, src: c.log, name: "audit", kv: s.kv}
		_, err := bad.Check(ctx)
		var se *SealError
		if !errors.As(err, &se) || se.Seq != c.seq || !strings.Contains(se.Reason, c.reason) {
			t.Errorf("record %d %s: %v", c.seq, c.reason, err)
		}
	}
	if _, err := NewSealer(ctx, st, l, "", src); err == nil {
		t.Error("a sealer without a name")
	}
}
