package sandboxenv

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// FuzzSandboxRunArgs feeds env.sandbox.run/exec arguments through the
// same decoding and validation the service uses: anything accepted names
// one program, a known language, a bounded timeout and writable paths;
// anything refused is a TypeError agent code can catch.
func FuzzSandboxRunArgs(f *testing.F) {
	for _, s := range []string{`{"language":"python","code":"print(1)"}`, `{"cmd":"ls","args":["-l"]}`,
		`{"language":"cobol","code":"x"}`, `{"language":"bash","cmd":"x"}`, `{}`, `{"cmd":"x","timeout":-1}`,
		`{"cmd":"x","files":{"/etc/passwd":"x"}}`, `{"cmd":"x","files":{"../x":"y"}}`, `{"code":"x","cmd":"y"}`,
		`{"cmd":"x","env":{"A=B":"c"}}`, `[1]`, `{"language":1}`, `null`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var req sandboxRun
		if err := json.Unmarshal([]byte(body), &req); err != nil {
			return // the service answers a TypeError for undecodable JSON
		}
		err := checkRun(req)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "TypeError: ") {
				t.Fatalf("refusal is not a TypeError: %v", err)
			}
			return
		}
		if (req.Language == "") == (req.Cmd == "") {
			t.Fatalf("accepted %q: want exactly one of language and cmd", body)
		}
		if _, ok := languages[req.Language]; req.Language != "" && !ok {
			t.Fatalf("accepted unknown language %q", req.Language)
		}
		if req.Timeout < 0 || req.Timeout > runMaxTimeout.Seconds() {
			t.Fatalf("accepted timeout %v", req.Timeout)
		}
		for p := range req.Files {
			if _, _, err := sandbox.ResolvePath(p); err != nil {
				t.Fatalf("accepted file path %q", p)
			}
		}
	})
}
