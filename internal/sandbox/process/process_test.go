//go:build linux

package process

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxtest"
)

func TestConformance(t *testing.T) {
	sandboxtest.Conformance(t, newTestTier(t), sandboxtest.Options{StrictErrno: true})
}

func TestHostile(t *testing.T) {
	sandboxtest.Hostile(t, newTestTier(t), sandboxtest.Options{StrictErrno: true})
}

func TestCgroupsCleanedUp(t *testing.T) {
	tier := newTestTier(t)
	sb, err := sandbox.Create(t.Context(), tier, "cg", sandbox.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	cg := sb.(*box).cg
	sb.Close()
	tier.Close()
	for _, d := range cg.v1 {
		if exists(d) {
			t.Errorf("cgroup %s left behind", d)
		}
	}
	if cg.v2 != "" && exists(cg.v2) {
		t.Errorf("cgroup %s left behind", cg.v2)
	}
}

func BenchmarkHostExecPython(b *testing.B) { sandboxtest.BenchHostExec(b) }
func BenchmarkCreate(b *testing.B)         { sandboxtest.BenchCreate(b, newTestTier(b)) }
func BenchmarkExecPython(b *testing.B)     { sandboxtest.BenchExec(b, newTestTier(b)) }
func BenchmarkPoolClaim(b *testing.B)      { sandboxtest.BenchPoolClaim(b, newTestTier(b), 4) }

// BenchmarkPrepare measures a cold prepare (spawner clone, init start-up,
// root set-up) for a pool, its discard outside the timer: the part to
// profile for the cold burst and the pool's refill (docs/PERFORMANCE.md).
func BenchmarkPrepare(b *testing.B) {
	tier := newTestTier(b)
	ctx := sandbox.ForPool(b.Context())
	var cpu time.Duration
	cpuOK := true
	for b.Loop() {
		c0, ok0 := benchTreeCPU()
		pr, err := tier.Prepare(ctx, "")
		if err != nil {
			b.Fatal(err)
		}
		c1, ok1 := benchTreeCPU()
		cpu, cpuOK = cpu+c1-c0, cpuOK && ok0 && ok1
		b.StopTimer()
		_ = pr.Discard()
		b.StartTimer()
	}
	if cpuOK {
		b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/prepare")
	}
}

func BenchmarkPoolCreateExecPython(b *testing.B) {
	sandboxtest.BenchPoolCreateExec(b, newTestTier(b), 4)
}

// A sandbox prepared for a pool runs at the lowest CPU weight until it is
// activated, then at the default weight.
func TestPoolPrepareCPUWeight(t *testing.T) {
	tier := newTestTier(t)
	pr, err := tier.Prepare(sandbox.ForPool(t.Context()), "")
	if err != nil {
		t.Fatal(err)
	}
	cg := pr.(*box).cg
	file, low, def := "", "", ""
	if d, ok := cg.v1["cpu"]; ok && exists(d+"/cpu.shares") {
		file, low, def = d+"/cpu.shares", cpuSharesBackground, cpuSharesDefault
	} else if cg.v2 != "" && exists(cg.v2+"/cpu.weight") {
		file, low, def = cg.v2+"/cpu.weight", cpuWeightBackground, cpuWeightDefault
	} else {
		pr.Discard()
		t.Skip("no CPU weight control on this host")
	}
	weight := func() string {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	if got := weight(); got != low {
		t.Errorf("pooled sandbox: %s = %s, want %s", file, got, low)
	}
	sb, err := pr.Activate(t.Context(), "w", sandbox.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if got := weight(); got != def {
		t.Errorf("activated sandbox: %s = %s, want %s", file, got, def)
	}
}

// TestSocketFamilyAllowlistClass: only AF_UNIX, AF_INET/AF_INET6 (not raw)
// and NETLINK_ROUTE sockets open; AF_VSOCK and every other family fail with
// EAFNOSUPPORT (raw IP with EPERM, other netlink protocols with
// EPROTONOSUPPORT), for socket(2) and socketpair(2).
func TestSocketFamilyAllowlistClass(t *testing.T) {
	sandboxtest.SocketFamilies(t, newTestTier(t), sandboxtest.Options{StrictErrno: true})
}

// TestSandboxFailureClass: full disks never take a sandbox down, and a
// sandbox whose init died says why on every operation (ErrFailed).
func TestSandboxFailureClass(t *testing.T) {
	sandboxtest.Failure(t, newTestTier(t), sandboxtest.Options{StrictErrno: true, KillInit: func(t *testing.T, sb sandbox.Sandbox) {
		if err := syscall.Kill(sb.(*box).pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}})
}

// TestInitOOMKilledClass: when the kernel's OOM killer picks the sandbox's
// init, the sandbox fails with an out-of-memory reason rather than "init
// exited" (and every exec after it says so). The memory cgroup is set below
// the sandbox's budget (Limits.HostMemoryMB) to get there: files in
// /workspace then leave no room, and init, the largest process, is killed,
// as happened to every sandbox before that budget.
func TestInitOOMKilledClass(t *testing.T) {
	tier := newTestTier(t)
	sb, err := sandbox.Create(t.Context(), tier, sandbox.NewID(), sandbox.Spec{Limits: sandbox.Limits{MemoryMB: 32, DiskMB: 128}})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	b := sb.(*box)
	d, ok := b.cg.v1["memory"]
	if !ok {
		t.Skip("needs the v1 memory controller")
	}
	if err := os.WriteFile(filepath.Join(d, "memory.limit_in_bytes"), []byte(strconv.Itoa(64<<20)), 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var err2 error
	for i := 0; i < 5 && !errors.Is(err2, sandbox.ErrFailed); i++ {
		_, err2 = sb.Exec(ctx, sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", "head -c 100000000 /dev/zero > /workspace/f" + strconv.Itoa(i)}}, nil, nil)
		t.Logf("fill %d: %v", i, err2)
	}
	if !errors.Is(err2, sandbox.ErrFailed) {
		t.Fatalf("filling past the memory cgroup: %v, want ErrFailed", err2)
	}
	if r := sandbox.FailureReason(sb.Failure()); !strings.HasPrefix(r, "out of memory") {
		t.Fatalf("failure reason %q, want out of memory", r)
	}
	t.Logf("%v", sb.Failure())
}

func TestTerminalClass(t *testing.T) { sandboxtest.TerminalClass(t, newTestTier(t)) }

// BenchmarkPoolLoop is the bench's create → first python3 → delete loop
// on a Manager with the daemon's default pool (two sandboxes, two
// preparers): create + first command p50/p90, and the create alone
// (claim and activation; a claim that waits for a refill shows here).
// Sub-benchmark true runs /bin/true instead of python3: a faster loop.
func BenchmarkPoolLoop(b *testing.B) {
	b.Run("python3", func(b *testing.B) { benchPoolLoop(b, "/usr/bin/python3", "-c", "print(1)") })
	b.Run("true", func(b *testing.B) { benchPoolLoop(b, "/bin/true") })
}

func benchPoolLoop(b *testing.B, cmd string, args ...string) {
	tier := newTestTier(b)
	m, err := sandbox.NewManager(sandbox.ManagerConfig{Tiers: []sandbox.Tier{tier},
		Pools: []sandbox.PoolConfig{{Tier: sandbox.TierProcess, Size: 2, Refill: 2}}})
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if ready, size := m.PoolReady(sandbox.TierProcess, ""); ready == size || time.Now().After(deadline) {
			break
		}
	}
	ctx := context.Background()
	var loop, create []time.Duration
	for b.Loop() {
		t0 := time.Now()
		sb, err := m.Create(ctx, "", sandbox.Spec{})
		if err != nil {
			b.Fatal(err)
		}
		create = append(create, time.Since(t0))
		if code, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: cmd, Args: args}, nil, nil); err != nil || code != 0 {
			b.Fatalf("code=%d err=%v", code, err)
		}
		loop = append(loop, time.Since(t0))
		if err := m.Delete(ctx, sb.ID()); err != nil {
			b.Fatal(err)
		}
	}
	for _, l := range []struct {
		name string
		d    []time.Duration
	}{{"loop", loop}, {"create", create}} {
		slices.Sort(l.d)
		b.ReportMetric(float64(l.d[len(l.d)/2].Microseconds())/1000, l.name+"-p50-ms")
		b.ReportMetric(float64(l.d[len(l.d)*9/10].Microseconds())/1000, l.name+"-p90-ms")
	}
}
