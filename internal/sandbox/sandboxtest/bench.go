package sandboxtest

import (
	"context"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// latencies records per-iteration durations and reports p50/p99.
type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	pct := func(p float64) float64 {
		i := int(p * float64(len(l)-1))
		return float64(l[i].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

var python = []string{"/usr/bin/python3", "-c", "print(1)"}

// BenchHostExec is the baseline: python3 run directly on the host.
func BenchHostExec(b *testing.B) {
	var lat latencies
	for b.Loop() {
		t0 := time.Now()
		if err := exec.Command(python[0], python[1:]...).Run(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	lat.report(b)
}

// BenchCreate measures an unpooled create (Prepare+Activate); Close is
// outside the timer.
func BenchCreate(b *testing.B, tier sandbox.Tier) {
	ctx := context.Background()
	var lat latencies
	for b.Loop() {
		t0 := time.Now()
		sb, err := sandbox.Create(ctx, tier, sandbox.NewID(), sandbox.Spec{})
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		b.StopTimer()
		sb.Close()
		b.StartTimer()
	}
	lat.report(b)
}

// BenchExec measures exec of python3 in one running sandbox.
func BenchExec(b *testing.B, tier sandbox.Tier) {
	ctx := context.Background()
	sb, err := sandbox.Create(ctx, tier, sandbox.NewID(), sandbox.Spec{})
	if err != nil {
		b.Fatal(err)
	}
	defer sb.Close()
	var lat latencies
	for b.Loop() {
		t0 := time.Now()
		if code, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: python[0], Args: python[1:]}, nil, nil); err != nil || code != 0 {
			b.Fatalf("code=%d err=%v", code, err)
		}
		lat = append(lat, time.Since(t0))
	}
	lat.report(b)
}

func newPooledManager(b *testing.B, tier sandbox.Tier, size int) *sandbox.Manager {
	m, err := sandbox.NewManager(sandbox.ManagerConfig{
		Tiers: []sandbox.Tier{tier},
		Pools: []sandbox.PoolConfig{{Tier: tier.Name(), Size: size}},
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	// Let the pool fill before timing.
	time.Sleep(time.Duration(size) * 400 * time.Millisecond)
	return m
}

// BenchPoolClaim measures Manager.Create from a warm pool (claim +
// activate); Delete and pool refill happen outside the timer.
func BenchPoolClaim(b *testing.B, tier sandbox.Tier, poolSize int) {
	m := newPooledManager(b, tier, poolSize)
	ctx := context.Background()
	var lat latencies
	for b.Loop() {
		t0 := time.Now()
		sb, err := m.Create(ctx, "", sandbox.Spec{Tier: tier.Name()})
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		b.StopTimer()
		m.Delete(ctx, sb.ID())
		time.Sleep(50 * time.Millisecond) // refill, as between real requests
		b.StartTimer()
	}
	lat.report(b)
}

// BenchPoolCreateExec measures create (from a warm pool) + exec python3, the
// latency an agent sees for "run this code in a new sandbox".
func BenchPoolCreateExec(b *testing.B, tier sandbox.Tier, poolSize int) {
	m := newPooledManager(b, tier, poolSize)
	ctx := context.Background()
	var lat latencies
	for b.Loop() {
		t0 := time.Now()
		sb, err := m.Create(ctx, "", sandbox.Spec{Tier: tier.Name()})
		if err != nil {
			b.Fatal(err)
		}
		if code, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: python[0], Args: python[1:]}, nil, nil); err != nil || code != 0 {
			b.Fatalf("code=%d err=%v", code, err)
		}
		lat = append(lat, time.Since(t0))
		b.StopTimer()
		m.Delete(ctx, sb.ID())
		time.Sleep(50 * time.Millisecond)
		b.StartTimer()
	}
	lat.report(b)
}
