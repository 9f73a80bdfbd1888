//go:build linux

package process

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/process/sbinit"
)

// TestSbinitAgreesWithSandbox: the init's copies of the sandbox's layout
// and identity (package sbinit may not import internal/sandbox) are the
// sandbox package's.
func TestSbinitAgreesWithSandbox(t *testing.T) {
	if sbinit.WorkspaceDir != sandbox.WorkspaceDir || sbinit.TmpDir != sandbox.TmpDir ||
		sbinit.SandboxUID != sandbox.SandboxUID || sbinit.SandboxGID != sandbox.SandboxGID ||
		sbinit.DefaultDiskMB != sandbox.DefaultLimits.DiskMB {
		t.Fatal("package sbinit's constants differ from package sandbox's")
	}
	for _, p := range []string{"/workspace/a", "rel/x", "/tmp", "/etc/passwd", "/workspace/../etc", "/tmpx"} {
		_, _, err := sandbox.ResolvePath(p)
		if serr := sbinit.CheckWritable(p); (err == nil) != (serr == nil) {
			t.Errorf("%q: sandbox.ResolvePath says %v, sbinit says %v", p, err, serr)
		}
	}
}

// TestInitStartsBeforeHeavyPackageInits: a sandbox init (this test binary
// re-executed with the marker, which imports the whole tier and its
// dependencies) takes over before the initializers of heavy packages run:
// none of them appears in the runtime's init trace before it exits (here
// at once: it has no control socket). Nor do the packages that sort late
// in the initialization order (net, regexp, protobuf): package sbinit
// imports none of them (nor path/filepath), or it would wait for them and
// for every package initialized before them.
func TestInitStartsBeforeHeavyPackageInits(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), sbinit.Env+"=1", "GODEBUG=inittrace=1")
	out, _ := cmd.CombinedOutput()
	trace := string(out)
	if !strings.Contains(trace, "sandbox init:") {
		t.Fatalf("the init did not run:\n%s", trace)
	}
	for _, heavy := range []string{
		"github.com/santhosh-tekuri/jsonschema/v6", "github.com/agentcloud/agentcloud/api",
		"github.com/agentcloud/agentcloud/internal/config", "github.com/prometheus/client_golang/prometheus",
		"go.opentelemetry.io/otel/sdk/trace", "github.com/nats-io/nats-server/v2/server",
		"net", "regexp", "google.golang.org/protobuf/proto",
	} {
		if strings.Contains(trace, "init "+heavy+" @") {
			t.Errorf("%s was initialized before the sandbox init took over", heavy)
		}
	}
}
