package ledger

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAppendDurable measures acknowledged appends with the store
// fsyncing every write (the daemon's setting), from many concurrent
// appenders: group commit turns their appends into few store writes.
// Run: go test -run '^$' -bench AppendDurable ./internal/ledger
func BenchmarkAppendDurable(b *testing.B) {
	for _, appenders := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
			ctx := context.Background()
			l, _ := openTest(b, false, Options{})
			entries := make([]Entry, 1024)
			for i := range entries {
				entries[i] = changeEntry(i)
			}
			lat := make([]time.Duration, b.N)
			var next atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range appenders {
				wg.Go(func() {
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						t0 := time.Now()
						if _, err := l.Append(ctx, entries[i%1024]); err != nil {
							b.Error(err)
							return
						}
						lat[i] = time.Since(t0)
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			info, err := l.wal.Info(ctx)
			if err != nil {
				b.Fatal(err)
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
			b.ReportMetric(float64(b.N)/float64(max(info.Records, 1)), "entries/write")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkCheckpointSign measures signing a checkpoint (Ed25519 over the
// note text), and BenchmarkCheckpointDurable signing and storing one.
func BenchmarkCheckpointSign(b *testing.B) {
	k := mustKey(b)
	root := LeafHash([]byte("root"))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := signCheckpoint(k, uint64(i), root); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckpointDurable(b *testing.B) {
	ctx := context.Background()
	l, _ := openTest(b, false, Options{})
	for b.Loop() {
		b.StopTimer()
		appendN(b, l, 1)
		b.StartTimer()
		if _, err := l.Checkpoint(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

const proofTreeSize = 1<<16 + 1000

// proofLedger builds a ledger of 2^16+1000 entries for the proof
// benchmarks (with fsync off: they are about proofs, not appends).
func proofLedger(b *testing.B) *Ledger {
	l, _ := openTest(b, true, Options{})
	appendParallel(b, l, proofTreeSize)
	return l
}

// BenchmarkInclusionProof measures proving an entry in a tree of 66,536
// entries and reports the proof's size in bytes (hashes only).
func BenchmarkInclusionProof(b *testing.B) {
	ctx := context.Background()
	l := proofLedger(b)
	var bytes int
	for i := 0; b.Loop(); i++ {
		p, err := l.ProveAt(ctx, uint64(i*7919)%proofTreeSize, proofTreeSize)
		if err != nil {
			b.Fatal(err)
		}
		bytes = len(p.Hashes) * HashSize
	}
	b.ReportMetric(float64(bytes), "proof-bytes")
}

// BenchmarkVerifyInclusion measures the offline check a client makes:
// open the signed checkpoint and run the proof from the entry's bytes.
func BenchmarkVerifyInclusion(b *testing.B) {
	ctx := context.Background()
	l := proofLedger(b)
	rec, err := l.Entry(ctx, 12345)
	if err != nil {
		b.Fatal(err)
	}
	p, err := l.Prove(ctx, 12345)
	if err != nil {
		b.Fatal(err)
	}
	cp := []byte(p.Checkpoint)
	for b.Loop() {
		if _, err := VerifyInclusion(cp, testVKey, rec.Raw, p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(p.Hashes)*HashSize), "proof-bytes")
}

// BenchmarkVerify measures a full Verify of a ledger of 66,536 entries
// appended by 64 goroutines, and reports entries and log records per second.
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	l := proofLedger(b)
	var rep VerifyReport
	start := time.Now()
	for b.Loop() {
		var err error
		if rep, err = l.Verify(ctx); err != nil {
			b.Fatal(err)
		}
	}
	per := time.Since(start).Seconds() / float64(b.N)
	b.ReportMetric(float64(rep.Entries)/per, "entries/s")
	b.ReportMetric(float64(rep.Records)/per, "records/s")
}
