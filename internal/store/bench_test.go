package store

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkKVPut measures acknowledged KV writes: "group" fsyncs before the
// ack with writes that arrive together sharing one fsync (group commit, the
// daemon's setting), "durable" has JetStream fsync each write before the
// ack (the setting before group commit), "nosync" is the JetStream default.
// Run: go test -run '^$' -bench KVPut ./internal/store
func BenchmarkKVPut(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts Options
	}{{"group", Options{}}, {"durable", Options{SyncEachWrite: true}}, {"nosync", Options{NoSync: true}}} {
		for _, par := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/clients=%d", mode.name, par), func(b *testing.B) {
				ctx := context.Background()
				o := mode.opts
				o.Dir = b.TempDir()
				s, err := Open(ctx, o)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				kv, err := s.KV(ctx, "bench", KVOptions{})
				if err != nil {
					b.Fatal(err)
				}
				val := make([]byte, 256)
				lat := make([]time.Duration, b.N)
				var n atomic.Int64
				b.SetParallelism(par)
				b.ResetTimer()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := n.Add(1) - 1
						t0 := time.Now()
						if _, err := kv.Put(ctx, fmt.Sprintf("k%d", i%1000), val); err != nil {
							b.Error(err)
							return
						}
						lat[i] = time.Since(t0)
					}
				})
				elapsed := time.Since(start)
				b.StopTimer()
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
			})
		}
	}
}
