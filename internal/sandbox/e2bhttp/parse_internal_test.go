package e2bhttp

import (
	"bytes"
	"encoding/binary"
	"net/url"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

func frame(flags byte, msg string) []byte {
	b := make([]byte, 5+len(msg))
	b[0] = flags
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	copy(b[5:], msg)
	return b
}

// envelopeCases are Connect request bodies and whether they parse.
var envelopeCases = []struct {
	name string
	body []byte
	ok   bool
}{
	{"one message", frame(0, `{"process":{"cmd":"ls"}}`), true},
	{"empty message", frame(0, ``), true},
	{"empty body", nil, false},
	{"short header", []byte{0, 0}, false},
	{"compressed", frame(1, `{}`), false},
	{"end-stream flag", frame(2, `{}`), false},
	{"announced more than sent", frame(0, `{}`)[:6], false},
	{"two messages", append(frame(0, `{}`), frame(0, `{}`)...), false},
	{"over the limit", func() []byte { b := frame(0, ``); binary.BigEndian.PutUint32(b[1:], maxMessageBytes+1); return b }(), false},
}

// checkProblem fails unless err is a 4xx problem (never internal).
func checkProblem(t *testing.T, what string, err error) {
	t.Helper()
	p, ok := err.(*api.Problem)
	if !ok || p.Kind().Status() < 400 || p.Kind().Status() >= 500 {
		t.Fatalf("%s: %v is not a 4xx problem", what, err)
	}
}

func TestParseEnvelope(t *testing.T) {
	for _, c := range envelopeCases {
		msg, err := parseEnvelope(bytes.NewReader(c.body))
		if (err == nil) != c.ok {
			t.Errorf("%s: %q %v", c.name, msg, err)
		}
		if err != nil {
			checkProblem(t, c.name, err)
		}
	}
}

// FuzzParseEnvelope: any body parses to one message no longer than the
// limit, or is refused with a 4xx problem.
func FuzzParseEnvelope(f *testing.F) {
	for _, c := range envelopeCases {
		f.Add(c.body)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := parseEnvelope(bytes.NewReader(b))
		if err != nil {
			checkProblem(t, "envelope", err)
			return
		}
		if len(msg) > maxMessageBytes || len(b) != len(msg)+5 {
			t.Fatalf("parsed %d bytes of %d", len(msg), len(b))
		}
	})
}

var startCases = []struct {
	msg string
	ok  bool
}{
	{`{"process":{"cmd":"/bin/bash","args":["-l","-c","echo hi"],"envs":{"A":"b"},"cwd":"/workspace"},"stdin":true,"tag":"t"}`, true},
	{`{}`, false},
	{`{"process":{"cmd":""}}`, false},
	{`{"process":{"cmd":"a\u0000"}}`, false},
	{`{"process":{"cmd":"ls","cwd":"rel"}}`, false},
	{`{"process":{"cmd":"ls","envs":{"A=B":"c"}}}`, false},
	{`{"process":{"cmd":"ls"},"pty":{"size":{"cols":80,"rows":24}}}`, true},
	{`{"process":{"cmd":"ls"},"pty":{}}`, false},
	{`{"process":{"cmd":"ls"},"pty":{"size":{"cols":0,"rows":24}}}`, false},
	{`{"process":{"cmd":"ls"},"pty":{"size":{"cols":80,"rows":100000}}}`, false},
	{`{"process":{"cmd":"ls"},"pty":{"size":{"cols":"80","rows":24}}}`, false},
	{`{"process":{"cmd":"ls"},"pty":7}`, false},
	{`{"process":{"cmd":"ls"},"pty":null}`, true},
	{`{"process":{"cmd":7}}`, false},
	{`[`, false},
}

// FuzzStartRequest: a start message is accepted only with a command, and
// every refusal is a 4xx problem.
func FuzzStartRequest(f *testing.F) {
	for _, c := range startCases {
		f.Add([]byte(c.msg))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req startRequest
		err := decodeMessage(b, &req)
		if err == nil {
			err = validateStart(req)
		}
		if err != nil {
			checkProblem(t, "start", err)
			return
		}
		if req.Process.Cmd == "" {
			t.Fatal("accepted without a command")
		}
	})
}

func TestStartRequestCases(t *testing.T) {
	for _, c := range startCases {
		var req startRequest
		err := decodeMessage([]byte(c.msg), &req)
		if err == nil {
			err = validateStart(req)
		}
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", c.msg, err)
		}
	}
}

// FuzzListQuery: any query string gives a listing query within bounds, or
// a 4xx problem.
func FuzzListQuery(f *testing.F) {
	for _, s := range []string{"", "state=running,paused", "state=dead", "limit=0", "limit=100", "metadata=a%3Db%26c%3Dd",
		"metadata=a%3D%25zz", "nextToken=sb-1", "limit=-1&state=running"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := url.ParseQuery(s)
		if err != nil {
			return
		}
		lq, err := parseListQuery(q)
		if err != nil {
			checkProblem(t, "list query", err)
			return
		}
		if lq.limit < 1 || lq.limit > 100 || len(lq.after) > 128 || len(lq.metadata) > 64 {
			t.Fatalf("out of bounds: %+v", lq)
		}
	})
}

// FuzzEnvdToken: no token but the one made for a sandbox verifies for it
// (checked without the store: the MAC comes first).
func FuzzEnvdToken(f *testing.F) {
	k := &Keys{nodeKey: bytes.Repeat([]byte{7}, 32)}
	good := k.envdToken("sb-1", hashKey("e2b_"+string(bytes.Repeat([]byte("a"), 40))))
	for _, s := range []string{good, good + "0", "e2bat_", "e2bat_x_y", tokenPrefix + "_", ""} {
		f.Add(s, "sb-1")
	}
	f.Fuzz(func(t *testing.T, tok, id string) {
		if tok == good && id == "sb-1" {
			return
		}
		if _, _, err := k.AuthenticateEnvd(t.Context(), tok, id); err == nil {
			t.Fatalf("token %q verified for %q", tok, id)
		} else {
			checkProblem(t, "token", err)
		}
	})
}

func TestKeyShape(t *testing.T) {
	for key, ok := range map[string]bool{"e2b_" + string(bytes.Repeat([]byte("0a"), 20)): true, "e2b_": false,
		"e2b_" + string(bytes.Repeat([]byte("A"), 40)): false, "xyz_" + string(bytes.Repeat([]byte("a"), 40)): false} {
		if validKeyShape(key) != ok {
			t.Errorf("%q: want %v", key, ok)
		}
	}
}

// forkCases are fork bodies and the count and timeout (s) they ask for;
// count 0 is a refusal.
var forkCases = []struct {
	name    string
	body    string
	count   int
	timeout float64
}{
	{"empty", ``, 1, 15},
	{"empty object", `{}`, 1, 15},
	{"what the SDK sends", `{"count":3,"timeout":60}`, 3, 60},
	{"most", `{"count":100}`, 100, 15},
	{"count 0", `{"count":0}`, 0, 0},
	{"count 101", `{"count":101}`, 0, 0},
	{"count string", `{"count":"2"}`, 0, 0},
	{"count fraction", `{"count":1.5}`, 0, 0},
	{"count null", `{"count":null}`, 1, 15},
	{"duplicate", `{"count":1,"count":2}`, 0, 0},
	{"unknown field (a newer client's)", `{"count":2,"memory":false}`, 2, 15},
	{"timeout under a second", `{"timeout":0.5}`, 0, 0},
	{"timeout a sliver", `{"timeout":1e-10}`, 0, 0},
	{"timeout 0", `{"timeout":0}`, 0, 0},
	{"timeout over the max", `{"timeout":86401}`, 0, 0},
	{"array", `[]`, 0, 0},
	{"null", `null`, 0, 0},
	{"trailing", `{} {}`, 0, 0},
}

func TestParseFork(t *testing.T) {
	h := &Handler{cfg: Config{MaxTimeout: 24 * time.Hour}}
	for _, c := range forkCases {
		n, d, err := h.parseFork([]byte(c.body))
		if c.count == 0 {
			if err == nil {
				t.Errorf("%s: accepted (%d, %v)", c.name, n, d)
			} else {
				checkProblem(t, c.name, err)
			}
			continue
		}
		if err != nil || n != c.count || d != time.Duration(c.timeout*float64(time.Second)) {
			t.Errorf("%s: %d %v %v", c.name, n, d, err)
		}
	}
}

// FuzzParseFork: any body asks for 1 to 100 copies living up to the
// maximum timeout, or is refused with a 4xx problem.
func FuzzParseFork(f *testing.F) {
	for _, c := range forkCases {
		f.Add([]byte(c.body))
	}
	h := &Handler{cfg: Config{MaxTimeout: time.Hour}}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, d, err := h.parseFork(b)
		if err != nil {
			checkProblem(t, "fork body", err)
			return
		}
		if n < 1 || n > 100 || d < time.Second || d > time.Hour {
			t.Fatalf("%q: %d copies for %v", b, n, d)
		}
	})
}
