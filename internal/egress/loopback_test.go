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

// TestLoopbackHostsClass: Config.LoopbackHosts opens loopback for the
// names it lists and nothing else. A listed name (in any case, with or
// without a trailing dot) reaches its loopback address without the
// Resolver, over Do and over CONNECT's dial; an unlisted name resolving to
// loopback, a loopback literal and localhost stay refused; a protected
// listener stays refused through a listed name; New refuses entries that
// are not lower-case names at loopback addresses.
func TestLoopbackHostsClass(t *testing.T) {
	up := httptest.NewServer(echoServer())
	defer up.Close()
	upAP := up.Listener.Addr().(interface{ AddrPort() netip.AddrPort }).AddrPort()
	port := ":" + strings.Split(up.Listener.Addr().String(), ":")[1]
	res := fakeResolver{"other.test": addrs("127.0.0.1"), "bench.test": addrs("192.0.2.1")}
	p, err := New(Config{Decider: allowAll(), Resolver: res, DialTimeout: time.Second,
		LoopbackHosts: map[string]netip.Addr{"bench.test": netip.MustParseAddr("127.0.0.1")}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	do := func(target string) (string, error) {
		req, err := http.NewRequest("GET", target, nil)
		if err != nil {
			return "", err
		}
		resp, err := p.Do(context.Background(), Caller{ID: "s"}, req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), nil
	}
	refused := func(err error) bool { return errors.Is(err, ErrForbiddenAddress) }
	for _, target := range []string{"http://bench.test" + port + "/a", "http://BENCH.test" + port + "/a", "http://bench.test." + port + "/a"} {
		if body, err := do(target); err != nil || body != "GET /a " {
			t.Errorf("%s (listed): %q %v", target, body, err)
		}
	}
	for _, target := range []string{"http://other.test" + port + "/", "http://127.0.0.1" + port + "/",
		"http://localhost" + port + "/", "http://[::1]" + port + "/", "http://sub.bench.test" + port + "/"} {
		if _, err := do(target); err == nil || (!refused(err) && !strings.Contains(err.Error(), "resolve")) {
			t.Errorf("%s (not listed): %v, want refused", target, err)
		}
	}
	// CONNECT dials through the same resolution.
	c, err := p.dial(context.Background(), "tcp", "bench.test"+port)
	if err != nil {
		t.Fatalf("dial a listed name: %v", err)
	}
	c.Close()
	if _, err := p.dial(context.Background(), "tcp", "other.test"+port); !refused(err) {
		t.Errorf("dial an unlisted name at loopback: %v", err)
	}
	// The daemon's own listener stays closed through a listed name.
	p.Protect(upAP)
	if _, err := do("http://bench.test" + port + "/"); !refused(err) || !strings.Contains(err.Error(), "own listener") {
		t.Errorf("protected listener through a listed name: %v", err)
	}
	for _, bad := range []map[string]netip.Addr{
		{"bench.test": netip.MustParseAddr("10.0.0.1")},
		{"bench.test": netip.MustParseAddr("192.0.2.1")},
		{"Bench.test": netip.MustParseAddr("127.0.0.1")},
		{"bench.test.": netip.MustParseAddr("127.0.0.1")},
		{"bench.test": {}},
	} {
		if _, err := New(Config{LoopbackHosts: bad}); err == nil {
			t.Errorf("New accepted loopback hosts %v", bad)
		}
	}
}
