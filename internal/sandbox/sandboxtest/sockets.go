package sandboxtest

import (
	"strconv"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// socketCase is one socket(2) or socketpair(2) call tried inside a sandbox.
type socketCase struct {
	name               string
	family, typ, proto int
	pair               bool
	allowed            bool
	errno              int // the errno a strict tier answers when not allowed
}

// Linux errno values the process tier's filter answers with.
const (
	errnoEPERM           = 1
	errnoEPROTONOSUPPORT = 93
	errnoEAFNOSUPPORT    = 97
)

// socketCases are the socket families and types a sandbox may and may not
// open. The refused ones can leave the network namespace (AF_VSOCK talks
// to the host or hypervisor) or add kernel attack surface no sandboxed
// program needs.
var socketCases = []socketCase{
	{name: "unix_stream", family: 1, typ: 1, allowed: true},
	{name: "unix_dgram", family: 1, typ: 2, allowed: true},
	{name: "unix_socketpair", family: 1, typ: 1, pair: true, allowed: true},
	{name: "tcp4", family: 2, typ: 1, allowed: true},
	{name: "udp4", family: 2, typ: 2, allowed: true},
	{name: "tcp6", family: 10, typ: 1, allowed: true},
	{name: "udp6", family: 10, typ: 2, allowed: true},
	{name: "netlink_route", family: 16, typ: 3, proto: 0, allowed: true},

	{name: "vsock_stream", family: 40, typ: 1, errno: errnoEAFNOSUPPORT},
	{name: "vsock_dgram", family: 40, typ: 2, errno: errnoEAFNOSUPPORT},
	{name: "vsock_socketpair", family: 40, typ: 1, pair: true, errno: errnoEAFNOSUPPORT},
	{name: "packet_raw", family: 17, typ: 3, errno: errnoEAFNOSUPPORT},
	{name: "packet_dgram", family: 17, typ: 2, errno: errnoEAFNOSUPPORT},
	{name: "bluetooth_hci", family: 31, typ: 3, proto: 1, errno: errnoEAFNOSUPPORT},
	{name: "can_raw", family: 29, typ: 3, proto: 1, errno: errnoEAFNOSUPPORT},
	{name: "xdp", family: 44, typ: 3, errno: errnoEAFNOSUPPORT},
	{name: "alg", family: 38, typ: 5, errno: errnoEAFNOSUPPORT},
	{name: "pf_key", family: 15, typ: 3, proto: 2, errno: errnoEAFNOSUPPORT},
	{name: "tipc", family: 30, typ: 4, errno: errnoEAFNOSUPPORT},
	{name: "rds", family: 21, typ: 5, errno: errnoEAFNOSUPPORT},
	{name: "appletalk", family: 5, typ: 2, errno: errnoEAFNOSUPPORT},
	{name: "family_200", family: 200, typ: 1, errno: errnoEAFNOSUPPORT},
	{name: "raw4_icmp", family: 2, typ: 3, proto: 1, errno: errnoEPERM},
	{name: "raw6_icmp", family: 10, typ: 3, proto: 58, errno: errnoEPERM},
	{name: "inet_sock_packet", family: 2, typ: 10, errno: errnoEPERM},
	{name: "netlink_audit", family: 16, typ: 3, proto: 9, errno: errnoEPROTONOSUPPORT},
	{name: "netlink_uevent", family: 16, typ: 3, proto: 15, errno: errnoEPROTONOSUPPORT},
	{name: "netlink_sock_diag", family: 16, typ: 3, proto: 4, errno: errnoEPROTONOSUPPORT},
	{name: "netlink_netfilter", family: 16, typ: 3, proto: 12, errno: errnoEPROTONOSUPPORT},
}

// socketScript tries every case and prints "name ok" or "name errno".
func socketScript() string {
	var b strings.Builder
	b.WriteString("python3 - <<'EOF'\nimport socket\ncases = [\n")
	for _, c := range socketCases {
		pair := "False"
		if c.pair {
			pair = "True"
		}
		b.WriteString("  (" + strconv.Quote(c.name) + ", " + strconv.Itoa(c.family) + ", " + strconv.Itoa(c.typ) + ", " + strconv.Itoa(c.proto) + ", " + pair + "),\n")
	}
	b.WriteString(`]
for name, fam, typ, proto, pair in cases:
    try:
        if pair:
            a, b = socket.socketpair(fam, typ, proto)
            a.close(); b.close()
        else:
            socket.socket(fam, typ, proto).close()
        print(name, "ok")
    except OSError as e:
        print(name, e.errno)
EOF`)
	return b.String()
}

// SocketFamilies checks that only the allowlisted socket families open
// inside a sandbox of tier: AF_UNIX, AF_INET and AF_INET6 (not raw) and
// NETLINK_ROUTE. With opt.StrictErrno every refusal must carry the errno
// of the process tier's filter (EAFNOSUPPORT for a family, EPERM for raw
// IP, EPROTONOSUPPORT for another netlink protocol); otherwise any failure
// passes (gVisor's sentry implements few families at all), and
// opt.SentryEmulated may name cases the tier's own kernel emulates. TCP over
// loopback inside the sandbox keeps working.
func SocketFamilies(t *testing.T, tier sandbox.Tier, opt Options) {
	sb := newSandbox(t, tier, sandbox.Spec{})
	out := mustRun(t, sb, socketScript())
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if name, res, ok := strings.Cut(line, " "); ok {
			got[name] = res
		}
	}
	for _, c := range socketCases {
		res, ok := got[c.name]
		switch {
		case !ok:
			t.Errorf("%s: no result in %q", c.name, out)
		case c.allowed && res != "ok":
			t.Errorf("%s: refused with errno %s, want it to open", c.name, res)
		case !c.allowed && res == "ok" && opt.SentryEmulated[c.name]:
			t.Logf("%s opened inside the tier's own kernel (emulated, reaches nothing on the host)", c.name)
		case !c.allowed && res == "ok":
			t.Errorf("%s (family %d type %d protocol %d) opened inside the %s sandbox, want it refused", c.name, c.family, c.typ, c.proto, tier.Name())
		case !c.allowed && opt.StrictErrno && res != strconv.Itoa(c.errno):
			t.Errorf("%s: errno %s, want %d", c.name, res, c.errno)
		}
	}
	t.Logf("%s", out)
	if out := mustRun(t, sb, `python3 -c "
import socket
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)
c = socket.create_connection(s.getsockname()); a, _ = s.accept(); c.sendall(b'ping'); print(a.recv(4).decode())
"`); out != "ping\n" {
		t.Fatalf("TCP over loopback inside the sandbox: %q", out)
	}
}
