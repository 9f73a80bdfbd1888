package sandbox_test

import (
	"math"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/sandbox"
)

var testCaps = sandbox.Caps{Exempt: func(owner string) bool { return owner == capsAdmin }, PerOwner: 2,
	CPUs: 1, MemoryMB: 256, DiskMB: 64, Pids: 64, Timeout: 10 * time.Minute}

const (
	capsUser  = "spiffe://agentcloud.local/user/alice"
	capsAdmin = "spiffe://agentcloud.local/admin/admin"
)

// FuzzSandboxCaps: whatever limits and lifetime a user's spec carries,
// AdmitCreate either refuses it with a 4xx problem or admits values within
// every cap (omitted ones included, once the defaults are applied); an
// administrator's spec is admitted unchanged.
func FuzzSandboxCaps(f *testing.F) {
	f.Add(0.0, 0, 0, 0, int64(0), false, 0)
	f.Add(1.0, 256, 64, 64, int64(600), false, 1)
	f.Add(2.0, 1<<20, 1<<20, 1<<20, int64(86400), false, 0)
	f.Add(0.5, 257, 65, 65, int64(601), false, 0)
	f.Add(8.0, 4096, 4096, 4096, int64(86400), true, 5)
	f.Add(math.NaN(), -1, -1, -1, int64(-1), false, 0)
	f.Fuzz(func(t *testing.T, cpus float64, mem, disk, pids int, timeoutS int64, admin bool, live int) {
		owner := capsUser
		if admin {
			owner = capsAdmin
		}
		asked := sandbox.Spec{Limits: sandbox.Limits{CPUs: cpus, MemoryMB: mem, DiskMB: disk, Pids: pids},
			Timeout: time.Duration(timeoutS) * time.Second, Labels: map[string]string{sandbox.LabelOwner: owner}}
		spec := asked
		var infos []sandbox.Info
		for range min(max(live, 0), 10) {
			infos = append(infos, sandbox.Info{Labels: map[string]string{sandbox.LabelOwner: owner}})
		}
		err := testCaps.AdmitCreate(&spec, infos)
		if admin {
			if err != nil || spec.Limits != asked.Limits && !math.IsNaN(cpus) || spec.Timeout != asked.Timeout {
				t.Fatalf("administrator: %v, %+v from %+v", err, spec, asked)
			}
			return
		}
		if err != nil {
			if p := api.AsProblem(err); p.Status < 400 || p.Status >= 500 || p.Detail == "" {
				t.Fatalf("refusal is not a 4xx problem with a detail: %v", err)
			}
			return
		}
		if len(infos) >= testCaps.PerOwner {
			t.Fatalf("admitted past the quota with %d live", len(infos))
		}
		l, d := spec.Limits.WithDefaults(), spec.Timeout
		if d <= 0 {
			d = sandbox.DefaultTimeout
		}
		if l.CPUs > testCaps.CPUs || l.MemoryMB > testCaps.MemoryMB || l.DiskMB > testCaps.DiskMB || l.Pids > testCaps.Pids || d > testCaps.Timeout {
			t.Fatalf("admitted over the caps: %+v for %v (asked %+v)", l, d, asked)
		}
	})
}
