package doctest

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/store/storetest"
)

// TestClusterDemoScript runs scripts/cluster-demo.sh (`make cluster-demo`)
// with the built binary on free loopback ports: three nodes form one
// cluster, the status shows them, one is killed with kill -9 and every
// session answers again through the other two.
func TestClusterDemoScript(t *testing.T) {
	t.Parallel() // waits on failover; overlaps TestDocCommands
	if testing.Short() {
		t.Skip("starts three daemons")
	}
	root := repoRoot(t)
	bin := agentcloudBin(t)
	ports := func() string {
		var ps []string
		for _, a := range storetest.FreeAddrs(t, 3) {
			ps = append(ps, a[strings.LastIndex(a, ":")+1:])
		}
		return strings.Join(ps, " ")
	}
	cmd := exec.Command(filepath.Join(root, "scripts", "cluster-demo.sh"), bin)
	cmd.Dir = t.TempDir()
	cmd.Env = cleanEnv("DEMO_API_PORTS="+ports(), "DEMO_ROUTE_PORTS="+ports(), "DEMO_LEASE_TTL=3s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Minute): // a hang, not a speed check
		killGroup(cmd)
		<-done
		t.Fatalf("cluster-demo.sh did not end\n%s", out)
	}
	if err != nil {
		t.Fatalf("cluster-demo.sh: %v\n%s", err, out)
	}
	text := string(out)
	after, _, _ := strings.Cut(text[strings.Index(text, "kill -9"):], "cluster demo done")
	for _, want := range []string{"n1    healthy", "n3    healthy", "0 without owner", "deployed counter"} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q\n%s", want, text)
		}
	}
	if !strings.Contains(after, "n3    DOWN") || strings.Count(after, `"stored":2`) != 6 {
		t.Errorf("after the kill: want n3 DOWN and all six sessions answering with their second count\n%s", text)
	}
}
