package sandboxhttp

import (
	"net/url"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/agentcloud/agentcloud/api"
)

// FuzzTerminalRequest: no query crashes the terminal request parser, and
// what it accepts is within the limits.
func FuzzTerminalRequest(f *testing.F) {
	for _, s := range []string{"", "cmd=sh", "rows=50&cols=132", "rows=0", "cols=99999", `args=["-c","ls"]`, "args=x",
		"term=xterm", "term=a%20b", "cwd=/tmp", "cwd=rel", "cmd=%00", "rows=-1", "rows=1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		req, err := parseTerminalRequest(q, time.Hour)
		if err != nil {
			if api.AsProblem(err).Status >= 500 {
				t.Fatalf("%q: %v", raw, err)
			}
			return
		}
		if req.size.Rows < 1 || req.size.Rows > 1000 || req.size.Cols < 1 || req.size.Cols > 1000 || req.spec.Cmd == "" {
			t.Fatalf("%q accepted as %+v", raw, req)
		}
	})
}

// FuzzTerminalControl: no message crashes the control parser; an accepted
// one is a known type within limits, and every refusal fits a close reason.
func FuzzTerminalControl(f *testing.F) {
	for _, s := range []string{`{"type":"resize","rows":24,"cols":80}`, `{"type":"signal","signal":"INT"}`, `{}`, `x`,
		`{"type":"resize","rows":0,"cols":1}`, `{"type":"signal","signal":"NOPE"}`, `{"type":"exit"}`, `{} {}`, `{"type":"resize","rows":1,"cols":1,"x":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseTerminalControl(data)
		if err != nil {
			if len(err.Error()) > 123 || !utf8.ValidString(err.Error()) {
				t.Fatalf("close reason too long: %q", err)
			}
			return
		}
		switch c.Type {
		case api.TerminalResize:
			if c.Rows < 1 || c.Rows > 1000 || c.Cols < 1 || c.Cols > 1000 {
				t.Fatalf("%q accepted", data)
			}
		case api.TerminalSignal:
		default:
			t.Fatalf("%q accepted with type %q", data, c.Type)
		}
	})
}
