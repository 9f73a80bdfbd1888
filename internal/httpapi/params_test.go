package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestEscapedRestClass: the trailing wildcard comes back as the client
// sent it (escapes kept), "" when the route has none or it is empty, for
// routes with one and without.
func TestEscapedRestClass(t *testing.T) {
	mux := http.NewServeMux()
	var got string
	h := func(w http.ResponseWriter, r *http.Request) { got = EscapedRest(r, "path") }
	mux.HandleFunc("/a/{agent}/{session}", h)
	mux.HandleFunc("/a/{agent}/{session}/{path...}", h)
	for _, c := range []struct{ url, want string }{
		{"/a/x/s", ""},
		{"/a/x/s/", ""},
		{"/a/x/s/p/q", "p/q"},
		{"/a/x/s/p%3Fq%23r%2Fs/%25", "p%3Fq%23r%2Fs/%25"},
		{"/a/x/s/sp%20ace/%C3%A9", "sp%20ace/%C3%A9"},
	} {
		got = "unset"
		mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", c.url, nil))
		if got != c.want {
			t.Errorf("%s: %q, want %q", c.url, got, c.want)
		}
	}
}
