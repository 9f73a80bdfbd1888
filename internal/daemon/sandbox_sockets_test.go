package daemon_test

import (
	"context"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
)

// socketsPy opens a TCP connection through the egress proxy (urllib uses
// HTTP_PROXY), then tries the socket families that reach past the network
// namespace.
const socketsPy = `import socket, sys, urllib.request as u
print(u.urlopen(sys.argv[1], timeout=10).read().decode())
for name, fam, typ in [("vsock", 40, 1), ("vsock_dgram", 40, 2), ("packet", 17, 3), ("alg", 38, 5), ("bluetooth", 31, 3)]:
    try:
        socket.socket(fam, typ, 0).close(); print(name, "OPENED")
    except OSError as e:
        print(name, e.errno)
`

// TestSandboxSocketFamilyAllowlistClass: in a daemon's process-tier
// sandbox, TCP through the egress proxy works while AF_VSOCK and the other
// families outside the allowlist fail with EAFNOSUPPORT.
func TestSandboxSocketFamilyAllowlistClass(t *testing.T) {
	needSandboxes(t)
	d, admin := startDaemonWith(t, config.Default(), &daemon.EgressTestHooks{Resolver: loopResolver{}, AllowLoopback: true})
	ctx := context.Background()
	up := newRecorder(t, "through-the-proxy")
	alice := userClient(t, d, admin, "user:alice")
	sb, err := alice.CreateSandbox(ctx, api.CreateSandboxRequest{Tier: api.SandboxTierProcess, Egress: []string{hostPort(t, up.url("api.test"))}})
	if err != nil {
		t.Fatal(err)
	}
	code, out := run(t, alice, sb.ID, "python3 -c '"+socketsPy+"' "+up.url("api.test"))
	want := "through-the-proxy\nvsock 97\nvsock_dgram 97\npacket 97\nalg 97\nbluetooth 97\n"
	if code != 0 || out != want {
		t.Fatalf("exit %d, output %q, want %q", code, out, want)
	}
	if len(up.hits()) != 1 {
		t.Fatalf("upstream hits: %d", len(up.hits()))
	}
	if strings.Contains(out, "OPENED") {
		t.Fatal("a socket family outside the allowlist opened")
	}
}
