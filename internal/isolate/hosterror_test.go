package isolate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// thrownJS catches what a host call throws and describes it: its name,
// message, and which standard classes it is an instance of.
const thrownJS = `const describe = (e) => ({name: e.name, message: e.message,
	type: e instanceof TypeError, range: e instanceof RangeError, syntax: e instanceof SyntaxError,
	error: e instanceof Error, own: Object.prototype.hasOwnProperty.call(e, "name")});`

type thrown struct {
	Name    string `json:"name"`
	Message string `json:"message"`
	Type    bool   `json:"type"`
	Range   bool   `json:"range"`
	Syntax  bool   `json:"syntax"`
	Error   bool   `json:"error"`
	Own     bool   `json:"own"`
}

// class is the standard class a thrown error should be an instance of.
func (t thrown) class() string {
	switch {
	case t.Type:
		return "TypeError"
	case t.Range:
		return "RangeError"
	case t.Syntax:
		return "SyntaxError"
	case t.Error:
		return "Error"
	}
	return "none"
}

// TestHostErrorClass: every error a host call raises reaches JavaScript
// with the class and message its HostError names, whatever the host path
// (env.<service> through invoke, fetch, state, alarms, crypto, text
// decoding) and whether or not the HostError is wrapped; an error that is
// not a HostError is a plain Error with its full text, even when that text
// looks like "TypeError: ...", since nothing parses messages any more.
func TestHostErrorClass(t *testing.T) {
	errBackend := errors.New("backend down")
	cases := []struct {
		name      string
		err       error // returned by the memHost method the expression reaches
		expr      string
		wantName  string
		wantMsg   string
		wantClass string
	}{
		{"invoke TypeError", &HostError{Name: "TypeError", Message: "env.tools.call needs a name"},
			`env.tools.call("x", {})`, "TypeError", "env.tools.call needs a name", "TypeError"},
		{"invoke RangeError", &HostError{Name: "RangeError", Message: "too big"},
			`env.ai.chat({})`, "RangeError", "too big", "RangeError"},
		{"invoke SyntaxError", &HostError{Name: "SyntaxError", Message: "bad"},
			`env.ai.chat({})`, "SyntaxError", "bad", "SyntaxError"},
		{"invoke custom name", &HostError{Name: "NotSupportedError", Message: "env.x is not available"},
			`env.sandbox.run({})`, "NotSupportedError", "env.x is not available", "Error"},
		{"invoke budget", HostErrorf("BudgetExceededError", "agent %s is over budget", "bot"),
			`env.ai.chat({})`, "BudgetExceededError", "agent bot is over budget", "Error"},
		{"invoke wrapped", fmt.Errorf("context: %w", &HostError{Name: "TypeError", Message: "inner"}),
			`env.tools.call("x", {})`, "TypeError", "inner", "TypeError"},
		{"invoke with cause", HostErrorf("SandboxError", "write /x: %w", errBackend),
			`env.sandbox.run({})`, "SandboxError", "write /x: backend down", "Error"},
		{"invoke plain", errors.New("something broke"),
			`env.tools.call("x", {})`, "Error", "something broke", "Error"},
		{"invoke prefix is not parsed", errors.New("TypeError: looks typed"),
			`env.tools.call("x", {})`, "Error", "TypeError: looks typed", "Error"},
		{"invoke unnamed HostError", &HostError{Message: "no name"},
			`env.tools.call("x", {})`, "Error", "no name", "Error"},
		{"invoke odd names", &HostError{Name: "constructor", Message: "m"},
			`env.tools.call("x", {})`, "constructor", "m", "Error"},
		{"invoke proto name", &HostError{Name: "__proto__", Message: "m"},
			`env.tools.call("x", {})`, "__proto__", "m", "Error"},
		{"fetch refused", errBackend,
			`fetch("https://example.test/")`, "TypeError", "fetch failed: backend down", "TypeError"},
		{"fetch HostError", &HostError{Name: "PermissionError", Message: "egress denied"},
			`fetch("https://example.test/")`, "TypeError", "fetch failed: PermissionError: egress denied", "TypeError"},
		{"state put HostError", &HostError{Name: "RangeError", Message: "value too large"},
			`env.state.put("k", 1)`, "RangeError", "value too large", "RangeError"},
		{"state get plain", errBackend,
			`env.state.get("k")`, "Error", "backend down", "Error"},
		{"alarm NaN", nil, `env.state.setAlarm(NaN)`, "TypeError", "setAlarm needs a Date or a number of milliseconds", "TypeError"},
		{"random quota", nil, `crypto.getRandomValues(new Uint8Array(70000))`, "QuotaExceededError", "getRandomValues: 70000 bytes requested, max 65536", "Error"},
		{"digest unsupported", nil, `crypto.subtle.digest("MD5", "x")`, "NotSupportedError", `digest: unrecognized or unsupported algorithm "MD5"`, "Error"},
		{"utf8 fatal", nil, `new TextDecoder("utf-8", {fatal: true}).decode(new Uint8Array([0xff]))`, "TypeError", "The encoded data was not valid for encoding utf-8", "TypeError"},
	}
	var src strings.Builder
	src.WriteString(thrownJS + "\nconst cases = [\n")
	for _, tc := range cases {
		fmt.Fprintf(&src, "\t(env) => (%s),\n", tc.expr)
	}
	src.WriteString(`];
export default { async fetch(request, env) {
	const i = Number(new URL(request.url).searchParams.get("i"));
	try { await cases[i](env); return new Response("no error"); } catch (e) { return Response.json(describe(e)); }
} }`)
	iso := newIsolate(t, src.String())
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newMemHost()
			fail := func() error { return tc.err }
			h.invokeFn = func(context.Context, string, string, []byte) ([]byte, error) { return nil, fail() }
			h.fetchFn = func(context.Context, Request) (Response, error) { return Response{}, fail() }
			host := Host(h)
			if tc.err != nil && strings.HasPrefix(tc.expr, "env.state") {
				host = failingState{h, tc.err}
			}
			body := get(t, iso, host, fmt.Sprintf("http://test/?i=%d", i))
			var got thrown
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("%s: %s", tc.expr, body)
			}
			if got.Name != tc.wantName || got.Message != tc.wantMsg || got.class() != tc.wantClass {
				t.Fatalf("%s threw %+v (class %s), want %s %q of class %s", tc.expr, got, got.class(), tc.wantName, tc.wantMsg, tc.wantClass)
			}
		})
	}
}

// failingState is a Host whose state calls all fail with err.
type failingState struct {
	*memHost
	err error
}

func (f failingState) StateGet(string) ([]byte, bool, error) { return nil, false, f.err }
func (f failingState) StatePut(string, []byte) error         { return f.err }

// FuzzHostError: whatever name and message a HostError carries, the guest
// sees exactly them (a standard class name as an instance of that class),
// and nothing breaks the isolate.
func FuzzHostError(f *testing.F) {
	for _, s := range [][2]string{{"TypeError", "x"}, {"", "plain"}, {"NotSupportedError", "env.x"},
		{"constructor", ""}, {"__proto__", "p"}, {"toString", "t"}, {"RangeError", "a\nb: c"}, {"Error", "TypeError: y"}} {
		f.Add(s[0], s[1])
	}
	iso := newIsolate(f, thrownJS+`
export default { async fetch(request, env) {
	try { await env.tools.call("x", {}); return new Response("no error"); } catch (e) { return Response.json(describe(e)); }
} }`)
	f.Fuzz(func(t *testing.T, name, msg string) {
		if !utf8.ValidString(name) || !utf8.ValidString(msg) || strings.ContainsRune(name+msg, 0) {
			t.Skip("the guest's strings are UTF-8 without NUL")
		}
		h := newMemHost()
		h.invokeFn = func(context.Context, string, string, []byte) ([]byte, error) {
			return nil, &HostError{Name: name, Message: msg}
		}
		resp, err := iso.Fetch(ctxTimeout(t, 5e9), Request{Method: "GET", URL: "http://test/"}, h)
		if err != nil || resp.Status != 200 {
			t.Fatalf("%q %q: %v %d %s", name, msg, err, resp.Status, resp.Body)
		}
		var got thrown
		if err := json.Unmarshal(resp.Body, &got); err != nil {
			t.Fatalf("%q %q: %s", name, msg, resp.Body)
		}
		wantName := name
		if name == "" {
			wantName = "Error"
		}
		if got.Name != wantName || got.Message != msg {
			t.Fatalf("%q %q arrived as %+v", name, msg, got)
		}
		switch name {
		case "TypeError", "RangeError", "SyntaxError":
			if got.class() != name {
				t.Fatalf("%q arrived as class %s", name, got.class())
			}
		default:
			if got.class() != "Error" {
				t.Fatalf("%q arrived as class %s", name, got.class())
			}
		}
	})
}
