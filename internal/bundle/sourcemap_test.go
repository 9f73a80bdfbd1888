package bundle

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

var sourceMapCases = []struct {
	name, data string
	ok         bool
}{
	{"one segment", `{"version":3,"sources":["a.ts"],"mappings":"AAAA"}`, true},
	{"lines and columns", `{"version":3,"sources":["a.ts","b.ts"],"mappings":"AAAA,EAAE;ACCA;;AACC"}`, true},
	{"generated-only segment", `{"version":3,"sources":["a.ts"],"mappings":"A,CAAA"}`, true},
	{"source root", `{"version":3,"sourceRoot":"src/","sources":["a.ts"],"mappings":"AAAA"}`, true},
	{"not json", `{"version":3,`, false},
	{"version 2", `{"version":2,"sources":[],"mappings":""}`, false},
	{"bad base64", `{"version":3,"sources":["a.ts"],"mappings":"A!AA"}`, false},
	{"truncated vlq", `{"version":3,"sources":["a.ts"],"mappings":"AAAg"}`, false},
	{"two fields", `{"version":3,"sources":["a.ts"],"mappings":"AA"}`, false},
	{"source out of range", `{"version":3,"sources":["a.ts"],"mappings":"ACAA"}`, false},
	{"negative line", `{"version":3,"sources":["a.ts"],"mappings":"AADA"}`, false},
	{"huge value", `{"version":3,"sources":["a.ts"],"mappings":"A/////////B"}`, false},
}

func TestParseSourceMapClass(t *testing.T) {
	for _, tc := range sourceMapCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSourceMap([]byte(tc.data))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadSourceMap) {
				t.Fatalf("err = %v, want ErrBadSourceMap", err)
			}
		})
	}
}

func TestSourceMapLookupAndStack(t *testing.T) {
	// line 1: col 0 → a.ts 1:1, col 2 → a.ts 1:3; line 2: col 0 → b.ts 2:1.
	sm, err := ParseSourceMap([]byte(`{"version":3,"sources":["../src/a.ts","../src/b.ts"],"mappings":"AAAA,EAAE;ACCF"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line, col int
		src       string
		sl, sc    int
		ok        bool
	}{
		{1, 1, "../src/a.ts", 1, 1, true},
		{1, 2, "../src/a.ts", 1, 1, true},
		{1, 9, "../src/a.ts", 1, 3, true},
		{2, 5, "../src/b.ts", 2, 1, true},
		{3, 1, "", 0, 0, false},
		{0, 1, "", 0, 0, false},
	} {
		src, sl, sc, ok := sm.Lookup(tc.line, tc.col)
		if src != tc.src || sl != tc.sl || sc != tc.sc || ok != tc.ok {
			t.Errorf("Lookup(%d, %d) = %q %d %d %v", tc.line, tc.col, src, sl, sc, ok)
		}
	}
	stack := "    at inner (out/x.js:2:7)\n    at fetch (agentcloud:prelude:842:60)\n    at other.js:1:1\n"
	got := sm.MapStack(stack, "out/x.js")
	if got != "    at inner (src/b.ts:2:1)\n    at fetch (agentcloud runtime)\n    at other.js:1:1\n" {
		t.Fatalf("MapStack = %q", got)
	}
	if f := FirstFrame("    at fetch (agentcloud:prelude:842:60)\n    at h (x.js:3:4)"); f != "x.js:3:4" {
		t.Fatalf("FirstFrame = %q", f)
	}
	if f := FirstFrame("    at fetch (agentcloud:prelude:842:60)\n"); f != "" {
		t.Fatalf("FirstFrame of runtime-only stack = %q", f)
	}
}

func FuzzParseSourceMap(f *testing.F) {
	for _, tc := range sourceMapCases {
		f.Add([]byte(tc.data), 1, 1)
	}
	f.Fuzz(func(t *testing.T, data []byte, line, col int) {
		sm, err := ParseSourceMap(data)
		if err != nil {
			return
		}
		sm.Lookup(line, col)
		sm.MapStack("    at f (x.js:1:1)\n    at y (x.js:99:3)", "x.js")
	})
}

// TestSourceMapEmptyFloodClass: a map of nothing but line or segment
// separators (one fits many millions in a bundle) is refused after
// maxLines lines or maxSegments steps, without building a line for each
// first.
func TestSourceMapEmptyFloodClass(t *testing.T) {
	for _, sep := range []string{";", ","} {
		mappings := strings.Repeat(sep, 30<<20)
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		_, err := ParseSourceMap([]byte(`{"version":3,"sources":["a.ts"],"mappings":"` + mappings + `"}`))
		runtime.ReadMemStats(&ms1)
		if !errors.Is(err, ErrBadSourceMap) {
			t.Errorf("%d × %q: err = %v, want ErrBadSourceMap", len(mappings), sep, err)
		}
		// The input's own copies (JSON decoding) are ~60 MiB; a line per
		// separator was 720 MB.
		if grew := ms1.TotalAlloc - ms0.TotalAlloc; grew > 400<<20 {
			t.Errorf("%q flood: allocated %d MiB", sep, grew>>20)
		}
	}
	// Just under the bound still decodes.
	if _, err := ParseSourceMap([]byte(`{"version":3,"sources":["a.ts"],"mappings":"` + strings.Repeat(";", maxLines-1) + `AAAA"}`)); err != nil {
		t.Errorf("a map at the bound: %v", err)
	}
}
