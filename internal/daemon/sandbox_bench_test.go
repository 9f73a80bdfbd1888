package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/sandbox/gvisor"
)

// latencyPy times n GETs of argv[1] with one client and prints the p50 and
// p99 in milliseconds. argv[3] == "direct" ignores proxy settings.
const latencyPy = `import sys, time, urllib.request as u
url, n = sys.argv[1], int(sys.argv[2])
op = u.build_opener(u.ProxyHandler({})) if sys.argv[3] == "direct" else u.build_opener()
ts = []
for _ in range(n):
    t = time.perf_counter()
    op.open(url, timeout=10).read()
    ts.append(time.perf_counter() - t)
ts.sort()
print("%.4f %.4f" % (ts[len(ts) // 2] * 1000, ts[min(len(ts) - 1, int(len(ts) * 0.99))] * 1000))
`

// BenchmarkSandboxEgress compares an HTTP GET to a loopback server from
// inside a sandbox, through its egress proxy (policy decision, audit), with
// the same GET made directly on the host. Each iteration runs 200 requests
// of each kind and reports the medians.
func BenchmarkSandboxEgress(b *testing.B) {
	needSandboxes(b)
	b.Run("process", func(b *testing.B) { benchSandboxEgress(b, api.SandboxTierProcess) })
	b.Run("gvisor", func(b *testing.B) {
		if err := gvisor.Available(""); err != nil {
			b.Skip(err)
		}
		benchSandboxEgress(b, api.SandboxTierGVisor)
	})
}

func benchSandboxEgress(b *testing.B, tier string) {
	_, admin := startDaemonWith(b, config.Default(), &daemon.EgressTestHooks{Resolver: loopResolver{}, AllowLoopback: true})
	ctx := context.Background()
	up := newRecorder(b, "ok")
	sb, err := admin.CreateSandbox(ctx, api.CreateSandboxRequest{Tier: tier, Egress: []string{up.pattern("api.test")}})
	if err != nil {
		b.Fatal(err)
	}
	const n = "200"
	parse := func(out string) (p50, p99 float64) {
		if _, err := fmt.Sscanf(strings.TrimSpace(out), "%f %f", &p50, &p99); err != nil {
			b.Fatalf("latency output %q: %v", out, err)
		}
		return
	}
	var proxied, proxied99, direct, direct99 float64
	for b.Loop() {
		var out bytes.Buffer
		code, err := admin.Exec(ctx, sb.ID, api.ExecRequest{Cmd: "python3", Args: []string{"-c", latencyPy, up.url("api.test"), n, "proxy"}}, &out, &out)
		if err != nil || code != 0 {
			b.Fatalf("in sandbox: %d %v %s", code, err, out.String())
		}
		proxied, proxied99 = parse(out.String())
		host, err := exec.Command("python3", "-c", latencyPy, up.url("127.0.0.1"), n, "direct").CombinedOutput()
		if err != nil {
			b.Fatalf("on host: %v %s", err, host)
		}
		direct, direct99 = parse(string(host))
	}
	b.ReportMetric(proxied, "sandbox_proxied_p50_ms")
	b.ReportMetric(proxied99, "sandbox_proxied_p99_ms")
	b.ReportMetric(direct, "host_direct_p50_ms")
	b.ReportMetric(direct99, "host_direct_p99_ms")
	b.ReportMetric(proxied-direct, "egress_overhead_p50_ms")
	b.ReportMetric(0, "ns/op")
}
