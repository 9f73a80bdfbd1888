package bundle

import (
	"strings"
	"testing"
)

// stackMap maps out/x.js line 1 to src/a.ts 1:1 and line 2 to src/b.ts 2:1.
const stackMap = `{"version":3,"sources":["../src/a.ts","../src/b.ts"],"mappings":"AAAA;ACCA"}`

var mapStackCases = []struct {
	name, in, want string
}{
	{"every bundle frame",
		"    at inner (out/x.js:2:7)\n    at outer (out/x.js:1:3)\n    at out/x.js:2:1\n",
		"    at inner (src/b.ts:2:1)\n    at outer (src/a.ts:1:1)\n    at src/b.ts:2:1\n"},
	{"the dispatch is dropped, a runtime callee marked",
		"    at Response (agentcloud:prelude:802:154)\n    at fetch (out/x.js:2:1)\n    at fetch (agentcloud:prelude:994:60)\n",
		"    at Response (agentcloud runtime)\n    at fetch (src/b.ts:2:1)\n"},
	{"runtime between agent frames",
		"    at cb (out/x.js:1:1)\n    at structuredClone (agentcloud:prelude:218:70)\n    at map (native)\n    at fetch (out/x.js:2:1)\n    at fetch (agentcloud:prelude:994:60)",
		"    at cb (src/a.ts:1:1)\n    at structuredClone (agentcloud runtime)\n    at map (native)\n    at fetch (src/b.ts:2:1)"},
	{"runtime only is kept, marked",
		"    at respond (agentcloud:prelude:520:9)\n    at agentcloud:prelude:1:1\n",
		"    at respond (agentcloud runtime)\n    at agentcloud runtime\n"},
	{"console line with two stacks",
		"caught: RangeError: no\n    at f (out/x.js:2:2)\n    at fetch (agentcloud:prelude:994:60)\n and stack:     at g (out/x.js:1:1)\n    at fetch (agentcloud:prelude:994:60)\ndone",
		"caught: RangeError: no\n    at f (src/b.ts:2:1)\n and stack:     at g (src/a.ts:1:1)\ndone"},
	{"another file is kept",
		"    at f (/etc/passwd:1:1)\n    at g (out/y.js:2:1)\n    at h (<input>:15:39)\n",
		"    at f (/etc/passwd:1:1)\n    at g (out/y.js:2:1)\n    at h (<input>:15:39)\n"},
	{"absurd places are kept",
		"    at f (out/x.js:99999999999999999999999:1)\n    at g (out/x.js:0:0)\n    at h (out/x.js:3:1)\n    at i (out/x.js:2:99999999999999999999)",
		"    at f (out/x.js:99999999999999999999999:1)\n    at g (out/x.js:0:0)\n    at h (out/x.js:3:1)\n    at i (out/x.js:2:99999999999999999999)"},
	{"prose is kept", "look at this: that is what it was at", "look at this: that is what it was at"},
}

// TestMapStackClass: MapStack on crafted, absurd and huge texts maps what
// is the entry's, keeps what is not, never panics and stays bounded.
func TestMapStackClass(t *testing.T) {
	sm, err := ParseSourceMap([]byte(stackMap))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range mapStackCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := sm.MapStack(tc.in, "out/x.js"); got != tc.want {
				t.Fatalf("MapStack =\n%q, want\n%q", got, tc.want)
			}
		})
	}
	t.Run("no map", func(t *testing.T) {
		var none *SourceMap
		in := "    at f (out/x.js:2:7)\n    at fetch (agentcloud:prelude:994:60)\n"
		if got := none.MapStack(in, "out/x.js"); got != "    at f (out/x.js:2:7)\n" {
			t.Fatalf("MapStack = %q", got)
		}
	})
	t.Run("long source name", func(t *testing.T) {
		long := strings.Repeat("d/", 1000) + "a.ts"
		lm, err := ParseSourceMap([]byte(`{"version":3,"sources":["` + long + `"],"mappings":"AAAA"}`))
		if err != nil {
			t.Fatal(err)
		}
		if got := lm.MapStack("    at f (x.js:1:1)", "x.js"); got != "    at f (x.js:1:1)" {
			t.Fatalf("MapStack = %.100q", got)
		}
	})
	t.Run("huge", func(t *testing.T) {
		frame := "    at f (out/x.js:2:7)\n"
		in := strings.Repeat(frame, 200_000) // 4.6 MB
		got := sm.MapStack(in, "out/x.js")
		if n := strings.Count(got, "src/b.ts:2:1"); n != MaxStackFrames {
			t.Errorf("%d frames mapped, want %d", n, MaxStackFrames)
		}
		if len(got) != len(in)-MaxStackFrames*(len("out/x.js:2:7")-len("src/b.ts:2:1")) {
			t.Errorf("len = %d, want the text with only the mapped frames changed (%d)", len(got), len(in))
		}
		one := strings.Repeat("x", 10<<20) + "\n    at f (out/x.js:2:7)"
		if got := sm.MapStack(one, "out/x.js"); got != one {
			t.Errorf("a frame past MaxStackScan was rewritten")
		}
	})
}

func FuzzMapStack(f *testing.F) {
	for _, tc := range mapStackCases {
		f.Add(tc.in)
	}
	sm, err := ParseSourceMap([]byte(stackMap))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := sm.MapStack(in, "out/x.js")
		if len(in) <= MaxStackScan && len(out) > len(in)+MaxStackFrames*maxSourceName {
			t.Fatalf("%d bytes grew to %d", len(in), len(out))
		}
	})
}
