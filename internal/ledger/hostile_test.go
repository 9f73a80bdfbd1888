package ledger

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
)

// TestLedgerHostileInputClass: every kind of bad request to the ledger is
// refused with a clear 4xx problem (never a 5xx, never a crash) and leaves
// the log as it was: oversized entries, unknown types, parents that do not
// exist or carry another hash, reads, proofs and tiles beyond the tree,
// malformed tile paths, abandoned and late appends.
func TestLedgerHostileInputClass(t *testing.T) {
	ctx := context.Background()
	l, _ := openTest(t, true, Options{})
	small, _ := openTest(t, true, Options{MaxEntryBytes: 1024})
	foreign, _ := openTest(t, true, Options{})
	rs := appendN(t, l, 10)
	var fr []Receipt
	for i := range 10 {
		r, err := foreign.Append(ctx, changeEntry(1000+i))
		if err != nil {
			t.Fatal(err)
		}
		fr = append(fr, r)
	}
	size := l.Size()

	reasons := make([]string, MaxReasons)
	for i := range reasons {
		reasons[i] = strings.Repeat("r", MaxText)
	}
	huge := policyEntry(rs[0])
	huge.Policy.Reasons = reasons
	big := changeEntry(1)
	big.Change.Message = strings.Repeat("m", 2000)

	type tc struct {
		name   string
		call   func() error
		kind   api.Kind
		field  string
		detail string
	}
	cases := []tc{
		{"entry over the format limit", func() error { _, err := l.Append(ctx, huge); return err }, api.KindTooLarge, "", "the limit is 65535"},
		{"entry over the configured limit", func() error { _, err := small.Append(ctx, big); return err }, api.KindTooLarge, "", "the limit is 1024"},
		{"unknown type", func() error { _, err := l.Append(ctx, Entry{Type: "nuke"}); return err }, api.KindValidation, "type", "not an entry type"},
		{"type without body", func() error { _, err := l.Append(ctx, Entry{Type: TypeRollback, Parents: rs[:1]}); return err }, api.KindValidation, "rollback", ""},
		{"parent beyond the log", func() error {
			_, err := l.Append(ctx, testEntry(Ref{Index: size + 5, Hash: rs[0].Hash}, true))
			return err
		}, api.KindValidation, "parents[0]", "does not exist"},
		{"parent at max index", func() error {
			_, err := l.Append(ctx, testEntry(Ref{Index: ^uint64(0), Hash: rs[0].Hash}, true))
			return err
		}, api.KindValidation, "parents[0]", "does not exist"},
		{"parent with another hash", func() error {
			_, err := l.Append(ctx, testEntry(Ref{Index: 3, Hash: rs[4].Hash}, true))
			return err
		}, api.KindValidation, "parents[0]", "has hash"},
		{"parent from another ledger", func() error {
			_, err := l.Append(ctx, policyEntry(rs[1], fr[2]))
			return err
		}, api.KindValidation, "parents[1]", "has hash"},
		{"entry beyond the log", func() error { _, err := l.Entry(ctx, size); return err }, api.KindNotFound, "", "does not exist"},
		{"why of an unknown hash", func() error { _, err := l.Why(ctx, fr[0].Hash); return err }, api.KindNotFound, "", "no ledger entry"},
		{"proof beyond the log", func() error { _, err := l.ProveAt(ctx, size, size); return err }, api.KindNotFound, "", "not in the tree"},
		{"proof in a future tree", func() error { _, err := l.ProveAt(ctx, 1, size+1); return err }, api.KindNotFound, "", "no tree of"},
		{"proof at max index", func() error { _, err := l.Prove(ctx, ^uint64(0)); return err }, api.KindNotFound, "", "not in the tree"},
		{"consistency with a future tree", func() error { _, err := l.ProveConsistency(ctx, 2, size+1); return err }, api.KindNotFound, "", "no tree of"},
		{"consistency backwards", func() error { _, err := l.ProveConsistency(ctx, 5, 2); return err }, api.KindBadRequest, "", "larger than"},
		{"hash tile beyond the tree", func() error { _, err := l.ReadTile(ctx, "tile/0/001"); return err }, api.KindNotFound, "", "beyond the tree"},
		{"full path of a partial tile", func() error { _, err := l.ReadTile(ctx, "tile/0/000"); return err }, api.KindNotFound, "", "beyond the tree"},
		{"partial tile too wide", func() error { _, err := l.ReadTile(ctx, "tile/0/000.p/11"); return err }, api.KindNotFound, "", "beyond the tree"},
		{"level-1 tile of a small tree", func() error { _, err := l.ReadTile(ctx, "tile/1/000.p/1"); return err }, api.KindNotFound, "", "beyond the tree"},
		{"entry bundle too wide", func() error { _, err := l.ReadTile(ctx, "tile/entries/000.p/11"); return err }, api.KindNotFound, "", "beyond the log"},
		{"huge tile number", func() error {
			_, err := l.ReadTile(ctx, "tile/entries/x018/x446/x744/x073/x709/x551/615")
			return err
		}, api.KindNotFound, "", "beyond the log"},
	}
	for _, p := range []string{"tile/0/1", "tile/9/000", "tile/0/000.p/0", "tile/0/000.p/256", "../../etc/passwd",
		"tile/entries/x000/001", "tile/0/000.p/01", strings.Repeat("tile/", 100), "tile/0/\x00\x00\x00"} {
		cases = append(cases, tc{"malformed tile path " + clip(p), func() error { _, err := l.ReadTile(ctx, p); return err }, api.KindBadRequest, "path", "tile path"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if err == nil {
				t.Fatal("accepted")
			}
			p := api.AsProblem(err)
			if p.Kind() != c.kind || p.Status >= 500 {
				t.Fatalf("got %v (%s), want kind %s", err, p.Kind(), c.kind)
			}
			if c.field != "" && p.Field != c.field {
				t.Fatalf("field %q, want %q: %v", p.Field, c.field, err)
			}
			if !strings.Contains(err.Error(), c.detail) {
				t.Fatalf("%q does not say %q", err, c.detail)
			}
			if len(err.Error()) > 1024 {
				t.Fatalf("error of %d bytes echoes input", len(err.Error()))
			}
		})
	}

	// An Append whose caller gave up is not written.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Append(cctx, changeEntry(99)); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled append: %v", err)
	}
	if l.Size() != size {
		t.Fatalf("refused requests changed the log: size %d, want %d", l.Size(), size)
	}
	if _, err := l.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, changeEntry(100)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	// Reads go on after Close.
	if _, err := l.Entry(ctx, 0); err != nil {
		t.Fatalf("read after close: %v", err)
	}
}

func TestOptionsNameTheField(t *testing.T) {
	for _, c := range []struct {
		o     Options
		field string
	}{
		{Options{Name: "Main"}, "name"}, {Options{Name: strings.Repeat("n", 33)}, "name"},
		{Options{MaxEntryBytes: 1 << 20}, "max_entry_bytes"}, {Options{MaxEntryBytes: 10}, "max_entry_bytes"},
		{Options{MaxBatch: 257}, "max_batch"}, {Options{MaxBatch: -1}, "max_batch"},
		{Options{QueueSize: -1}, "queue_size"}, {Options{TileCache: 1}, "tile_cache"},
	} {
		if err := c.o.defaults(); err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: %v, want an error naming %s", c.o, err, c.field)
		}
	}
	if _, err := Open(context.Background(), nil, nil, Options{}); err == nil {
		t.Error("open without a key")
	}
}

// TestAppendQueueExhaustion: with the queue full, Append waits, and gives
// up when its context ends; nothing it gave up on is written.
func TestAppendQueueExhaustion(t *testing.T) {
	ctx := context.Background()
	l, _ := openTest(t, true, Options{QueueSize: 1, MaxBatch: 1})
	const n = 64
	done := make(chan error, n)
	short, cancel := context.WithCancel(ctx)
	for i := range n {
		go func() {
			c := ctx
			if i%2 == 1 {
				c = short
			}
			_, err := l.Append(c, changeEntry(i))
			done <- err
		}()
	}
	cancel()
	ok := 0
	for range n {
		err := <-done
		switch {
		case err == nil:
			ok++
		case errors.Is(err, context.Canceled):
		default:
			t.Fatalf("append: %v", err)
		}
	}
	if ok < n/2 || l.Size() != uint64(ok) {
		t.Fatalf("%d appends succeeded, size %d", ok, l.Size())
	}
	if _, err := l.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}
