package rollout

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/store"
)

// The kill -9 test re-executes this test binary as a child that runs
// rollouts and rollbacks in a loop and reports each acknowledged
// transition; TestMain runs the child.
const (
	envCrashDir = "ROLLOUT_CRASH_DIR"
	envCrashKey = "ROLLOUT_CRASH_KEY"
)

var instantSteps = []bundle.RolloutStep{{Percent: 10}, {Percent: 50}, {Percent: 100}}

// crashChild opens everything in dir (fsync on) and, until killed (or
// after a minute: a child always stops by itself), rolls out the version
// that does not serve, step by step, and every third round rolls it back
// half way; after each call returns it prints "ack <seq> <phase>".
func crashChild(dir string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	say := func(format string, args ...any) {
		_, _ = os.Stdout.WriteString(fmt.Sprintf(format, args...) + "\n") // one write per line
	}
	st, err := store.Open(ctx, store.Options{Dir: dir})
	if err != nil {
		say("fail %v", err)
		return 2
	}
	e, err := openOn(ctx, st, Thresholds{MaxP99Ratio: 1000, MaxErrorRateIncrease: 1}, 0)
	if err != nil {
		say("fail %v", err)
		return 2
	}
	var versions []string
	for _, name := range []string{"v1", "v2"} {
		b, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(manifest), "agent.js": []byte(agentJS(name, ""))})
		if err == nil {
			av, aerr := e.m.AddVersion(ctx, b)
			err = aerr
			versions = append(versions, av.Digest)
		}
		if err != nil {
			say("fail %v", err)
			return 2
		}
	}
	if rs, err := e.m.ReadRouting(ctx, "shop"); err != nil || !rs.Exists {
		if _, err := e.c.Start(ctx, Start{Agent: "shop", Version: versions[0], Steps: instantSteps}); err != nil {
			say("fail first start: %v", err)
			return 2
		}
	}
	// A rollout cut off by the last kill resumes (or is rolled back).
	if err := e.c.Tick(ctx); err != nil {
		say("fail resume: %v", err)
		return 2
	}
	ack := func(s State) { say("ack %d %s", s.Seq, s.Phase) }
	for round := 0; ctx.Err() == nil; round++ {
		if cur, err := e.c.read(ctx, "shop"); err == nil && cur.Phase.Active() {
			if _, err := e.c.Rollback(ctx, "shop", "", "left over"); err != nil {
				say("fail rollback: %v", err)
				return 2
			}
		}
		rs, err := e.m.ReadRouting(ctx, "shop")
		if err != nil {
			say("fail %v", err)
			return 2
		}
		next := versions[0]
		if rs.Stable == versions[0] {
			next = versions[1]
		}
		s, err := e.c.Start(ctx, Start{Agent: "shop", Version: next, Steps: instantSteps})
		if err != nil {
			say("fail start: %v", err)
			return 2
		}
		ack(s)
		for step := 0; s.Phase == PhaseRunning; step++ {
			if round%3 == 2 && step == 1 {
				if s, err = e.c.Rollback(ctx, "shop", "", "crash test"); err != nil {
					say("fail rollback: %v", err)
					return 2
				}
				ack(s)
				break
			}
			if err := e.c.Tick(ctx); err != nil {
				say("fail tick: %v", err)
				return 2
			}
			cur, err := e.c.read(ctx, "shop")
			if err != nil {
				say("fail %v", err)
				return 2
			}
			s = cur.State
			ack(s)
		}
	}
	return 0
}

// TestKill9KeepsRollouts SIGKILLs a child running rollouts and rollbacks
// at random moments, several times over the same store. After each kill:
// no acknowledged transition is lost (the stored sequence is at least the
// last acknowledged one), one tick brings the routing and the ledger up to
// the stored state, the ledger verifies, and the rollout entries chain
// back to a change.
func TestKill9KeepsRollouts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills child processes")
	}
	ctx := context.Background()
	dir := t.TempDir()
	var maxAcked uint64
	for round := range 4 {
		t.Run(strconv.Itoa(round), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), envCrashDir+"="+dir, envCrashKey+"="+testSKey)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			killAfter := 5 + rand.IntN(20)
			sc := bufio.NewScanner(out)
			acks := 0
			for acks < killAfter && sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) > 0 && f[0] == "fail" {
					t.Fatalf("child: %s", sc.Text())
				}
				if len(f) == 3 && f[0] == "ack" {
					seq, _ := strconv.ParseUint(f[1], 10, 64)
					maxAcked = max(maxAcked, seq)
					acks++
				}
			}
			time.Sleep(time.Duration(rand.IntN(5)) * time.Millisecond) // land anywhere in the next transition
			if err := cmd.Process.Signal(os.Kill); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			if acks < killAfter {
				t.Fatalf("child stopped after %d acks", acks)
			}

			e := open(t, dir, false, defaultThresholds, 0)
			got, err := e.c.read(ctx, "shop")
			if err != nil {
				t.Fatal(err)
			}
			if got.Seq < maxAcked {
				t.Fatalf("acknowledged transition %d lost: stored seq %d", maxAcked, got.Seq)
			}
			if err := e.c.Tick(ctx); err != nil {
				t.Fatal(err)
			}
			got, _ = e.c.read(ctx, "shop")
			if got.LoggedSeq != got.Seq || got.Routed != got.Seq || len(got.Pending) != 0 {
				t.Fatalf("not reconciled: %+v", got.State)
			}
			rs, _ := e.m.ReadRouting(ctx, "shop")
			if rs.Routing != got.Routing() {
				t.Fatalf("routing %+v, state asks %+v", rs.Routing, got.Routing())
			}
			rep, err := e.l.Verify(ctx)
			if err != nil {
				t.Fatalf("ledger verify: %v (%+v)", err, rep)
			}
			chain := e.chain(t, got.Last)
			if root := chain[len(chain)-1]; root.Type != ledger.TypeChange {
				t.Fatalf("chain ends in %s", root.Type)
			}
			// Cleanup closes the store before the next child opens it.
		})
	}
}
