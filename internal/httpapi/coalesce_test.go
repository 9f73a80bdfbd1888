package httpapi

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

	"github.com/agentcloud/agentcloud/api"
)

type tokenAuth struct{}

func (tokenAuth) Authenticate(r *http.Request) (Principal, error) {
	who, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || who == "" {
		return Principal{}, api.Errorf(api.KindUnauthenticated, "no token")
	}
	return Principal{ID: who, Kind: "user"}, nil
}

type allowAll struct{}

func (allowAll) Authorize(context.Context, Principal, string, Resource) error { return nil }

// TestRequestCoalescingClass: identical reads in flight at once (same
// principal, method, host, URI and answer-changing headers) run the
// handler once and all get its answer, errors included; requests that
// differ in principal, query, Accept or method, writes, and routes that
// stream raw content run the handler themselves; two principals racing
// never see each other's answer; an answer too large to share, or a
// handler that panics, makes the waiting requests run it themselves.
func TestRequestCoalescingClass(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	rt := NewRouter(Options{Auth: tokenAuth{}, Authz: allowAll{}})
	read := func(w http.ResponseWriter, r *http.Request) error {
		calls.Add(1)
		<-release
		p, _ := PrincipalFrom(r.Context())
		switch r.PathValue("tool") {
		case "missing":
			return api.Errorf(api.KindNotFound, "no %s", r.PathValue("tool"))
		case "big":
			WriteJSON(w, 200, strings.Repeat("x", MaxCoalescedBody+10))
			return nil
		case "panic":
			panic("boom")
		}
		WriteJSON(w, 200, map[string]string{"for": p.ID, "id": r.PathValue("tool"), "q": r.URL.RawQuery, "accept": r.Header.Get("Accept")})
		return nil
	}
	rt.Handle(Route{Method: "GET", Path: "/v1/things/{tool}", Action: "thing.read", Handler: read, Query: []QueryParam{{Name: "q"}}})
	rt.Handle(Route{Method: "POST", Path: "/v1/things/{tool}", Action: "thing.write", Handler: read})
	rt.Handle(Route{Method: "GET", Path: "/v1/raw/{tool}", Action: "thing.read", RawContentType: "text/plain", Handler: read})
	rt.Handle(Route{Method: "GET", Path: "/open/{tool}", Public: true, Handler: read})
	rt.Handle(Route{Method: "GET", Path: "/v1/stream/{tool}", Action: "thing.read", Streams: true, Handler: read})
	srv := httptest.NewServer(rt)
	defer srv.Close()

	type req struct{ method, path, who, accept string }
	// run sends reqs at once, waits until wantWaiting of them wait for
	// another's answer, releases the handlers and returns the bodies.
	run := func(t *testing.T, reqs []req, wantWaiting int) []string {
		t.Helper()
		calls.Store(0)
		release = make(chan struct{})
		out := make([]string, len(reqs))
		var wg sync.WaitGroup
		for i, q := range reqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				hr, _ := http.NewRequest(q.method, srv.URL+q.path, nil)
				if q.who != "" {
					hr.Header.Set("Authorization", "Bearer "+q.who)
				}
				if q.accept != "" {
					hr.Header.Set("Accept", q.accept)
				}
				resp, err := http.DefaultClient.Do(hr)
				if err != nil {
					out[i] = "error " + err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				out[i] = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
			}()
		}
		deadline := time.Now().Add(20 * time.Second)
		for rt.coalesce.Waiting() < wantWaiting || int(calls.Load())+rt.coalesce.Waiting() < len(reqs) {
			if time.Now().After(deadline) {
				t.Fatalf("%d waiting, %d calls; want %d waiting of %d", rt.coalesce.Waiting(), calls.Load(), wantWaiting, len(reqs))
			}
			time.Sleep(time.Millisecond)
		}
		close(release)
		wg.Wait()
		return out
	}
	same := func(n int, q req) []req {
		out := make([]req, n)
		for i := range out {
			out[i] = q
		}
		return out
	}

	t.Run("identical reads share one call", func(t *testing.T) {
		got := run(t, same(6, req{"GET", "/v1/things/a?q=1", "alice", ""}), 5)
		if calls.Load() != 1 {
			t.Fatalf("%d calls, want 1", calls.Load())
		}
		for _, b := range got {
			if b != got[0] || !strings.Contains(b, `"for": "alice"`) {
				t.Fatalf("answers differ: %q", got)
			}
		}
	})
	t.Run("streaming routes never wait for another's answer", func(t *testing.T) {
		got := run(t, same(3, req{"GET", "/v1/stream/a", "alice", ""}), 0)
		if calls.Load() != 3 {
			t.Fatalf("%d calls for 3 followers, want 3: %q", calls.Load(), got)
		}
	})
	t.Run("errors are shared too", func(t *testing.T) {
		got := run(t, same(3, req{"GET", "/v1/things/missing", "alice", ""}), 2)
		if calls.Load() != 1 || !strings.HasPrefix(got[2], "404 ") || got[0] != got[1] {
			t.Fatalf("%d calls: %q", calls.Load(), got)
		}
	})
	t.Run("different principals, queries, accepts and methods do not share", func(t *testing.T) {
		reqs := []req{
			{"GET", "/v1/things/a", "alice", ""}, {"GET", "/v1/things/a", "bob", ""},
			{"GET", "/v1/things/a?q=2", "alice", ""}, {"GET", "/v1/things/a", "alice", "text/plain"},
			{"HEAD", "/v1/things/a", "alice", ""},
		}
		got := run(t, reqs, 0)
		if calls.Load() != int64(len(reqs)) {
			t.Fatalf("%d calls for %d distinct reads", calls.Load(), len(reqs))
		}
		if !strings.Contains(got[1], `"for": "bob"`) || !strings.Contains(got[0], `"for": "alice"`) {
			t.Fatalf("answers crossed principals: %q", got)
		}
	})
	t.Run("two principals racing never see each other's answer", func(t *testing.T) {
		reqs := append(same(4, req{"GET", "/v1/things/r", "alice", ""}), same(4, req{"GET", "/v1/things/r", "bob", ""})...)
		got := run(t, reqs, 6)
		if calls.Load() != 2 {
			t.Fatalf("%d calls, want one per principal", calls.Load())
		}
		for i, b := range got {
			want := `"for": "alice"`
			if i >= 4 {
				want = `"for": "bob"`
			}
			if !strings.Contains(b, want) {
				t.Fatalf("request %d: %q", i, b)
			}
		}
	})
	t.Run("writes and raw routes never coalesce", func(t *testing.T) {
		run(t, same(3, req{"POST", "/v1/things/w", "alice", ""}), 0)
		if calls.Load() != 3 {
			t.Fatalf("POST: %d calls", calls.Load())
		}
		run(t, same(3, req{"GET", "/v1/raw/w", "alice", ""}), 0)
		if calls.Load() != 3 {
			t.Fatalf("raw: %d calls", calls.Load())
		}
	})
	t.Run("public reads share across callers", func(t *testing.T) {
		run(t, []req{{"GET", "/open/p", "", ""}, {"GET", "/open/p", "x", ""}, {"GET", "/open/p", "", ""}}, 2)
		if calls.Load() != 1 {
			t.Fatalf("%d calls", calls.Load())
		}
	})
	t.Run("too large or panicking: the waiting run it themselves", func(t *testing.T) {
		// The waiting requests run the handler once the first is done,
		// each blocking on release again: release stays closed.
		for _, id := range []string{"big", "panic"} {
			got := run(t, same(3, req{"GET", "/v1/things/" + id, "alice", ""}), 2)
			if calls.Load() != 3 {
				t.Fatalf("%s: %d calls, want 3: %q", id, calls.Load(), got)
			}
		}
	})
}
