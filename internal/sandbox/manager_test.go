package sandbox_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fakeTier is an in-memory tier for Manager tests.
type fakeTier struct {
	prepared, activated, forPool atomic.Int32
	terminals                    bool // its sandboxes implement sandbox.Terminaler
}

func (t *fakeTier) Name() string        { return "fake" }
func (t *fakeTier) Templates() []string { return []string{sandbox.TemplateHost} }
func (t *fakeTier) Close() error        { return nil }
func (t *fakeTier) Prepare(ctx context.Context, tmpl string) (sandbox.Prepared, error) {
	t.prepared.Add(1)
	if sandbox.IsForPool(ctx) {
		t.forPool.Add(1)
	}
	return &fakeBox{tier: t, tmpl: tmpl}, nil
}

type fakeBox struct {
	tier   *fakeTier
	tmpl   string
	id     string
	spec   sandbox.Spec
	closed atomic.Bool
	env    map[string]string
}

func (b *fakeBox) Template() string { return b.tmpl }
func (b *fakeBox) Activate(ctx context.Context, id string, s sandbox.Spec) (sandbox.Sandbox, error) {
	b.tier.activated.Add(1)
	b.id, b.spec = id, s
	if b.tier.terminals {
		return termBox{b}, nil
	}
	return b, nil
}

// termBox is a fakeBox of a tier with terminals.
type termBox struct{ *fakeBox }

func (termBox) Terminal(context.Context, sandbox.ExecSpec, sandbox.WindowSize) (sandbox.Terminal, error) {
	return nil, sandbox.ErrUnsupported
}

// TestManagerKeepsOptionalInterfacesClass: what Manager.Get returns
// implements an optional interface (Terminaler) exactly when the tier's
// sandbox does, with and without the metrics wrapper (which once hid it:
// the terminal route answered "no terminals" on every daemon).
func TestManagerKeepsOptionalInterfacesClass(t *testing.T) {
	for _, metrics := range []bool{false, true} {
		for _, terminals := range []bool{false, true} {
			cfg := sandbox.ManagerConfig{Tiers: []sandbox.Tier{&fakeTier{terminals: terminals}}, ReapInterval: time.Hour}
			if metrics {
				cfg.Metrics = prometheus.NewRegistry()
			}
			m, err := sandbox.NewManager(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Create(t.Context(), "a", sandbox.Spec{Tier: "fake"}); err != nil {
				t.Fatal(err)
			}
			sb, err := m.Get("a")
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := sb.(sandbox.Terminaler); ok != terminals {
				t.Errorf("metrics=%v terminals=%v: Get's sandbox is a Terminaler: %v", metrics, terminals, ok)
			}
			m.Close()
		}
	}
}
func (b *fakeBox) Discard() error                                   { return b.Close() }
func (b *fakeBox) ID() string                                       { return b.id }
func (b *fakeBox) Tier() string                                     { return "fake" }
func (b *fakeBox) Spec() sandbox.Spec                               { return b.spec }
func (b *fakeBox) AddEnv(env map[string]string)                     { b.env = env }
func (b *fakeBox) NetNSPath() (string, error)                       { return "/proc/1/ns/net", nil }
func (b *fakeBox) Failure() error                                   { return nil }
func (b *fakeBox) Close() error                                     { b.closed.Store(true); return nil }
func (b *fakeBox) Pause(ctx context.Context) error                  { return nil }
func (b *fakeBox) Resume(ctx context.Context) error                 { return nil }
func (b *fakeBox) Remove(context.Context, string) error             { return nil }
func (b *fakeBox) Mkdir(context.Context, string, fs.FileMode) error { return nil }
func (b *fakeBox) Stat(context.Context, string) (sandbox.FileInfo, error) {
	return sandbox.FileInfo{}, nil
}
func (b *fakeBox) List(context.Context, string) ([]sandbox.FileInfo, error) { return nil, nil }
func (b *fakeBox) ReadFile(context.Context, string, io.Writer) error        { return nil }
func (b *fakeBox) WriteFile(context.Context, string, io.Reader, fs.FileMode) error {
	return nil
}
func (b *fakeBox) Signal(context.Context, int, os.Signal) error         { return nil }
func (b *fakeBox) Processes(context.Context) ([]sandbox.Process, error) { return nil, nil }
func (b *fakeBox) Start(context.Context, sandbox.ExecSpec) (int, error) { return 2, nil }
func (b *fakeBox) Exec(context.Context, sandbox.ExecSpec, io.Writer, io.Writer) (int, error) {
	return 0, nil
}

func TestManagerPoolTimeoutLookup(t *testing.T) {
	tier := &fakeTier{}
	clk := &fakeClock{now: time.Unix(1000, 0)}
	var hookNS string
	m, err := sandbox.NewManager(sandbox.ManagerConfig{
		Tiers:          []sandbox.Tier{tier},
		Pools:          []sandbox.PoolConfig{{Tier: "fake", Size: 2}},
		DefaultTimeout: time.Minute,
		Now:            clk.Now,
		ReapInterval:   time.Hour,
		NetworkHook: func(ctx context.Context, sb sandbox.Sandbox, ns string) (map[string]string, error) {
			hookNS = ns
			return map[string]string{"HTTP_PROXY": "http://127.0.0.1:3128"}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for tier.prepared.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := tier.forPool.Load(); n < 2 {
		t.Fatalf("%d pool refills marked ForPool, want 2", n)
	}
	sb, err := m.Create(t.Context(), "a", sandbox.Spec{Tier: "fake"})
	if err != nil {
		t.Fatal(err)
	}
	if hookNS != "/proc/1/ns/net" || sb.(*fakeBox).env["HTTP_PROXY"] == "" {
		t.Fatalf("network hook not applied: ns=%q env=%v", hookNS, sb.(*fakeBox).env)
	}
	if got := sb.Spec().Limits; got != sandbox.DefaultLimits {
		t.Fatalf("limits not defaulted: %+v", got)
	}
	if _, err := m.Create(t.Context(), "a", sandbox.Spec{Tier: "fake"}); err == nil {
		t.Fatal("duplicate id accepted")
	}
	if _, err := m.Create(t.Context(), "", sandbox.Spec{Tier: "nope"}); !errors.Is(err, sandbox.ErrUnknownTier) {
		t.Fatalf("unknown tier: %v", err)
	}
	b, err := m.Create(t.Context(), "", sandbox.Spec{Tier: "fake", Timeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Get("a"); got != sb {
		t.Fatal("lookup failed")
	}
	if len(m.List()) != 2 {
		t.Fatalf("list: %v", m.List())
	}
	clk.Advance(59 * time.Second)
	if exp := m.ReapExpired(t.Context()); len(exp) != 0 {
		t.Fatalf("expired early: %v", exp)
	}
	if _, err := m.Extend("a", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	if exp := m.ReapExpired(t.Context()); len(exp) != 0 {
		t.Fatalf("extended sandbox expired: %v", exp)
	}
	clk.Advance(4 * time.Minute)
	if exp := m.ReapExpired(t.Context()); len(exp) != 1 || exp[0] != "a" {
		t.Fatalf("expired: %v", exp)
	}
	if !sb.(*fakeBox).closed.Load() {
		t.Fatal("expired sandbox not closed")
	}
	if _, err := m.Get("a"); !errors.Is(err, sandbox.ErrNotFound) {
		t.Fatalf("get after expiry: %v", err)
	}
	if err := m.Delete(t.Context(), b.ID()); err != nil {
		t.Fatal(err)
	}
	// Pool refills after claims.
	deadline = time.Now().Add(5 * time.Second)
	for tier.prepared.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if tier.prepared.Load() < 4 {
		t.Fatalf("pool not refilled: prepared %d", tier.prepared.Load())
	}
}

func TestResolvePath(t *testing.T) {
	for _, tc := range []struct{ in, root, rel string }{
		{"a.py", "/workspace", "a.py"},
		{"/workspace", "/workspace", "."},
		{"/tmp/x/../y", "/tmp", "y"},
		{"", "/workspace", "."},
	} {
		root, rel, err := sandbox.ResolvePath(tc.in)
		if err != nil || root != tc.root || rel != tc.rel {
			t.Errorf("%q: %q %q %v", tc.in, root, rel, err)
		}
	}
	for _, bad := range []string{"/etc/passwd", "/workspace/../etc", "../x", "/", "/tmpfoo", "/workspace2"} {
		if _, _, err := sandbox.ResolvePath(bad); !errors.Is(err, sandbox.ErrPathNotAllowed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzResolvePath(f *testing.F) {
	for _, s := range []string{"a", "/workspace/x", "/tmp/../etc", "../../x", "/workspace/./../tmp/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		root, rel, err := sandbox.ResolvePath(p)
		if err != nil {
			return
		}
		if root != sandbox.WorkspaceDir && root != sandbox.TmpDir {
			t.Fatalf("root %q", root)
		}
		if rel == ".." || len(rel) >= 3 && rel[:3] == "../" || len(rel) > 0 && rel[0] == '/' {
			t.Fatalf("rel %q escapes", rel)
		}
	})
}

// slowTier's sandboxes take a while to prepare, so concurrent creates
// overlap.
type slowTier struct{ fakeTier }

func (t *slowTier) Prepare(ctx context.Context, tmpl string) (sandbox.Prepared, error) {
	time.Sleep(20 * time.Millisecond)
	return t.fakeTier.Prepare(ctx, tmpl)
}

// perOwner admits at most max live sandboxes per owner label, fills an
// omitted memory limit with 64 and refuses extensions past an hour.
type perOwner struct {
	max   int
	calls atomic.Int32
}

func (a *perOwner) AdmitCreate(spec *sandbox.Spec, live []sandbox.Info) error {
	a.calls.Add(1)
	n := 0
	for _, info := range live {
		if info.Labels[sandbox.LabelOwner] == spec.Labels[sandbox.LabelOwner] {
			n++
		}
	}
	if n >= a.max {
		return errors.New("over quota")
	}
	if spec.Limits.MemoryMB == 0 {
		spec.Limits.MemoryMB = 64
	}
	return nil
}

func (a *perOwner) AdmitExtend(info sandbox.Info, d time.Duration) error {
	if d > time.Hour {
		return errors.New("too long")
	}
	return nil
}

// TestManagerAdmissionAtomicClass: the Admission's decision and the
// sandbox it admits are atomic: many concurrent creates by one owner never
// get past its quota, sandboxes being created count, a failed create frees
// its slot, the Admission may fill in omitted values, and Extend asks it too.
func TestManagerAdmissionAtomicClass(t *testing.T) {
	adm := &perOwner{max: 3}
	m, err := sandbox.NewManager(sandbox.ManagerConfig{Tiers: []sandbox.Tier{&slowTier{}}, Admission: adm})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	owned := func(owner string) sandbox.Spec {
		return sandbox.Spec{Tier: "fake", Labels: map[string]string{sandbox.LabelOwner: owner}}
	}
	var wg sync.WaitGroup
	var ok, refused atomic.Int32
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := m.Create(ctx, "", owned("alice")); err != nil {
				refused.Add(1)
			} else {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 3 || refused.Load() != 17 || len(m.List()) != 3 {
		t.Fatalf("20 concurrent creates under a quota of 3: %d created, %d refused, %d live", ok.Load(), refused.Load(), len(m.List()))
	}
	// Another owner has a quota of its own.
	bob, err := m.Create(ctx, "", owned("bob"))
	if err != nil {
		t.Fatal(err)
	}
	if got := bob.Spec().Limits.MemoryMB; got != 64 {
		t.Fatalf("omitted memory filled in by the Admission: %d, want 64", got)
	}
	if _, err := m.Extend(bob.ID(), 2*time.Hour); err == nil {
		t.Fatal("extension the Admission refuses went through")
	}
	if _, err := m.Extend(bob.ID(), time.Minute); err != nil {
		t.Fatal(err)
	}
	// Deleting frees a slot.
	for _, info := range m.List() {
		if info.Labels[sandbox.LabelOwner] == "alice" {
			if err := m.Delete(ctx, info.ID); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if _, err := m.Create(ctx, "", owned("alice")); err != nil {
		t.Fatalf("create after a delete: %v", err)
	}
}

// A template build's sandbox (Spec.Build) is never copied: Fork and
// Snapshot refuse it, so build mode cannot leak into a sandbox a caller
// keeps.
func TestBuildSandboxNotCopiedClass(t *testing.T) {
	m, err := sandbox.NewManager(sandbox.ManagerConfig{Tiers: []sandbox.Tier{&fakeTier{}}, ReapInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sb, err := m.Create(t.Context(), "", sandbox.Spec{Tier: "fake", Build: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Fork(t.Context(), sb.ID(), 1); !errors.Is(err, sandbox.ErrUnsupported) {
		t.Errorf("fork: %v", err)
	}
	if _, err := m.Snapshot(t.Context(), sb.ID(), filepath.Join(t.TempDir(), "snap")); !errors.Is(err, sandbox.ErrUnsupported) {
		t.Errorf("snapshot: %v", err)
	}
}
