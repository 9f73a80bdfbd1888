package gateway

import (
	"bytes"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzPeekMCP: whatever the body, the handler reads it back byte for
// byte, and what is peeked is printable and bounded.
func FuzzPeekMCP(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_code"}}`,
		`{"method":"tools/list"}`, `[{"method":"x"}]`, `{"method":`, "", " \n{", `{"method":"a\u0000b"}`,
		`{"method":"tools/call","params":{"name":` + strings.Repeat(`"x`, 100) + `"}}`,
	} {
		f.Add([]byte(s), uint16(64))
		f.Add([]byte(s), uint16(4096))
	}
	f.Fuzz(func(t *testing.T, body []byte, limit uint16) {
		r := httptest.NewRequest("POST", "/mcp", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if limit%2 == 0 {
			r.ContentLength = -1
		}
		method, tool := peekMCP(r, int(limit))
		got, err := io.ReadAll(r.Body)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("body changed: %q -> %q (%v)", body, got, err)
		}
		if method != "" && !printable(method, 128) || tool != "" && (method != "tools/call" || !printable(tool, 192)) {
			t.Fatalf("peeked %q %q", method, tool)
		}
		if len(body) > int(limit) && method != "" {
			t.Fatalf("classified a body of %d bytes with a limit of %d", len(body), limit)
		}
	})
}

// FuzzGlob: patterns compile whatever their bytes, and matching agrees
// with the definition on the pattern's own literal text.
func FuzzGlob(f *testing.F) {
	for _, p := range []string{"spiffe://agentcloud.local/agent/*/session/*", "/v1/**", "*", "**", "a*b*c", "x", "(", `\Q`, "[a-", "*\x80"} {
		f.Add(p, "spiffe://agentcloud.local/agent/a/session/b")
	}
	f.Fuzz(func(t *testing.T, pattern, s string) {
		g, err := compileGlob(pattern)
		if !utf8.ValidString(pattern) {
			if err == nil {
				t.Fatalf("pattern %q is not UTF-8 but compiled", pattern)
			}
			return
		}
		if err != nil {
			t.Fatalf("pattern %q did not compile: %v", pattern, err)
		}
		g.match(s)
		literal := strings.ReplaceAll(pattern, "*", "")
		if !strings.Contains(pattern, "/") && strings.Contains(pattern, "*") && !strings.Contains(literal, "/") {
			// A star pattern matches its own text with the stars removed.
			if !g.match(literal) {
				t.Fatalf("%q does not match %q", pattern, literal)
			}
		}
		if !strings.Contains(pattern, "*") && !g.match(pattern) {
			t.Fatalf("literal %q does not match itself", pattern)
		}
	})
}

func TestGlob(t *testing.T) {
	cases := []struct {
		p, s string
		ok   bool
	}{
		{"spiffe://td/agent/*/session/*", "spiffe://td/agent/a/session/b", true},
		{"spiffe://td/agent/*/session/*", "spiffe://td/agent/a/b/session/c", false},
		{"spiffe://td/agent/batch-*/**", "spiffe://td/agent/batch-7/session/x", true},
		{"spiffe://td/agent/batch-*/**", "spiffe://td/agent/etl/session/x", false},
		{"/v1/**", "/v1/a/b", true},
		{"/v1/*", "/v1/a/b", false},
		{"/v1/agents", "/v1/agents", true},
		{"/v1/agents", "/v1/agentsx", false},
		{"a.b", "axb", false},
	}
	for _, tc := range cases {
		g, err := compileGlob(tc.p)
		if err != nil || g.match(tc.s) != tc.ok {
			t.Errorf("%q ~ %q = %v, want %v (%v)", tc.p, tc.s, !tc.ok, tc.ok, err)
		}
	}
}
