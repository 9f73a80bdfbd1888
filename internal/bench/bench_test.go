package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

// These run each benchmark once at its smallest size against an
// in-process daemon: they check that it works and reports, not how fast.

func TestSessionsRuns(t *testing.T) {
	wd, _ := filepath.Abs(filepath.Join("..", "..", workerdDefault))
	if _, err := os.Stat(wd); err != nil {
		wd = "" // not installed: the run says so in workerd_skipped
	}
	res, err := Sessions(context.Background(), SessionsOptions{Sessions: 3, Concurrency: 2, Activations: 2, Duration: 50 * time.Millisecond, Workerd: wd})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.SessionsCreated != 3 || !res.InProcess || res.WarmRequestP50Us <= 0 || res.ActivateHibernatedP50Us <= 0 {
		t.Fatalf("%+v", res)
	}
	// Issue 15's rows: concurrency-1 warm requests, hello-world throughput
	// (beside workerd when it is installed), a restart with the sessions on
	// disk and an activation after it.
	if res.WarmRequestC1P50Us <= 0 || res.HelloRPS <= 0 || res.DaemonStartMs <= 0 || res.ActivateAfterStartMs <= 0 ||
		res.SessionsOnDisk != 3 || res.DiskBytes <= 0 || res.LoadAverage == "" || res.LoadConcurrency != 32 {
		t.Fatalf("%+v", res)
	}
	if res.WorkerdSkipped == "" && (res.WorkerdHelloRPS <= 0 || res.WorkerdRatio <= 0) {
		t.Fatalf("workerd ran but measured nothing: %+v", res)
	}
	t.Logf("%+v", res)
}

// TestSessionsHibernatedRuns: the million-session mode creates and
// hibernates every session through the real path, then reports the
// hibernated figures and a restart, with no live phase.
func TestSessionsHibernatedRuns(t *testing.T) {
	t.Parallel()
	res, err := Sessions(context.Background(), SessionsOptions{Sessions: 4, Concurrency: 2, Activations: 2, Duration: time.Millisecond, Hibernated: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.SessionsCreated != 4 || !res.HibernatedOnly || res.CreateSeconds <= 0 || res.CreateRatePerSec <= 0 ||
		res.ActivateHibernatedP50Us <= 0 || res.SessionsOnDisk != 4 || res.DaemonStartMs <= 0 || res.ActivateAfterStartMs <= 0 ||
		res.HibernatedSessionDiskBytes <= 0 || res.CreateCPUMs <= 0 {
		t.Fatalf("%+v", res)
	}
	if res.HelloRPS != 0 || res.WarmRequestP50Us != 0 || res.LiveSessionRSSKiB != 0 || res.LiveSessionPSSKiB != 0 || res.LiveSessionPrivateKiB != 0 {
		t.Fatalf("hibernated mode ran a live phase: %+v", res)
	}
}

// TestAuthzEgressRuns: the egress half reaches its loopback upstream
// through a session's fetch() with only the daemon's ordinary settings.
func TestAuthzEgressRuns(t *testing.T) {
	res, err := Authz(context.Background(), AuthzOptions{Tools: 2, Entities: 10, Decisions: 100, Requests: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Entities != 10 || res.DecisionP50Us <= 0 || res.DirectP50Ms <= 0 || res.EgressRequests != 10 {
		t.Fatalf("%+v", res)
	}
}

func TestToolsRuns(t *testing.T) {
	res, err := Tools(context.Background(), ToolsOptions{N: 5})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.MCPCallP50Us <= 0 || res.MCPCallUserJWTP50Us <= 0 || res.Caller != "admin (bootstrap token)" {
		t.Fatalf("%+v", res)
	}
}

func TestSandboxRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("process-tier sandboxes need root (user namespaces, cgroups)")
	}
	res, err := Sandbox(context.Background(), SandboxOptions{Tier: api.SandboxTierProcess, N: 1, Concurrency: 1, Alive: 1, Burst: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.ConcurrentOK != 1 || res.CreateP50Ms <= 0 || res.ExecPythonPooledP50Ms <= 0 {
		t.Fatalf("%+v", res)
	}
	if res.Burst100 != 3 || res.Burst100OK != 3 || res.Burst100CreateP50Ms <= 0 || res.ExecPythonHostRatio <= 0 || res.LoadAvgEnd <= 0 {
		t.Fatalf("burst and ratio: %+v", res)
	}
	if res.Burst100PooledOK != 3 || res.Burst100PooledP50Ms == nil || *res.Burst100PooledP50Ms <= 0 || res.PoolSize != 3 || res.PoolFillMs == nil {
		t.Fatalf("pooled burst: %+v", res)
	}
	if res.Fork100PooledMs == nil || *res.Fork100PooledMs <= 0 {
		t.Fatalf("pooled fork: %+v", res)
	}
	// Every figure the issue names is a key, null when not measured.
	b, _ := json.Marshal(res)
	for _, k := range []string{"burst100_create_p50_ms", "burst100_create_p99_ms", "fork100_ms", "snapshot_ms_per_gib", "restore_ms",
		"burst100_pooled_p50_ms", "burst100_pooled_p99_ms", "pool_fill_ms", "fork100_pooled_ms",
		"create_p50_ms", "exec_python_p50_ms", "exec_python_warm_p50_ms", "baseline_python_p50_ms", "pool_claim_p50_ms",
		"exec_python_pooled_p50_ms", "exec_python_pooled_p99_ms"} {
		if !bytes.Contains(b, []byte(`"`+k+`":`)) {
			t.Errorf("no %s in %s", k, b)
		}
	}
}

// TestSandboxOnlyRuns: --only burst runs the cold and the pooled burst
// and nothing else (the create loop's keys stay zero), --only create the
// reverse.
func TestSandboxOnlyRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("process-tier sandboxes need root (user namespaces, cgroups)")
	}
	res, err := Sandbox(t.Context(), SandboxOptions{Tier: api.SandboxTierProcess, N: 1, Concurrency: 1, Alive: 1, Burst: 3, Only: SandboxOnlyBurst})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Burst100OK != 3 || res.Burst100PooledOK != 3 || res.CreateP50Ms != 0 || res.ConcurrentOK != 0 {
		t.Fatalf("only burst: %+v", res)
	}
	res, err = Sandbox(t.Context(), SandboxOptions{Tier: api.SandboxTierProcess, N: 1, Concurrency: 1, Alive: 1, Burst: 3, Only: SandboxOnlyCreate})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.CreateP50Ms <= 0 || res.ExecPythonHostRatio <= 0 || res.Burst100 != 0 || res.Burst100PooledP50Ms != nil {
		t.Fatalf("only create: %+v", res)
	}
}

// TestOptionsRefusedClass: every benchmark refuses sizes it cannot run
// with an error instead of starting a daemon.
func TestOptionsRefusedClass(t *testing.T) {
	ctx := context.Background()
	for name, f := range map[string]func() error{
		"pipeline zero": func() error {
			_, err := Pipeline(ctx, PipelineOptions{Appenders: 1, Deploys: 1, Rollbacks: 1})
			return err
		},
		"sessions zero": func() error {
			_, err := Sessions(ctx, SessionsOptions{Concurrency: 1, Activations: 1, Duration: 1})
			return err
		},
		"sessions no time": func() error {
			_, err := Sessions(ctx, SessionsOptions{Sessions: 1, Concurrency: 1, Activations: 1})
			return err
		},
		"sandbox n":     func() error { _, err := Sandbox(ctx, SandboxOptions{Concurrency: 1}); return err },
		"sandbox alive": func() error { _, err := Sandbox(ctx, SandboxOptions{N: 1, Concurrency: 1, Alive: -1}); return err },
		"sandbox burst": func() error { _, err := Sandbox(ctx, SandboxOptions{N: 1, Concurrency: 1, Burst: -1}); return err },
		"sandbox only":  func() error { _, err := Sandbox(ctx, SandboxOptions{N: 1, Concurrency: 1, Only: "fork"}); return err },
		"authz entities": func() error {
			_, err := Authz(ctx, AuthzOptions{Tools: 5, Entities: 6, Decisions: 100, Requests: 10})
			return err
		},
		"authz requests": func() error {
			_, err := Authz(ctx, AuthzOptions{Tools: 1, Entities: 3, Decisions: 100, Requests: 9})
			return err
		},
		"tools n":        func() error { _, err := Tools(ctx, ToolsOptions{}); return err },
		"tools run-code": func() error { _, err := Tools(ctx, ToolsOptions{N: 1, RunCode: -1}); return err },
	} {
		if err := f(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestGatewayFloodRuns runs `bench gateway` with short phases (about 7 s):
// it reports the overhead and the flood's fields and writes the plot.
func TestGatewayFloodRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("the flood runs for about 7 seconds")
	}
	plot := t.TempDir() + "/flood.svg"
	res, err := Gateway(context.Background(), GatewayOptions{Requests: 1000, Unloaded: time.Second, Phase: 3 * time.Second, Plot: plot})
	if err != nil {
		t.Fatal(err)
	}
	f := res.Flood
	if res.OverheadP50Us <= 0 || res.OverheadJWTP99Us < res.OverheadJWTP50Us || f == nil || f.HumanSamples[0] == 0 || f.HumanSamples[1] == 0 ||
		f.HumanP99MsFloodClassesOff <= 0 || f.AgentGoodput <= 0 || f.Jain <= 0 || res.HumanSchedP99Ratio <= 0 {
		t.Fatalf("%+v %+v", res, f)
	}
	svg, err := os.ReadFile(plot)
	if err != nil || !strings.HasPrefix(string(svg), "<svg") {
		t.Fatalf("plot: %v %.60s", err, svg)
	}
}

func TestPipelineRuns(t *testing.T) {
	res, err := Pipeline(context.Background(), PipelineOptions{Appends: 50, Appenders: 4, Deploys: 2, Rollbacks: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.LedgerAppendPerSec <= 0 || res.InclusionProofBytes == 0 || res.ProofVerifyUs <= 0 ||
		res.Deploys != 2 || res.DeployToLiveP50Ms <= 0 || res.Rollbacks != 2 || res.RollbackP50Ms <= 0 {
		t.Fatalf("%+v", res)
	}
}
