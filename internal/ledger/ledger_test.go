package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// TestLedgerChainProofsAndWhy appends the pipeline's chain, walks it back
// with Why, proves an entry and checks the proof offline.
func TestLedgerChainProofsAndWhy(t *testing.T) {
	ctx := context.Background()
	l, _ := openTest(t, true, Options{})
	must := func(e Entry) Receipt {
		t.Helper()
		r, err := l.Append(ctx, e)
		if err != nil {
			t.Fatalf("append %s: %v", e.Type, err)
		}
		return r
	}
	change := must(changeEntry(1))
	test := must(testEntry(change, true))
	policy := must(policyEntry(change, test))
	approval := must(approvalEntry(policy))
	prov := must(provenanceEntry(change))
	rollout := must(rolloutEntry(approval, prov))
	must(auditEntry(1, 10))
	rollback := must(rollbackEntry(rollout))
	if rollback.Index != 7 || l.Size() != 8 {
		t.Fatalf("indexes: rollback %d size %d", rollback.Index, l.Size())
	}

	trail, err := l.Why(ctx, rollback.Hash)
	if err != nil {
		t.Fatal(err)
	}
	var types []Type
	for _, r := range trail.Records {
		types = append(types, r.Entry.Type)
	}
	want := []Type{TypeRollback, TypeRollout, TypeApproval, TypeProvenance, TypePolicy, TypeChange, TypeTest}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("why: %v, want %v", types, want)
	}
	if a := trail.Records[len(trail.Records)-2].Entry.Change.Author; a.ID != "spiffe://agentcloud.local/user/alice" || a.Labels["team"] != "payments" {
		t.Fatalf("the change's author: %+v", a)
	}

	rec, err := l.Entry(ctx, approval.Index)
	if err != nil || rec.Ref() != approval || rec.Entry.Approval.Decision != DecisionApproved {
		t.Fatalf("entry: %+v %v", rec.Ref(), err)
	}
	proof, err := l.Prove(ctx, approval.Index)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := VerifyInclusion([]byte(proof.Checkpoint), l.VerifierKey(), rec.Raw, proof)
	if err != nil || cp.Size != 8 {
		t.Fatalf("verify inclusion: %+v %v", cp, err)
	}
	if _, err := VerifyInclusion([]byte(proof.Checkpoint), l.VerifierKey(), append(bytes.Clone(rec.Raw), ' '), proof); !errors.Is(err, ErrBadProof) {
		t.Fatalf("other bytes verified: %v", err)
	}
	other := proof
	other.Index = test.Index
	if _, err := VerifyInclusion([]byte(proof.Checkpoint), l.VerifierKey(), rec.Raw, other); !errors.Is(err, ErrBadProof) {
		t.Fatalf("proof for another index verified: %v", err)
	}
	if _, err := l.Lookup(ctx, LeafHash([]byte("never appended"))); err == nil {
		t.Fatal("lookup of an unknown hash succeeded")
	}
}

// TestLedgerTilesProofsAndReopen grows the tree over several tiles,
// checks every tile and bundle it serves against tlog's reference, every
// proof offline, then reopens the store and checks it all again.
func TestLedgerTilesProofsAndReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir, true)
	l, err := Open(ctx, st, mustKey(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3*TileWidth + 37
	var raws [][]byte
	var cps []Checkpoint
	for i := range n {
		r, err := l.Append(ctx, changeEntry(i))
		if err != nil {
			t.Fatal(err)
		}
		rec, err := l.Entry(ctx, r.Index)
		if err != nil || rec.Hash != r.Hash {
			t.Fatalf("entry %d: %v", i, err)
		}
		raws = append(raws, rec.Raw)
		if i%97 == 0 || i == TileWidth-1 || i == TileWidth {
			cp, err := l.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			cps = append(cps, cp)
		}
	}
	check := func(l *Ledger) {
		t.Helper()
		ref := referenceTree(t, raws)
		for _, tt := range tlog.NewTiles(TileHeight, 0, int64(len(raws))) {
			want, err := tlog.ReadTileData(tt, ref)
			if err != nil {
				t.Fatal(err)
			}
			path := TilePath{Level: tt.L, N: uint64(tt.N), Width: tt.W}.String()
			got, err := l.ReadTile(ctx, path)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: %d bytes, %v", path, len(got), err)
			}
		}
		for b := uint64(0); b*TileWidth < uint64(len(raws)); b++ {
			w := min(len(raws)-int(b)*TileWidth, TileWidth)
			data, err := l.ReadTile(ctx, TilePath{Entries: true, N: b, Width: w}.String())
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeBundle(data)
			if err != nil || len(got) != w {
				t.Fatalf("bundle %d: %d entries, %v", b, len(got), err)
			}
			for i, e := range got {
				if !bytes.Equal(e, raws[int(b)*TileWidth+i]) {
					t.Fatalf("bundle %d entry %d differs", b, i)
				}
			}
		}
		// A partial path of a tile that has filled since is its prefix.
		if got, err := l.ReadTile(ctx, "tile/0/000.p/3"); err != nil || len(got) != 3*HashSize {
			t.Fatalf("partial prefix of a full tile: %d bytes, %v", len(got), err)
		}
		for i := 0; i < len(raws); i += 41 {
			p, err := l.Prove(ctx, uint64(i))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := VerifyInclusion([]byte(p.Checkpoint), testVKey, raws[i], p); err != nil {
				t.Fatalf("entry %d: %v", i, err)
			}
		}
		for i, old := range cps {
			for _, newer := range cps[i:] {
				p, err := l.ProveConsistency(ctx, old.Size, newer.Size)
				if err != nil {
					t.Fatal(err)
				}
				if err := VerifyConsistency(old.Signed, newer.Signed, testVKey, p); err != nil {
					t.Fatalf("%d -> %d: %v", old.Size, newer.Size, err)
				}
			}
			p, err := l.ProveAt(ctx, old.Size-1, old.Size)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := VerifyInclusion(old.Signed, testVKey, raws[old.Size-1], p); err != nil {
				t.Fatalf("last entry of checkpoint %d: %v", old.Size, err)
			}
		}
		rep, err := l.Verify(ctx)
		if err != nil {
			t.Fatalf("verify: %v", err)
		}
		if rep.Entries != uint64(len(raws)) || rep.Checkpoints < len(cps) || rep.Tiles != 3 {
			t.Fatalf("verify report %+v", rep)
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openStore(t, dir, true)
	defer st.Close()
	l, err = Open(ctx, st, mustKey(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Size() != n {
		t.Fatalf("reopened size %d, want %d", l.Size(), n)
	}
	check(l)
	r, err := l.Append(ctx, changeEntry(n))
	if err != nil || r.Index != n {
		t.Fatalf("append after reopen: %+v %v", r, err)
	}
	rec, _ := l.Entry(ctx, n)
	raws = append(raws, rec.Raw)
	check(l)
	// Another key cannot open the ledger: its head checkpoint does not verify.
	other, _, _ := GenerateKey(testOrigin)
	k2, _ := ParseKey(other)
	if _, err := Open(ctx, st, k2, Options{Name: "main"}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with another key: %v", err)
	}
}

// referenceTree is tlog's in-memory tree of entries.
func referenceTree(t testing.TB, entries [][]byte) memHashes {
	t.Helper()
	var ref memHashes
	for i, e := range entries {
		hs, err := tlog.StoredHashes(int64(i), e, ref)
		if err != nil {
			t.Fatal(err)
		}
		ref = append(ref, hs...)
	}
	return ref
}

// TestConcurrentAppendersRaceClass: many goroutines append at once, with
// small batches forced so that group commits interleave: every index from
// 0 to n-1 is handed out exactly once, each to the entry that is stored
// there, and the tree verifies. A second ledger on the same store (another
// process, say) racing the first is refused by the log's order check and
// appends after it.
func TestConcurrentAppendersRaceClass(t *testing.T) {
	ctx := context.Background()
	for _, o := range []Options{{}, {MaxBatch: 3}, {MaxBatch: 1}} {
		t.Run(fmt.Sprintf("max_batch=%d", o.MaxBatch), func(t *testing.T) {
			l, st := openTest(t, true, o)
			const workers, each = 24, 40
			receipts := make([][]Receipt, workers)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range each {
						r, err := l.Append(ctx, changeEntry(w*1000+i))
						if err != nil {
							t.Error(err)
							return
						}
						receipts[w] = append(receipts[w], r)
					}
				})
			}
			// A second writer on the same log, racing the first.
			l2, err := Open(ctx, st, mustKey(t), o)
			if err != nil {
				t.Fatal(err)
			}
			var second []Receipt
			wg.Go(func() {
				for i := range each {
					r, err := l2.Append(ctx, changeEntry(99000+i))
					if err != nil {
						t.Error(err)
						return
					}
					second = append(second, r)
				}
			})
			wg.Wait()
			_ = l2.Close()
			seen := map[uint64]bool{}
			for _, rs := range append(receipts, second) {
				for _, r := range rs {
					if seen[r.Index] {
						t.Fatalf("index %d handed out twice", r.Index)
					}
					seen[r.Index] = true
				}
			}
			// The first ledger learns of the second's records on its next write.
			if _, err := l.Append(ctx, changeEntry(123456)); err != nil {
				t.Fatal(err)
			}
			total := uint64(workers*each + each + 1)
			if l.Size() != total || len(seen) != int(total-1) {
				t.Fatalf("size %d, %d receipts; want %d", l.Size(), len(seen), total)
			}
			for _, rs := range append(receipts, second) {
				for _, r := range rs {
					rec, err := l.Entry(ctx, r.Index)
					if err != nil || rec.Hash != r.Hash {
						t.Fatalf("entry %d: %v", r.Index, err)
					}
				}
			}
			if _, err := l.Verify(ctx); err != nil {
				t.Fatal(err)
			}
			// A fresh ledger on the store has no cache: every bundle is
			// read back from batch records that straddle bundles.
			l3, err := Open(ctx, st, mustKey(t), o)
			if err != nil {
				t.Fatal(err)
			}
			defer l3.Close()
			for _, rs := range append(receipts, second) {
				for _, r := range rs {
					rec, err := l3.Entry(ctx, r.Index)
					if err != nil || rec.Hash != r.Hash {
						t.Fatalf("entry %d read back: %v", r.Index, err)
					}
				}
			}
		})
	}
}

// TestAppendSurvivesConnectionLoss breaks the store's connection again and
// again while appenders run: an Append either fails (its entry may or may
// not be in the log) or returns a receipt that holds, the committer
// recognises its own record after an unknown outcome instead of writing
// it twice, and the ledger appends again once the store has redialled.
func TestAppendSurvivesConnectionLoss(t *testing.T) {
	ctx := context.Background()
	l, st := openTest(t, true, Options{})
	var (
		mu       sync.Mutex
		receipts []Receipt
		failures int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				actx, cancel := context.WithTimeout(ctx, 5*time.Second)
				r, err := l.Append(actx, changeEntry(w*100000+i))
				cancel()
				mu.Lock()
				if err != nil {
					failures++
				} else {
					receipts = append(receipts, r)
				}
				mu.Unlock()
			}
		})
	}
	for range 5 {
		time.Sleep(40 * time.Millisecond)
		st.InjectConnectionFault()
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for st.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("store did not come back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := l.Append(ctx, changeEntry(-1)); err != nil {
		t.Fatalf("append after the store came back: %v", err)
	}
	seen := map[uint64]bool{}
	for _, r := range receipts {
		if seen[r.Index] {
			t.Fatalf("index %d acknowledged twice", r.Index)
		}
		seen[r.Index] = true
		rec, err := l.Entry(ctx, r.Index)
		if err != nil || rec.Hash != r.Hash {
			t.Fatalf("acknowledged entry %d: %v", r.Index, err)
		}
	}
	if _, err := l.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d appends acknowledged, %d failed while the connection broke 5 times; %d redials", len(receipts), failures, st.Redials())
}

// TestParentFromAnotherWriter: two ledgers on one log (two cluster
// members). An entry the first appended is, at once, a parent the second
// accepts and an entry the second reads, though the second has not
// written since; an index beyond the log is still refused.
func TestParentFromAnotherWriter(t *testing.T) {
	ctx := context.Background()
	a, st := openTest(t, true, Options{})
	b, err := Open(ctx, st, mustKey(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i := range 3 {
		r, err := a.Append(ctx, changeEntry(i))
		if err != nil {
			t.Fatal(err)
		}
		if rec, err := b.Entry(ctx, r.Index); err != nil || rec.Hash != r.Hash {
			t.Fatalf("entry %d read on the other ledger: %v", r.Index, err)
		}
		r2, err := b.Append(ctx, testEntry(r, true))
		if err != nil {
			t.Fatalf("parent %d from the other writer: %v", r.Index, err)
		}
		if r2.Index != r.Index+1 {
			t.Fatalf("child at %d, want %d", r2.Index, r.Index+1)
		}
	}
	_, err = b.Append(ctx, testEntry(Ref{Index: 99, Hash: LeafHash([]byte("x"))}, true))
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("parent beyond the log: %v", err)
	}
	if _, err := b.Entry(ctx, 99); err == nil {
		t.Fatal("entry beyond the log was read")
	}
}
