package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/agentcloud/agentcloud/api"
)

// TestSessionIDRefusedLocallyClass checks that every client method naming a
// session refuses "." and ".." (and other ids api.IDRules refuses) before
// sending anything: the server would clean such a path and redirect the
// request to another route. Dot-segment paths are refused the same way.
func TestSessionIDRefusedLocallyClass(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	c, err := New(srv.URL, "tok")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range []string{".", "..", "", "a/b", "a b", strings.Repeat("s", 129)} {
		calls := map[string]func() error{
			"Call": func() error {
				resp, err := c.Call(ctx, "bot", id, "POST", "/x", strings.NewReader("x"), nil)
				if resp != nil {
					resp.Body.Close()
				}
				return err
			},
			"Session":       func() error { _, err := c.Session(ctx, "bot", id); return err },
			"DeleteSession": func() error { return c.DeleteSession(ctx, "bot", id) },
			"Hibernate":     func() error { _, err := c.Hibernate(ctx, "bot", id); return err },
			"Labels":        func() error { _, err := c.Labels(ctx, "bot", id); return err },
			"ResetLabels":   func() error { return c.ResetLabels(ctx, "bot", id) },
		}
		for name, f := range calls {
			var p *api.Problem
			if err := f(); !errors.As(err, &p) || p.Kind() != api.KindInvalidID || p.Field != "session" {
				t.Errorf("%s(session %q): %v, want an invalid-identifier problem on field session", name, id, err)
			}
		}
	}
	for _, path := range []string{"/../../v1/agents", "/a/./b", "/.."} {
		resp, err := c.Call(ctx, "bot", "s", "GET", path, nil, nil)
		if resp != nil {
			resp.Body.Close()
		}
		if !api.IsKind(err, api.KindBadRequest) {
			t.Errorf("Call(path %q): %v, want bad-request", path, err)
		}
	}
	if _, err := c.Raw(ctx, "DELETE", "/v1/secrets/..", nil, ""); !api.IsKind(err, api.KindBadRequest) {
		t.Errorf("Raw with a dot segment: %v, want bad-request", err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d requests reached the server", n)
	}
	// A good id is sent.
	resp, err := c.Call(ctx, "bot", "a.b_c-1", "GET", "/x?q=..", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hits.Load() != 1 {
		t.Fatal("a valid call was not sent")
	}
}

// FuzzCheckDotSegments: whatever checkDotSegments accepts has no "." or
// ".." segment.
func FuzzCheckDotSegments(f *testing.F) {
	for _, s := range []string{"/a/b", "/../x", "/a/./b", "/..", "/...", "/a/", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if checkDotSegments("path", p) != nil {
			return
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("accepted %q", p)
			}
		}
	})
}
