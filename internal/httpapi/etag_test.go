package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

var noneMatchCases = []struct {
	header string
	match  bool
}{
	{`"abc"`, true},
	{`W/"abc"`, true},
	{`"x", "abc"`, true},
	{`"x",W/"abc" , "y"`, true},
	{`*`, true},
	{`"abd"`, false},
	{`abc`, false},
	{`"abc`, false},
	{`""abc""`, false},
	{``, false},
	{`,,,`, false},
	{`W/`, false},
	{`"a"bc"`, false},
}

// TestConditionalGetClass: a conditional read answers 304 with no body for
// its current tag in any of If-None-Match's forms, 200 with the body and
// the tag otherwise, and a malformed If-None-Match is a plain 200.
func TestConditionalGetClass(t *testing.T) {
	v := map[string]any{"a": 1, "b": []string{"x"}}
	first := httptest.NewRecorder()
	WriteJSONConditional(first, httptest.NewRequest("GET", "/x", nil), v)
	tag := first.Header().Get("ETag")
	if first.Code != 200 || !strings.HasPrefix(tag, `"`) || first.Body.Len() == 0 || first.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("first read: %d %q %q", first.Code, tag, first.Body)
	}
	for _, tc := range noneMatchCases {
		h := strings.ReplaceAll(tc.header, `abc`, strings.Trim(tag, `"`))
		r := httptest.NewRequest("GET", "/x", nil)
		r.Header.Set("If-None-Match", h)
		w := httptest.NewRecorder()
		WriteJSONConditional(w, r, v)
		want := http.StatusOK
		if tc.match {
			want = http.StatusNotModified
		}
		if w.Code != want || (want == 304) != (w.Body.Len() == 0) || w.Header().Get("ETag") != tag {
			t.Errorf("If-None-Match %q: %d body %d bytes, tag %q", h, w.Code, w.Body.Len(), w.Header().Get("ETag"))
		}
	}
	// Another body, another tag.
	w := httptest.NewRecorder()
	WriteJSONConditional(w, httptest.NewRequest("GET", "/x", nil), map[string]any{"a": 2})
	if w.Header().Get("ETag") == tag {
		t.Error("different bodies share a tag")
	}
}

func FuzzNoneMatch(f *testing.F) {
	for _, tc := range noneMatchCases {
		f.Add(tc.header, `"abc"`)
	}
	f.Fuzz(func(t *testing.T, header, etag string) {
		got := NoneMatch([]string{header}, etag)
		if header == "*" && !got {
			t.Fatal("* must match")
		}
		if got && header != "*" && !strings.Contains(header, strings.TrimPrefix(etag, "W/")) && !strings.Contains(header, "*") {
			t.Fatalf("%q matched %q without containing it", header, etag)
		}
	})
}
