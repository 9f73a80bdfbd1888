package httpapi

import (
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
)

var segmentCases = []struct {
	path string
	ok   bool
}{
	{"/", true},
	{"/a/bot/s/alice/x", true},
	{"/a/bot/s/alice/", true},
	{"/a/bot/s/a.b/x", true},
	{"/a/bot/s/.../x", true},
	{"/a/bot/s/./x", false},
	{"/a/bot/s/../x", false},
	{"/a/bot/s/..", false},
	{"/a/bot/s/.", false},
	{"/a/bot/s//x", false},
	{"//a", false},
	{"/a/bot/s/alice/../../../v1/secrets", false},
}

// TestDotSegmentClass checks that a path with a "." or ".." segment or an
// empty one inside it is a 400 invalid-identifier problem on every route
// and method, and never the mux's redirect to the cleaned path (which keeps
// the method and body and lands on another route).
func TestDotSegmentClass(t *testing.T) {
	rt := NewRouter(Options{})
	ran := 0
	rt.Handle(Route{Method: "POST", Path: "/a/{agent}/s/{session}/{path...}", Summary: "x", Public: true,
		Handler: func(w http.ResponseWriter, r *http.Request) error { ran++; return nil }})
	rt.Handle(Route{Method: "DELETE", Path: "/a/{agent}", Summary: "x", Public: true,
		Handler: func(w http.ResponseWriter, r *http.Request) error { ran++; return nil }})
	for _, c := range segmentCases {
		for _, method := range []string{"POST", "DELETE", "GET"} {
			rec := httptest.NewRecorder()
			rt.ServeHTTP(rec, httptest.NewRequest(method, c.path, strings.NewReader("body")))
			if c.ok {
				if rec.Code == 400 {
					t.Errorf("%s %s: 400 %s", method, c.path, rec.Body)
				}
				continue
			}
			if rec.Code != 400 || !strings.Contains(rec.Body.String(), string(api.KindInvalidID)) || rec.Header().Get("Location") != "" {
				t.Errorf("%s %s: %d %s (Location %q), want 400 invalid-identifier", method, c.path, rec.Code, rec.Body, rec.Header().Get("Location"))
			}
		}
	}
	if ran == 0 {
		t.Error("no valid path reached a handler")
	}
}

// FuzzCheckSegments: a path checkSegments accepts is already clean (up to a
// trailing slash), so the mux has nothing to redirect.
func FuzzCheckSegments(f *testing.F) {
	for _, c := range segmentCases {
		f.Add(c.path)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !strings.HasPrefix(p, "/") || checkSegments(p) != nil {
			return
		}
		want := path.Clean(p)
		if strings.HasSuffix(p, "/") && want != "/" {
			want += "/"
		}
		if want != p {
			t.Fatalf("checkSegments accepted %q, which cleans to %q", p, want)
		}
	})
}
