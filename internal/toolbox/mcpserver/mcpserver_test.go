package mcpserver

import (
	"encoding/json"
	"testing"
)

func TestCheckJSONRPC(t *testing.T) {
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, true},
		{`{"jsonrpc":"2.0","method":"notifications/initialized"}`, true},
		{`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, true},
		{`{not json`, false},
		{`{"hello":1}`, false},
		{`[]`, false},
		{`"str"`, false},
		{``, false},
	} {
		code, msg := checkJSONRPC([]byte(tc.body))
		if (code == 0) != tc.ok || (!tc.ok && msg == "") {
			t.Errorf("%q: code %d %q", tc.body, code, msg)
		}
	}
}

// FuzzCheckJSONRPC: the pre-check never panics, and what it accepts is
// valid JSON.
func FuzzCheckJSONRPC(f *testing.F) {
	for _, s := range []string{`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, `[{"jsonrpc":"2.0","id":"a","result":{}}]`, `{`, `[]`, `null`, `{"jsonrpc":"1.0"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if code, _ := checkJSONRPC(b); code == 0 && !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
	})
}
