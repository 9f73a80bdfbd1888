package pipeline

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

// unavailableBuilds is the real session manager with builds refused as a
// store that cannot answer refuses them (503), the first failures times.
type unavailableBuilds struct {
	Versions
	failures int64
	calls    atomic.Int64
}

func (u *unavailableBuilds) BuildVersion(ctx context.Context, agent, digest string) (string, error) {
	if u.calls.Add(1) <= u.failures {
		p := api.Errorf(api.KindUnavailable, "the store cannot answer right now (a cluster member may have just failed): retry in a second")
		p.RetryAfterSeconds = 1
		return "", p
	}
	return u.Versions.BuildVersion(ctx, agent, digest)
}

// TestBuildRetriesUnavailableStoreClass: a build the store cannot serve
// for a moment (a cluster member restarting) is tried again, the waits in
// the stage's log, and the run passes; a store that stays unavailable
// fails the run after buildTries tries with the 503's reason, and the old
// version keeps serving.
func TestBuildRetriesUnavailableStoreClass(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		failures int64
		want     string
	}{
		{"Blip", 2, api.RunPassed},
		{"Down", 1 << 30, api.RunFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var u *unavailableBuilds
			e := openEnv(t, t.TempDir(), func(_ *env, c *Config) {
				u = &unavailableBuilds{Versions: c.Versions, failures: tc.failures}
				c.Versions, c.BuildRetry = u, 10*time.Millisecond
			})
			e.start(t)
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
				if calls != buildTries || st.State != api.StageFailed || !strings.Contains(st.Reason, "cannot answer") {
					t.Fatalf("%d builds (want %d), build stage %s %q", calls, buildTries, st.State, st.Reason)
				}
				if got := e.serving(t, "blip"); !strings.HasPrefix(got, "error:") {
					t.Fatalf("a failed first run serves %q", got)
				}
			}
			evs, _, err := e.runner.Events(ctx, run.ID, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			retries := 0
			for _, ev := range evs {
				if ev.Type == api.EventLog && ev.Stage == api.StageBuild && strings.Contains(ev.Message, "trying again") {
					retries++
				}
			}
			if retries != int(calls-1) {
				t.Fatalf("%d retry lines in the build stage's log for %d builds", retries, calls)
			}
		})
	}
}
