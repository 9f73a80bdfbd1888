package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/store"
)

// TestTamperDetectionClass edits the ledger through the store's own APIs,
// as someone with access to the store could, in every place it keeps
// something: a record restating an entry with other bytes, a leaf hash in
// a stored tile, a higher-level tile, a missing tile, a gap in the log, an
// entry that bypassed validation, a checkpoint signed by another key and
// one signed over other entries. Verify fails naming the first bad entry
// (index and type), and the live ledger refuses to append on top of a
// tampered log.
func TestTamperDetectionClass(t *testing.T) {
	ctx := context.Background()
	type env struct {
		l   *Ledger
		st  *store.Store
		wal store.Log
		cps store.Log
		kv  store.KV
	}
	setup := func(t *testing.T, n int) env {
		l, st := openTest(t, true, Options{})
		for i := range n {
			e := changeEntry(i)
			if i%10 == 7 {
				e = testEntry(Ref{Index: 0, Hash: LeafHash(mustRaw(t, l, 0))}, true)
			}
			if _, err := l.Append(ctx, e); err != nil {
				t.Fatal(err)
			}
			if i == 100 || i == 299 {
				if _, err := l.Checkpoint(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		wal, err := st.Log(ctx, "ledger-main", store.LogOptions{Subjects: []string{"ledger.main.e.*"}})
		if err != nil {
			t.Fatal(err)
		}
		cps, err := st.Log(ctx, "ledger-main-cp", store.LogOptions{Subjects: []string{"ledger.main.cp"}})
		if err != nil {
			t.Fatal(err)
		}
		kv, err := st.KV(ctx, "ledger-main", store.KVOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Verify(ctx); err != nil {
			t.Fatalf("verify before tampering: %v", err)
		}
		return env{l, st, wal, cps, kv}
	}
	expect := func(t *testing.T, l *Ledger, index uint64, typ Type, says string) {
		t.Helper()
		_, err := l.Verify(ctx)
		var ve *VerifyError
		if !errors.As(err, &ve) || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("verify: %v, want a VerifyError", err)
		}
		if ve.Index != index || ve.Type != typ || !strings.Contains(ve.Error(), says) {
			t.Fatalf("verify names entry %d (%s): %v; want entry %d (%s) saying %q", ve.Index, ve.Type, ve, index, typ, says)
		}
	}

	t.Run("entry restated with other bytes", func(t *testing.T) {
		e := setup(t, 300)
		forged := changeEntry(5)
		forged.Change.Version = "v-evil"
		data, _ := forged.Encode()
		if _, err := e.wal.Append(ctx, "ledger.main.e.0", encodeRecord(5, [][]byte{data})); err != nil {
			t.Fatal(err)
		}
		expect(t, e.l, 5, TypeChange, "restates entries 5 to 5")
		if _, err := e.l.Append(ctx, changeEntry(1000)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("append on a tampered log: %v", err)
		}
		if _, err := Open(ctx, e.st, mustKey(t), Options{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("open a tampered log: %v", err)
		}
	})
	t.Run("leaf hash in a stored tile", func(t *testing.T) {
		e := setup(t, 300)
		editTile(t, e.kv, "tile.0.0", 17)
		expect(t, e.l, 17, TypeTest, "leaf hash in the stored tile")
	})
	t.Run("tile deleted", func(t *testing.T) {
		e := setup(t, 300)
		if err := e.kv.Delete(ctx, "tile.0.0"); err != nil {
			t.Fatal(err)
		}
		expect(t, e.l, 0, TypeChange, "missing from the store")
	})
	t.Run("entry that bypassed validation", func(t *testing.T) {
		e := setup(t, 300)
		bad := []byte(`{"type":"change","time":"2025-01-01T00:00:00Z","change":{"agent":"x"}}`)
		if _, err := e.wal.Append(ctx, "ledger.main.e.1", encodeRecord(300, [][]byte{bad})); err != nil {
			t.Fatal(err)
		}
		expect(t, e.l, 300, "", "does not decode")
		if _, err := e.l.Append(ctx, changeEntry(1000)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("append after an invalid record: %v", err)
		}
	})
	t.Run("record filed under another bundle", func(t *testing.T) {
		e := setup(t, 300)
		data, _ := changeEntry(9).Encode()
		if _, err := e.wal.Append(ctx, "ledger.main.e.7", encodeRecord(300, [][]byte{data})); err != nil {
			t.Fatal(err)
		}
		expect(t, e.l, 300, "", "filed under ledger.main.e.7, not ledger.main.e.1")
		if _, err := e.l.Append(ctx, changeEntry(1000)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("append after a misfiled record: %v", err)
		}
	})
	t.Run("gap in the log", func(t *testing.T) {
		e := setup(t, 300)
		data, _ := changeEntry(9).Encode()
		if _, err := e.wal.Append(ctx, "ledger.main.e.1", encodeRecord(305, [][]byte{data})); err != nil {
			t.Fatal(err)
		}
		expect(t, e.l, 300, "", "entries 300 to 304 are missing")
	})
	t.Run("checkpoint signed by another key", func(t *testing.T) {
		e := setup(t, 300)
		skey, _, _ := GenerateKey(testOrigin)
		other, _ := ParseKey(skey)
		cp, _ := signCheckpoint(other, 200, LeafHash([]byte("x")))
		if _, err := e.cps.Append(ctx, "ledger.main.cp", cp.Signed); err != nil {
			t.Fatal(err)
		}
		expect(t, e.l, 200, "", "does not verify")
	})
	t.Run("checkpoint over other entries", func(t *testing.T) {
		e := setup(t, 300)
		cp, _ := signCheckpoint(mustKey(t), 150, LeafHash([]byte("x")))
		if _, err := e.cps.Append(ctx, "ledger.main.cp", cp.Signed); err != nil {
			t.Fatal(err)
		}
		expect(t, e.l, 101, TypeChange, "from 101 to 149 differs from what was signed")
		if _, err := Open(ctx, e.st, mustKey(t), Options{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("open with a newest checkpoint over other entries: %v", err)
		}
	})
	t.Run("checkpoint beyond the log", func(t *testing.T) {
		e := setup(t, 300)
		cp, _ := signCheckpoint(mustKey(t), 400, LeafHash([]byte("x")))
		if _, err := e.cps.Append(ctx, "ledger.main.cp", cp.Signed); err != nil {
			t.Fatal(err)
		}
		expect(t, e.l, 300, "", "entries from 300 are missing")
		if _, err := Open(ctx, e.st, mustKey(t), Options{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("open with a checkpoint beyond the log: %v", err)
		}
	})
	t.Run("checkpoint note edited", func(t *testing.T) {
		e := setup(t, 300)
		recs, err := e.cps.Read(ctx, 1, 1, "")
		if err != nil || len(recs) != 1 {
			t.Fatal(err)
		}
		edited := strings.Replace(string(recs[0].Data), "\n101\n", "\n102\n", 1)
		if _, err := e.cps.Append(ctx, "ledger.main.cp", []byte(edited)); err != nil {
			t.Fatal(err)
		}
		expect(t, e.l, 102, "", "does not verify")
	})
}

// TestTamperLevelOneTile edits a level-1 tile (the hash of 256 entries):
// Verify names the first entry under the edited hash. The 65,600 entries
// are written straight into the log as full batch records, so Open also
// shows that it takes in a long backlog of records after a crash.
func TestTamperLevelOneTile(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes 65,600 entries")
	}
	ctx := context.Background()
	st := openStore(t, t.TempDir(), true)
	defer st.Close()
	const n = TileWidth*TileWidth + 64
	seedLog(t, st, n)
	l, err := Open(ctx, st, mustKey(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Size() != n {
		t.Fatalf("size after taking in the backlog: %d, want %d", l.Size(), n)
	}
	if _, err := l.Append(ctx, changeEntry(n)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	kv, err := st.KV(ctx, "ledger-main", store.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	editTile(t, kv, "tile.1.0", 3)
	_, err = l.Verify(ctx)
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Index != 3*TileWidth || ve.Type != TypeChange || !strings.Contains(ve.Reason, "level-1") {
		t.Fatalf("verify: %v", err)
	}
}

// seedLog writes n change entries into the ledger's log directly, as
// full batch records in order, as a committer would have before a crash.
func seedLog(t *testing.T, st *store.Store, n int) {
	t.Helper()
	ctx := context.Background()
	wal, err := st.Log(ctx, "ledger-main", store.LogOptions{Subjects: []string{"ledger.main.e.*"}})
	if err != nil {
		t.Fatal(err)
	}
	var seq uint64
	for first := 0; first < n; first += TileWidth {
		var batch [][]byte
		for i := first; i < min(first+TileWidth, n); i++ {
			data, err := changeEntry(i).Encode()
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, data)
		}
		last := uint64(first + len(batch) - 1)
		seq, err = wal.AppendExpect(ctx, fmt.Sprintf("ledger.main.e.%d", last/TileWidth), encodeRecord(uint64(first), batch), seq)
		if err != nil {
			t.Fatal(err)
		}
	}
}

func editTile(t *testing.T, kv store.KV, key string, hash int) {
	t.Helper()
	ctx := context.Background()
	got, err := kv.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	data := got.Value
	data[hash*HashSize] ^= 1
	if _, err := kv.Put(ctx, key, data); err != nil {
		t.Fatal(err)
	}
}

func mustRaw(t *testing.T, l *Ledger, i uint64) []byte {
	t.Helper()
	r, err := l.Entry(context.Background(), i)
	if err != nil {
		t.Fatal(err)
	}
	return r.Raw
}

// appendParallel appends n change entries from 64 goroutines.
func appendParallel(t testing.TB, l *Ledger, n int) {
	t.Helper()
	ctx := context.Background()
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	errs := make(chan error, 64)
	for range 64 {
		go func() {
			for i := range next {
				if _, err := l.Append(ctx, changeEntry(i)); err != nil {
					errs <- fmt.Errorf("append %d: %w", i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 64 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
