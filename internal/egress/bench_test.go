package egress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// latencies records per-call durations so benchmarks can report p50/p99.
type latencies struct{ d []time.Duration }

func (l *latencies) add(d time.Duration) { l.d = append(l.d, d) }

func (l *latencies) pct(p float64) time.Duration {
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

func (l *latencies) report(b *testing.B) {
	b.ReportMetric(float64(l.pct(0.50).Microseconds()), "p50-µs")
	b.ReportMetric(float64(l.pct(0.99).Microseconds()), "p99-µs")
}

// BenchmarkEgressOverhead compares an allowed GET to a loopback upstream
// made directly, through the forward proxy, and through Proxy.Do. The
// overhead is the p50 difference between "proxy" (or "do") and "direct".
func BenchmarkEgressOverhead(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	p, err := New(Config{Decider: allowAll(), UnsafeAllowLoopback: true})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	ps := httptest.NewServer(p)
	defer ps.Close()

	run := func(b *testing.B, get func() (*http.Response, error)) {
		var lat latencies
		for b.Loop() {
			t0 := time.Now()
			resp, err := get()
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat.add(time.Since(t0))
		}
		lat.report(b)
	}
	b.Run("direct", func(b *testing.B) {
		c := &http.Client{Transport: &http.Transport{}}
		run(b, func() (*http.Response, error) { return c.Get(up.URL) })
	})
	b.Run("proxy", func(b *testing.B) {
		c := proxyClient(mustURL(ps.URL), nil)
		run(b, func() (*http.Response, error) { return c.Get(up.URL) })
	})
	// HTTPS: direct TLS vs CONNECT with interception (a second TLS hop).
	tup := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer tup.Close()
	upRoots := x509.NewCertPool()
	upRoots.AddCert(tup.Certificate())
	caCert, caKey := newTestCA(b)
	ip, err := New(Config{Decider: allowAll(), UnsafeAllowLoopback: true, InterceptCA: caCert, InterceptKey: caKey, UpstreamRoots: upRoots})
	if err != nil {
		b.Fatal(err)
	}
	defer ip.Close()
	ips := httptest.NewServer(ip)
	defer ips.Close()
	caRoots := x509.NewCertPool()
	caRoots.AddCert(caCert)
	b.Run("direct-tls", func(b *testing.B) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: upRoots}}}
		run(b, func() (*http.Response, error) { return c.Get(tup.URL) })
	})
	b.Run("intercept-tls", func(b *testing.B) {
		c := proxyClient(mustURL(ips.URL), caRoots)
		run(b, func() (*http.Response, error) { return c.Get(tup.URL) })
	})
	b.Run("do", func(b *testing.B) {
		ctx := context.Background()
		run(b, func() (*http.Response, error) {
			req, _ := http.NewRequest("GET", up.URL, nil)
			return p.Do(ctx, Caller{ID: "bench"}, req)
		})
	})
}
