package egress

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

type grantKey struct{}

// withGrant marks ctx as a call an operator allowed to reach private
// addresses (the daemon marks model provider and tool upstream calls).
func withGrant(ctx context.Context) context.Context { return context.WithValue(ctx, grantKey{}, true) }

// TestPrivateGrantClass: private, loopback and localhost destinations are
// refused unless the request carries an operator's grant; a grant opens
// only the private ranges (never metadata, link-local or multicast); the
// protected listeners are refused with a grant, by any name or loopback
// address, even with the test loopback switch; and a connection opened
// under a grant is never reused by a request without one.
func TestPrivateGrantClass(t *testing.T) {
	up := httptest.NewServer(echoServer())
	defer up.Close()
	upPort := up.Listener.Addr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port()
	port := ":" + strings.Split(up.Listener.Addr().String(), ":")[1]
	res := fakeResolver{
		"inf.test":      addrs("127.0.0.1"),
		"localhost":     addrs("127.0.0.1", "::1"),
		"lan.test":      addrs("10.0.0.7"),
		"meta.test":     addrs("169.254.169.254"),
		"ula-meta.test": addrs("fd00:ec2::254"),
	}
	rec := &recorder{}
	p, err := New(Config{Decider: allowAll(), Resolver: res, Auditor: rec, DialTimeout: time.Second,
		AllowPrivate: func(ctx context.Context, r Request) bool { return ctx.Value(grantKey{}) != nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	do := func(ctx context.Context, target string) (string, error) {
		req, _ := http.NewRequest("GET", target, nil)
		resp, err := p.Do(ctx, Caller{ID: "node"}, req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), nil
	}
	refused := func(err error) bool { return errors.Is(err, ErrDenied) && errors.Is(err, ErrForbiddenAddress) }
	ctx := context.Background()
	loop := []string{"http://127.0.0.1" + port + "/a", "http://inf.test" + port + "/a", "http://localhost" + port + "/a", "http://127.0.0.2" + port + "/a"}
	for _, target := range loop {
		if _, err := do(ctx, target); !refused(err) {
			t.Errorf("%s without a grant: %v", target, err)
		}
	}
	for _, target := range loop[:3] {
		if body, err := do(withGrant(ctx), target); err != nil || body != "GET /a " {
			t.Errorf("%s with a grant: %q %v", target, body, err)
		}
	}
	// The connection the grant opened to inf.test is not reused without one.
	if _, err := do(ctx, "http://inf.test"+port+"/a"); !refused(err) {
		t.Errorf("pooled connection reused without a grant: %v", err)
	}
	// A grant opens the private ranges only.
	for _, target := range []string{"http://169.254.169.254/", "http://meta.test/", "http://ula-meta.test/", "http://[fd00:ec2::254]/",
		"http://224.0.0.1/", "http://0.0.0.0" + port + "/", "http://[fe80::1]/", "http://192.0.2.1/"} {
		if _, err := do(withGrant(ctx), target); !refused(err) {
			t.Errorf("%s with a grant: %v, want refused", target, err)
		}
	}
	// lan.test resolves to 10.0.0.7: allowed by the address rules with a
	// grant (nothing listens there, so the dial fails, but not as refused).
	if _, err := do(withGrant(ctx), "http://lan.test:9/"); refused(err) {
		t.Errorf("private LAN address with a grant refused: %v", err)
	}

	// The daemon's own listeners: refused with a grant, on every loopback
	// address and name, and with the test-only loopback switch too.
	p.Protect(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), upPort))
	for _, target := range loop {
		if _, err := do(withGrant(ctx), target); !refused(err) || !strings.Contains(err.Error(), "own listener") {
			t.Errorf("%s (protected) with a grant: %v", target, err)
		}
	}
	lp, _ := New(Config{Decider: allowAll(), Resolver: res, UnsafeAllowLoopback: true})
	defer lp.Close()
	lp.Protect(netip.AddrPortFrom(netip.IPv4Unspecified(), upPort))
	req, _ := http.NewRequest("GET", "http://inf.test"+port+"/", nil)
	if _, err := lp.Do(ctx, Caller{ID: "t"}, req); !refused(err) {
		t.Errorf("protected port through UnsafeAllowLoopback: %v", err)
	}
	// An unspecified listener protects that port on this machine's own
	// addresses, not on other hosts.
	for _, a := range localAddrs() {
		if err := lp.checkProtected(a, int(upPort)); err == nil {
			t.Errorf("local address %s on the protected port passed", a)
		}
	}
	if err := lp.checkProtected(netip.MustParseAddr("192.0.2.77"), int(upPort)); err != nil {
		t.Errorf("another host on the same port refused: %v", err)
	}
	if err := lp.checkProtected(netip.MustParseAddr("127.0.0.1"), int(upPort)+1); err != nil {
		t.Errorf("another port refused: %v", err)
	}
	if ev := rec.last(t); ev.Outcome != "denied" {
		t.Errorf("last audit %+v", ev)
	}
}
