package pipeline

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/store"
)

// unavailableBuilds is the real session manager with its first failures
// builds refused the way a store that cannot answer refuses them: as a 503
// problem, or (raw) as the store's own error.
type unavailableBuilds struct {
	Versions
	failures int64
	raw      bool
	calls    atomic.Int64
}

func (u *unavailableBuilds) BuildVersion(ctx context.Context, agent, digest string) (string, error) {
	if u.calls.Add(1) <= u.failures {
		if u.raw {
			return "", fmt.Errorf("load version: %w: nats: timeout", store.ErrUnavailable)
		}
		p := api.Errorf(api.KindUnavailable, "the store cannot answer right now (a cluster member may have just failed): retry in a second")
		p.RetryAfterSeconds = 1
		return "", p
	}
	return u.Versions.BuildVersion(ctx, agent, digest)
}

// TestBuildRetriesUnavailableStoreClass: a build the store cannot serve
// for a moment (a cluster member restarting) is tried again, the waits in
// the stage's log without the store's own error text, and the run passes;
// a store that stays unavailable fails the run after buildTries tries and
// nothing serves; a run cancelled while the stage waits ends cancelled, not
// failed.
func TestBuildRetriesUnavailableStoreClass(t *testing.T) {
	ctx := context.Background()
	open := func(t *testing.T, failures int64, raw bool, retry time.Duration) (*env, *unavailableBuilds) {
		var u *unavailableBuilds
		e := openEnv(t, t.TempDir(), func(_ *env, c *Config) {
			u = &unavailableBuilds{Versions: c.Versions, failures: failures, raw: raw}
			c.Versions, c.BuildRetry = u, retry
		})
		e.start(t)
		return e, u
	}
	retryLines := func(t *testing.T, e *env, id string) int {
		evs, _, err := e.runner.Events(ctx, id, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ev := range evs {
			if ev.Type == api.EventLog && ev.Stage == api.StageBuild && strings.Contains(ev.Message, "trying again") {
				n++
				if strings.Contains(ev.Message, "nats") {
					t.Errorf("the stage log shows the store's error: %q", ev.Message)
				}
			}
		}
		return n
	}
	for _, tc := range []struct {
		name     string
		failures int64
		raw      bool
		want     string
	}{
		{"Blip", 2, false, api.RunPassed},
		{"BlipStoreError", 2, true, api.RunPassed},
		{"Down", 1 << 30, false, api.RunFailed},
		{"DownStoreError", 1 << 30, true, api.RunFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, u := open(t, tc.failures, tc.raw, 10*time.Millisecond)
			run, err := e.runner.Submit(ctx, Submission{Bundle: helloBundle(t, "blip", "v1", nil, nil), Principal: alice})
			if err != nil {
				t.Fatal(err)
			}
			run = e.wait(t, run.ID)
			if run.State != tc.want {
				t.Fatalf("run %s (%s), want %s", run.State, run.Error, tc.want)
			}
			calls := u.calls.Load()
			if tc.want == api.RunPassed {
				if calls != tc.failures+1 {
					t.Fatalf("%d builds, want %d", calls, tc.failures+1)
				}
				if got := e.serving(t, "blip"); got != "hello v1" {
					t.Fatalf("serving %q", got)
				}
			} else {
				st := stage(&run, api.StageBuild)
				if calls != buildTries || st.State != api.StageFailed || !strings.Contains(st.Reason, "cannot answer") || strings.Contains(st.Reason, "nats") {
					t.Fatalf("%d builds (want %d), build stage %s %q", calls, buildTries, st.State, st.Reason)
				}
				if got := e.serving(t, "blip"); !strings.HasPrefix(got, "error:") {
					t.Fatalf("a failed first run serves %q", got)
				}
			}
			if n := retryLines(t, e, run.ID); n != int(calls-1) {
				t.Fatalf("%d retry lines in the build stage's log for %d builds", n, calls)
			}
		})
	}
	t.Run("CancelWhileWaiting", func(t *testing.T) {
		e, u := open(t, 1<<30, false, time.Hour)
		run, err := e.runner.Submit(ctx, Submission{Bundle: helloBundle(t, "blip", "v1", nil, nil), Principal: alice})
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); retryLines(t, e, run.ID) == 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the build stage never waited to try again")
			}
		}
		if _, err := e.runner.Cancel(ctx, run.ID, alice); err != nil {
			t.Fatal(err)
		}
		run = e.wait(t, run.ID)
		if run.State != api.RunCancelled || stage(&run, api.StageBuild).State != api.StageCancelled || u.calls.Load() != 1 {
			t.Fatalf("run %s %v after %d builds", run.State, stageStates(run), u.calls.Load())
		}
	})
}
