package sessionhttp_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/session/sessionhttp"
	"github.com/agentcloud/agentcloud/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// gateFetcher answers every fetch() once gate is closed, counting them.
type gateFetcher struct {
	calls atomic.Int64
	gate  chan struct{}
}

func (f *gateFetcher) Fetch(ctx context.Context, _ session.Caller, _ *http.Request) (*http.Response, error) {
	f.calls.Add(1)
	select {
	case <-f.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("upstream"))}, nil
}

// countingJS fetches once per request and answers with how many requests
// the session has served.
const countingJS = `let n = 0; export default { async fetch(request) {
	n++; const mine = n;
	await fetch("https://upstream.example/");
	return new Response("call " + mine + " " + request.method);
} }`

// TestPublicCacheableCoalescingClass: identical GETs to a public session
// whose manifest declares cacheable, in flight at once, reach the agent
// once and all get its answer, whatever credentials each sent (the
// answer does not depend on who asks, by the manifest's word); a POST and
// a different URL are their own calls; an agent that does not declare
// cacheable is never coalesced.
func TestPublicCacheableCoalescingClass(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	m, err := session.New(ctx, session.Config{Store: st, Runtime: testRuntime(t)})
	if err != nil {
		t.Fatal(err)
	}
	f := &gateFetcher{gate: make(chan struct{})}
	if err := m.Start(ctx, session.Bindings{Fetcher: f}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	r := httpapi.NewRouter(httpapi.Options{Auth: headerAuth{}, Metrics: httpapi.NewMetrics(prometheus.NewRegistry())})
	h := sessionhttp.New(sessionhttp.Config{Manager: m})
	h.Routes(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	e := &env{m: m, srv: srv}
	for name, cacheable := range map[string]bool{"cached": true, "plain": false} {
		files := map[string]string{"agent.js": countingJS, "agent.json": fmt.Sprintf(
			`{"name":%q,"entry":"agent.js","egress":["upstream.example"],"limits":{"idle_seconds":3600},"public":{"sessions":["www"],"methods":["GET","POST"],"cacheable":%v}}`,
			name, cacheable)}
		if resp, b := e.deploy(t, "", files); resp.StatusCode != 201 {
			t.Fatalf("deploy %s: %d %s", name, resp.StatusCode, b)
		}
	}
	get := func(method, path, token string) string {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	// Five identical GETs, from different callers, while the first waits
	// on its fetch: one call into the session, one shared answer.
	var wg sync.WaitGroup
	got := make([]string, 5)
	for i := range got {
		wg.Add(1)
		go func() { defer wg.Done(); got[i] = get("GET", "/public/cached/www/page?x=1", fmt.Sprint("caller-", i)) }()
	}
	deadline := time.Now().Add(30 * time.Second)
	for f.calls.Load() < 1 || h.PublicWaiting() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("%d fetches, %d waiting", f.calls.Load(), h.PublicWaiting())
		}
		time.Sleep(time.Millisecond)
	}
	close(f.gate)
	wg.Wait()
	for _, g := range got {
		if g != "200 call 1 GET" {
			t.Fatalf("coalesced answers: %q", got)
		}
	}
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("%d fetches for five coalesced GETs", n)
	}
	// Afterwards nothing is cached: each request is a call of its own.
	for i, tc := range []struct{ method, path, want string }{
		{"GET", "/public/cached/www/page?x=1", "200 call 2 GET"},
		{"POST", "/public/cached/www/page?x=1", "200 call 3 POST"},
		{"GET", "/public/cached/www/other", "200 call 4 GET"},
		{"GET", "/public/plain/www/page", "200 call 1 GET"},
		{"GET", "/public/plain/www/page", "200 call 2 GET"},
	} {
		if g := get(tc.method, tc.path, ""); g != tc.want {
			t.Errorf("%d %s %s: %q, want %q", i, tc.method, tc.path, g, tc.want)
		}
	}
}
