//go:build linux

package gvisor

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// TestPoolWarmUpClass: a container prepared for the warm pool has run its
// throwaway command before it is ready, and that command leaves nothing
// behind for the tenant who claims it (no process, no file in /workspace
// or /tmp, no changed environment); a container a create prepares itself
// is not warmed (its create would pay the command), nor is one whose
// commands go through runsc exec. The claimed container runs commands as
// any other.
func TestPoolWarmUpClass(t *testing.T) {
	tier := newTestTier(t)
	if !tier.egress {
		t.Skip("runsc without --host-uds: no exec agent")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()

	pr, err := tier.Prepare(sandbox.ForPool(ctx), "")
	if err != nil {
		t.Fatal(err)
	}
	c := pr.(*container)
	if c.agent == nil || !c.agent.warmed.Load() {
		_ = pr.Discard()
		t.Fatal("a pooled container was not warmed before it was ready")
	}
	if !c.relayReady.Load() {
		t.Error("a pooled container's egress relay was not waited for before it was ready")
	}
	for _, d := range []string{"workspace", "tmp"} {
		ents, err := os.ReadDir(filepath.Join(c.rwDir, d))
		if err != nil || len(ents) != 0 {
			t.Errorf("warm-up left in %s: %v %v", d, ents, err)
		}
	}
	sb, err := pr.Activate(ctx, sandbox.NewID(), sandbox.Spec{Env: map[string]string{"FOO": "bar"}})
	if err != nil {
		_ = pr.Discard()
		t.Fatal(err)
	}
	defer sb.Close()
	if ps, err := sb.Processes(ctx); err != nil || len(ps) != 0 {
		t.Errorf("processes left by the warm-up: %+v %v", ps, err)
	}
	var out bytes.Buffer
	code, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "/bin/sh", Args: []string{"-c", `echo "$FOO"; python3 -c 'print(1)'`}}, &out, nil)
	if err != nil || code != 0 || out.String() != "bar\n1\n" {
		t.Errorf("first command in a warmed sandbox: %q %d %v", out.String(), code, err)
	}

	cold, err := tier.Prepare(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if c := cold.(*container); c.agent == nil || c.agent.warmed.Load() {
		t.Errorf("a create's own container: agent %v, warmed (its create pays the throwaway command)", c.agent)
	}
	_ = cold.Discard()

	tier.noAgent = true
	defer func() { tier.noAgent = false }()
	noAgent, err := tier.Prepare(sandbox.ForPool(ctx), "")
	if err != nil {
		t.Fatalf("a pooled container without an agent: %v", err)
	}
	if c := noAgent.(*container); c.agent != nil && c.agent.warmed.Load() {
		t.Error("a container without an agent was warmed")
	}
	_ = noAgent.Discard()
}

// BenchmarkPooledFirstExec: the first `python3 -c 'print(1)'` in a
// container prepared for the pool, warmed and not (noWarm), interleaved
// in each iteration so that both see the same load, then a second
// command in the warmed one (a warm exec). Each container rests settle
// between its prepare and its first command, as a pooled one does.
// Reports p50s in ms.
func BenchmarkPooledFirstExec(b *testing.B) {
	tier := newTestTier(b)
	if !tier.egress {
		b.Skip("runsc without --host-uds: no exec agent")
	}
	ctx := context.Background()
	var warmed, unwarmed, second []time.Duration
	const settle = time.Second
	first := func(noWarm bool) (sandbox.Sandbox, time.Duration) {
		tier.noWarm = noWarm
		pr, err := tier.Prepare(sandbox.ForPool(ctx), "")
		tier.noWarm = false
		if err != nil {
			b.Fatal(err)
		}
		sb, err := pr.Activate(ctx, sandbox.NewID(), sandbox.Spec{})
		if err != nil {
			b.Fatal(err)
		}
		time.Sleep(settle) // as in a pool: the boot's aftermath is over
		t0 := time.Now()
		if code, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "python3", Args: []string{"-c", "print(1)"}}, nil, nil); err != nil || code != 0 {
			b.Fatalf("code=%d err=%v", code, err)
		}
		return sb, time.Since(t0)
	}
	for i := 0; b.Loop(); i++ {
		for _, noWarm := range []bool{i%2 == 0, i%2 != 0} {
			sb, d := first(noWarm)
			if noWarm {
				unwarmed = append(unwarmed, d)
			} else {
				warmed = append(warmed, d)
				t0 := time.Now()
				if _, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "python3", Args: []string{"-c", "print(1)"}}, nil, nil); err != nil {
					b.Fatal(err)
				}
				second = append(second, time.Since(t0))
			}
			_ = sb.Close()
		}
	}
	for name, l := range map[string][]time.Duration{"first-warmed-p50-ms": warmed, "first-unwarmed-p50-ms": unwarmed, "second-p50-ms": second} {
		slices.Sort(l)
		b.ReportMetric(float64(l[len(l)/2].Microseconds())/1000, name)
	}
}

// TestPoolWarmUpDeathClass: a container whose sandbox dies during its
// warm-up is not handed to the pool (the next create would get a sandbox
// whose first command fails); its prepare fails, and nothing of it is
// left on the host.
func TestPoolWarmUpDeathClass(t *testing.T) {
	tier := newTestTier(t)
	if !tier.egress {
		t.Skip("runsc without --host-uds: no exec agent")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	old := warmArgs
	warmArgs = []string{forwarderPython, "-c", "import time; time.sleep(60)"}
	defer func() { warmArgs = old }()
	before, _ := filepath.Glob(filepath.Join(tier.bundlesDir, "*"))
	killed := make(chan error, 1)
	go func() { // kill the sandbox process once the warm-up runs
		for ctx.Err() == nil {
			time.Sleep(50 * time.Millisecond)
			pids, _ := filepath.Glob(filepath.Join(tier.bundlesDir, "*", "sandbox.pid"))
			for _, f := range pids {
				if slices.Contains(before, filepath.Dir(f)) {
					continue
				}
				b, err := os.ReadFile(f)
				pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
				if err != nil || perr != nil || pid <= 0 {
					continue
				}
				time.Sleep(2 * time.Second) // into the throwaway command
				killed <- syscall.Kill(pid, syscall.SIGKILL)
				return
			}
		}
		killed <- ctx.Err()
	}()
	pr, err := tier.Prepare(sandbox.ForPool(ctx), "")
	if kerr := <-killed; kerr != nil {
		t.Fatalf("kill the sandbox: %v", kerr)
	}
	if err == nil {
		_ = pr.Discard()
		t.Fatal("a container that died in its warm-up was prepared for the pool")
	}
	after, _ := filepath.Glob(filepath.Join(tier.bundlesDir, "*"))
	if len(after) != len(before) {
		t.Errorf("the dead container's bundle is left: %v", after)
	}
}

// TestPrepCancelClass: a pool's prepare cancelled at
// any point (the Manager closing) leaves no sandbox process, no cgroup and
// no bundle of its container: runsc is never killed halfway through
// starting a sandbox that no state would name afterwards.
func TestPrepCancelClass(t *testing.T) {
	tier := newTestTier(t)
	for _, after := range []time.Duration{0, 50 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond, 600 * time.Millisecond, 1200 * time.Millisecond} {
		ctx, cancel := context.WithCancel(sandbox.ForPool(t.Context()))
		seen := map[string]bool{}
		stop := make(chan struct{})
		polled := make(chan struct{})
		go func() { // the containers this prepare makes, by their bundles
			defer close(polled)
			for {
				ents, _ := os.ReadDir(tier.bundlesDir)
				for _, e := range ents {
					seen[e.Name()] = true
				}
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
		time.AfterFunc(after, cancel)
		pr, err := tier.Prepare(ctx, "")
		close(stop)
		<-polled
		cancel()
		if err == nil {
			_ = pr.Discard() // it got through before the cancel: a normal discard
		}
		t.Logf("cancelled after %v: %d containers, err %v", after, len(seen), err)
		for cid := range seen {
			if m, _ := filepath.Glob("/sys/fs/cgroup/*/agentcloud-gvisor/" + cid); len(m) != 0 {
				t.Errorf("cancelled after %v (err %v): cgroups of %s left: %v", after, err, cid, m)
			}
			if _, err := os.Stat(filepath.Join(tier.bundlesDir, cid)); err == nil {
				t.Errorf("cancelled after %v: bundle of %s left", after, cid)
			}
			if out, _ := exec.Command("pgrep", "-f", cid).Output(); len(bytes.TrimSpace(out)) != 0 {
				t.Errorf("cancelled after %v: processes of %s left: %s", after, cid, out)
			}
		}
	}
}
