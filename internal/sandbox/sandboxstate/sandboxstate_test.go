//go:build linux

package sandboxstate_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxstate"
	"github.com/agentcloud/agentcloud/internal/store"
)

func TestMain(m *testing.M) {
	process.MaybeRunInit()
	os.Exit(m.Run())
}

// node is one run of a daemon's sandbox part: a process tier and a Manager
// with durable records in a real store and workspaces under dir.
type node struct {
	tier *process.Tier
	m    *sandbox.Manager
}

func start(t testing.TB, st *store.Store, dir string, pools ...sandbox.PoolConfig) *node {
	t.Helper()
	return startWith(t, sandboxstate.New(st, ""), dir, pools...)
}

// startWith is start with the records recs (the store's, or a wrapper of
// them).
func startWith(t testing.TB, recs sandbox.Records, dir string, pools ...sandbox.PoolConfig) *node {
	t.Helper()
	if err := process.Available(); err != nil {
		t.Skipf("process tier unavailable: %v", err)
	}
	tierDir := t.TempDir()
	for _, d := range []string{tierDir, filepath.Dir(tierDir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tier, err := process.New(process.Config{DataDir: tierDir})
	if err != nil {
		t.Fatal(err)
	}
	m, err := sandbox.NewManager(sandbox.ManagerConfig{Tiers: []sandbox.Tier{tier}, Records: recs,
		Dir: dir, QuotaInterval: time.Hour, Pools: pools})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	n := &node{tier: tier, m: m}
	t.Cleanup(n.stop)
	return n
}

func (n *node) stop() {
	if n.m != nil {
		n.m.Close()
		n.tier.Close()
		n.m = nil
	}
}

func run(t *testing.T, sb sandbox.Sandbox, script string) string {
	t.Helper()
	var out, errb bytes.Buffer
	code, err := sb.Exec(t.Context(), sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", script}}, &out, &errb)
	if err != nil || code != 0 {
		t.Fatalf("%s: code %d err %v stderr %s", script, code, err, errb.String())
	}
	return out.String()
}

func info(t *testing.T, m *sandbox.Manager, id string) sandbox.Info {
	t.Helper()
	i, err := m.Info(id)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// TestSandboxStateSurvivesRestartClass: every kind of sandbox a node holds
// when it stops (running, paused, deleted, never acknowledged) is where it
// should be on the next start: kept ones stopped with their files, spec and
// the rest of their clock; deleted ones and orphan directories gone; a
// stopped one starts again and sees its files.
func TestSandboxStateSurvivesRestartClass(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dir := filepath.Join(t.TempDir(), "sandboxes")
	first := start(t, st, dir)
	spec := sandbox.Spec{Env: map[string]string{"KEPT": "env"}, Labels: map[string]string{sandbox.LabelOwner: "spiffe://t/u"},
		Limits: sandbox.Limits{DiskMB: 64}, Timeout: time.Hour}
	running, err := first.m.Create(ctx, "keep-running", spec)
	if err != nil {
		t.Fatal(err)
	}
	run(t, running, "mkdir -p d && echo survived > d/f")
	paused, err := first.m.Create(ctx, "keep-paused", sandbox.Spec{Timeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.m.Pause(ctx, paused.ID()); err != nil {
		t.Fatal(err)
	}
	if err := first.m.Pause(ctx, paused.ID()); !errors.Is(err, sandbox.ErrPaused) {
		t.Fatalf("second pause: %v", err)
	}
	left := time.Until(info(t, first.m, "keep-paused").Deadline)
	gone, err := first.m.Create(ctx, "deleted", sandbox.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.m.Delete(ctx, gone.ID()); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "orphan", "workspace"), 0o700); err != nil {
		t.Fatal(err)
	}
	first.stop()

	second := start(t, st, dir)
	ids := []string{}
	for _, i := range second.m.List() {
		ids = append(ids, i.ID+":"+i.State)
	}
	if got := strings.Join(ids, ","); got != "keep-paused:stopped,keep-running:stopped" {
		t.Fatalf("after restart: %s", got)
	}
	for _, p := range []string{"deleted", "orphan"} {
		if _, err := os.Stat(filepath.Join(dir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s dir left: %v", p, err)
		}
	}
	if _, err := second.m.Get("keep-running"); !errors.Is(err, sandbox.ErrStopped) {
		t.Fatalf("get of a stopped sandbox: %v", err)
	}
	i := info(t, second.m, "keep-running")
	if i.Labels[sandbox.LabelOwner] != "spiffe://t/u" || i.Limits.DiskMB != 64 || i.Reason == "" {
		t.Fatalf("record lost its spec: %+v", i)
	}
	// The paused one's clock stayed stopped across the restart.
	if d := time.Until(info(t, second.m, "keep-paused").Deadline); d < left-time.Minute || d > left+time.Minute {
		t.Fatalf("paused sandbox has %v left, had %v", d, left)
	}
	sb, err := second.m.StartSandbox(ctx, "keep-running")
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, sb, "cat d/f; echo $KEPT; touch d/g"); got != "survived\nenv\n" {
		t.Fatalf("started sandbox sees %q", got)
	}
	if again, err := second.m.StartSandbox(ctx, "keep-running"); err != nil || again != sb {
		t.Fatalf("start of a running sandbox: %v", err)
	}
	if i := info(t, second.m, "keep-running"); i.State != sandbox.StateRunning || time.Until(i.Deadline) < 50*time.Minute {
		t.Fatalf("started: %+v", i)
	}
	if err := second.m.Delete(ctx, "keep-paused"); err != nil {
		t.Fatal(err)
	}
	second.stop()
	third := start(t, st, dir)
	if l := third.m.List(); len(l) != 1 || l[0].ID != "keep-running" {
		t.Fatalf("third run lists %+v", l)
	}
}

// TestWorkspaceQuotaClass: a workspace over its disk limit pauses the
// sandbox (many files, each under RLIMIT_FSIZE), resume is refused while it
// stays over, and freeing space through the files API lets it resume.
func TestWorkspaceQuotaClass(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := start(t, st, filepath.Join(t.TempDir(), "sandboxes"))
	sb, err := n.m.Create(ctx, "", sandbox.Spec{Limits: sandbox.Limits{DiskMB: 2}})
	if err != nil {
		t.Fatal(err)
	}
	// One file cannot pass the limit.
	var errb bytes.Buffer
	if code, _ := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c", "head -c 3000000 /dev/zero > big"}}, nil, &errb); code == 0 {
		t.Fatalf("a 3 MB file fit a 2 MiB workspace")
	}
	run(t, sb, "rm -f big; for i in 1 2 3; do head -c 1000000 /dev/urandom > f$i; done")
	if got := n.m.CheckQuotas(ctx); len(got) != 1 || got[0] != sb.ID() {
		t.Fatalf("over quota: paused %v", got)
	}
	i := info(t, n.m, sb.ID())
	if i.State != sandbox.StatePaused || !strings.Contains(i.Reason, "limit") {
		t.Fatalf("over quota: %+v", i)
	}
	if err := n.m.Resume(ctx, sb.ID()); !errors.Is(err, sandbox.ErrDiskLimit) {
		t.Fatalf("resume over quota: %v", err)
	}
	if err := sb.Remove(ctx, "f3"); err != nil {
		t.Fatal(err)
	}
	if err := n.m.Resume(ctx, sb.ID()); err != nil {
		t.Fatal(err)
	}
	if got := run(t, sb, "ls"); got != "f1\nf2\n" {
		t.Fatalf("after resume: %q", got)
	}
}

// TestSandboxForkClass: fork copies a running sandbox's workspace (frozen
// meanwhile, then running again), the copies are independent and owned
// like it, counts outside 1..MaxForks are refused, and a stopped sandbox
// (after a restart) forks too. The copies share one frozen layer below
// their own writes: neither the source's later writes nor one copy's
// writes and deletions reach another, their files survive a restart, and
// the layer goes with the last copy.
func TestSandboxForkClass(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dir := filepath.Join(t.TempDir(), "sandboxes")
	n := start(t, st, dir)
	src, err := n.m.Create(ctx, "", sandbox.Spec{Labels: map[string]string{sandbox.LabelOwner: "spiffe://t/a"}})
	if err != nil {
		t.Fatal(err)
	}
	run(t, src, "mkdir d && echo seed > d/f && ln -s d/f l")
	for _, bad := range []int{0, -1, sandbox.MaxForks + 1} {
		if _, err := n.m.Fork(ctx, src.ID(), bad); err == nil {
			t.Fatalf("fork count %d accepted", bad)
		}
	}
	forks, err := n.m.Fork(ctx, src.ID(), 2)
	if err != nil || len(forks) != 2 {
		t.Fatalf("fork: %v", err)
	}
	run(t, src, "echo later > d/f; echo new > n")
	run(t, forks[1], "rm l")
	for _, f := range forks {
		if got := run(t, f, "stat -f -c %T /workspace; ls; cat d/f; echo mine > d/f"); got != "overlayfs\nd\nl\nseed\n" && f == forks[0] {
			t.Fatalf("fork sees %q", got)
		}
		if o, _ := n.m.OwnershipOf(f.ID()); o.Owner != "spiffe://t/a" {
			t.Fatalf("fork owner %q", o.Owner)
		}
	}
	if got := run(t, src, "cat d/f; ls"); got != "later\nd\nl\nn\n" {
		t.Fatalf("source changed by its forks: %q", got)
	}
	if got := run(t, forks[1], "ls; cat d/f"); got != "d\nmine\n" {
		t.Fatalf("second fork sees %q", got)
	}
	layers := filepath.Join(dir, ".layers")
	if ents, _ := os.ReadDir(layers); len(ents) != 1 {
		t.Fatalf("%d layers after one fork, want 1", len(ents))
	}
	f0 := forks[0].ID()
	if err := n.m.Delete(ctx, forks[1].ID()); err != nil {
		t.Fatal(err)
	}
	if i := info(t, n.m, src.ID()); i.State != sandbox.StateRunning {
		t.Fatalf("source after fork: %+v", i)
	}
	n.stop()
	n = start(t, st, dir)
	if ents, _ := os.ReadDir(layers); len(ents) != 1 {
		t.Fatalf("%d layers after a restart, want the one still used", len(ents))
	}
	kept, err := n.m.StartSandbox(ctx, f0)
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, kept, "cat d/f l"); got != "mine\nmine\n" {
		t.Fatalf("fork after a restart sees %q", got)
	}
	if err := n.m.Delete(ctx, f0); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(layers); len(ents) != 0 {
		t.Fatalf("%d layers after the last fork was deleted", len(ents))
	}
	forks, err = n.m.Fork(ctx, src.ID(), 1)
	if err != nil {
		t.Fatalf("fork of a stopped sandbox: %v", err)
	}
	if got := run(t, forks[0], "cat d/f"); got != "later\n" {
		t.Fatalf("fork of stopped sees %q", got)
	}
}

// BenchmarkFork measures Fork of a sandbox whose workspace holds
// FORK_MB MiB (default 16) into FORK_N copies (default 100): one
// iteration is the whole fork; ns/op / 1e6 is the fork's ms. FORK_POOL
// (default 0) is a warm pool, full before each fork: the copies are then
// pool claims.
func BenchmarkFork(b *testing.B) {
	mb, cnt, poolSize := envInt("FORK_MB", 16), envInt("FORK_N", 100), envInt("FORK_POOL", 0)
	st, err := store.Open(b.Context(), store.Options{Dir: b.TempDir(), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var pools []sandbox.PoolConfig
	if poolSize > 0 {
		pools = append(pools, sandbox.PoolConfig{Tier: sandbox.TierProcess, Size: poolSize, Refill: 2})
	}
	n := start(b, st, filepath.Join(b.TempDir(), "sandboxes"), pools...)
	waitPool := func() {
		for poolSize > 0 {
			if ready, _ := n.m.PoolReady(sandbox.TierProcess, ""); ready >= poolSize {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	src, err := n.m.Create(b.Context(), "", sandbox.Spec{Limits: sandbox.Limits{DiskMB: mb + 16}})
	if err != nil {
		b.Fatal(err)
	}
	var errb bytes.Buffer
	if code, err := src.Exec(b.Context(), sandbox.ExecSpec{Cmd: "sh", Args: []string{"-c",
		"for i in $(seq " + strconv.Itoa(mb) + "); do head -c 1048576 /dev/urandom > f$i; done"}}, nil, &errb); err != nil || code != 0 {
		b.Fatalf("fill: %d %v %s", code, err, errb.String())
	}
	b.StopTimer()
	waitPool()
	b.StartTimer()
	for b.Loop() {
		forks, err := n.m.Fork(b.Context(), src.ID(), cnt)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		for _, f := range forks {
			_ = n.m.Delete(b.Context(), f.ID())
		}
		waitPool()
		b.StartTimer()
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
