package session

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/bundle/jsbuild"
)

// twoFileAgent throws from src/helper.ts:3 through middle (src/index.ts:4),
// called from fetch at src/index.ts:11 (caught and logged) or 18
// (uncaught).
var twoFileAgent = map[string]string{
	"agent.json": `{"name":"two-files","entry":"src/index.ts"}`,
	"src/helper.ts": `export function check(n: number): number {
  if (n > 1) {
    throw new RangeError(` + "`too big: ${n}`" + `);
  }
  return n;
}
`,
	"src/index.ts": `import { check } from "./helper";

function middle(n: number): number {
  return check(n) + 1;
}

export default {
  async fetch(request: Request): Promise<Response> {
    if (new URL(request.url).pathname === "/caught") {
      try {
        middle(5);
      } catch (e) {
        console.error(e);
        console.log("stack:", (e as Error).stack);
        return new Response("caught");
      }
    }
    return new Response(String(middle(7)));
  },
};
`,
}

// deployDir builds files as the CLI does and deploys them.
func deployDir(t *testing.T, m *Manager, files map[string]string) {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := jsbuild.BuildDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Deploy(context.Background(), Principal{}, res.Bundle); err != nil {
		t.Fatal(err)
	}
}

// frameRE is one frame of a backtrace, "at NAME (FILE:LINE:COL)".
var frameRE = regexp.MustCompile(`at (\S+) \(([^()]+):(\d+):\d+\)`)

// frames lists a text's backtrace frames as "NAME FILE:LINE".
func frames(text string) []string {
	var out []string
	for _, m := range frameRE.FindAllStringSubmatch(text, -1) {
		out = append(out, m[1]+" "+m[2]+":"+m[3])
	}
	return out
}

// TestErrorStackFramesMapToSourceFiles: an error thrown in one TypeScript
// file through a function of another names, in every frame, the agent's
// file and line: in the log entry of the uncaught error (its problem names
// the first place only), and in the log entries of console.error(e) and of
// e.stack printed; the runtime's frames (the dispatch that called fetch)
// are not shown.
func TestErrorStackFramesMapToSourceFiles(t *testing.T) {
	m := openManager(t, t.TempDir())
	deployDir(t, m, twoFileAgent)
	uncaught := []string{"check src/helper.ts:3", "middle src/index.ts:4", "fetch src/index.ts:18"}
	caught := []string{"check src/helper.ts:3", "middle src/index.ts:4", "fetch src/index.ts:11"}

	_, _, err := call(t, m, "two-files", "s", "GET", "/", "")
	var p *api.Problem
	if !api.IsKind(err, api.KindAgentError) || !asProblem(err, &p) {
		t.Fatalf("err = %v, want an agent-error problem", err)
	}
	// The problem, which any caller reads, names only the first place; the
	// backtrace is for the owner's log.
	if !strings.HasPrefix(p.Detail, "agent threw js: RangeError: too big: 7 (at src/helper.ts:3:") ||
		strings.Contains(p.Detail, "\n") || len(frames(p.Detail)) != 0 {
		t.Errorf("detail = %q, want the first place only", p.Detail)
	}

	if body := mustCall(t, m, "two-files", "s", "/caught"); body != "caught" {
		t.Fatalf("body = %q", body)
	}
	l, _, err := m.Logs(context.Background(), "two-files", "", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, e := range l.Entries {
		seen = append(seen, e.Level)
		switch {
		case e.Level == "exception":
			checkFrames(t, "the exception entry", e.Text, uncaught)
		case e.Level == "error" && strings.HasPrefix(e.Text, "RangeError: too big: 5\n"):
			checkFrames(t, "console.error(e)", e.Text, caught)
		case e.Level == "log" && strings.HasPrefix(e.Text, "stack: "):
			checkFrames(t, "console.log(e.stack)", e.Text, caught)
		default:
			t.Errorf("unexpected entry %s %q", e.Level, e.Text)
		}
	}
	if strings.Join(seen, " ") != "exception error log" {
		t.Errorf("entries = %v", seen)
	}
}

func asProblem(err error, p **api.Problem) bool {
	q, ok := err.(*api.Problem)
	*p = q
	return ok
}

// checkFrames fails unless text's frames are want, in order, and text
// names neither the bundle nor the runtime's files.
func checkFrames(t *testing.T, what, text string, want []string) {
	t.Helper()
	if got := frames(text); strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("%s: frames %q, want %q in:\n%s", what, got, want, text)
	}
	if strings.Contains(text, jsbuild.OutDir) || strings.Contains(text, "agentcloud:") {
		t.Errorf("%s names the bundle or the runtime:\n%s", what, text)
	}
}

// TestErrorStackMappingClass: stacks an agent crafts (e.stack is its to
// set, a console line any text), huge or naming other files or absurd
// lines, and a source map that is garbage or enormous: nothing panics,
// the problem and the log entries stay bounded, only the entry's frames
// are mapped.
func TestErrorStackMappingClass(t *testing.T) {
	const agent = `
function craft(n) {
  let s = "";
  for (let i = 0; i < n; i++) s += "    at f" + i + " (agent.js:3:1)\n    at g (/etc/passwd:1:1)\n    at h (agent.js:99999999999999:1)\n";
  return s;
}
export default {
  async fetch(request) {
    const e = new Error("crafted");
    e.stack = craft(Number(new URL(request.url).searchParams.get("n")));
    console.log("huge:", e.stack);
    throw e;
  },
};
`
	// agent.js line 3 maps to src/a.ts 40:1.
	goodMap := `{"version":3,"sources":["src/a.ts"],"mappings":";;AAuCA"}`
	for _, tc := range []struct {
		name, mapText string
		want          string // the place of the first frame
	}{
		{"mapped", goodMap, "src/a.ts:40:1"},
		{"garbage map", `{"version":3,"sources":["a.ts"],"mappings":"` + strings.Repeat("!", 1<<20) + `"}`, "agent.js:3:1"},
		{"enormous map", `{"version":3,"sources":["src/a.ts"],"mappings":"` + strings.Repeat("AAAA,", 5<<20) + `"}`, "agent.js:3:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := bundle.FromFiles(map[string][]byte{
				"agent.json":   []byte(`{"name":"crafter","entry":"agent.js"}`),
				"agent.js":     []byte(agent),
				"agent.js.map": []byte(tc.mapText),
			})
			if err != nil {
				t.Fatal(err)
			}
			m := openManager(t, t.TempDir())
			if _, err := m.Deploy(context.Background(), Principal{}, b); err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{"1", "20000"} {
				_, _, err := call(t, m, "crafter", "s", "GET", "/?n="+n, "")
				var p *api.Problem
				if !asProblem(err, &p) || p.Detail != "agent threw js: Error: crafted (at "+tc.want+")" {
					t.Fatalf("n=%s: err = %.300v", n, err)
				}
			}
			l, _, err := m.Logs(context.Background(), "crafter", "", 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			exceptions := 0
			for _, e := range l.Entries {
				if len(e.Text) > DefaultLogLineBytes {
					t.Errorf("%s entry of %d bytes", e.Level, len(e.Text))
				}
				if e.Level == "exception" {
					if exceptions++; exceptions == 2 && (len(e.Text) > problemStackBytes+200 || !strings.HasSuffix(e.Text, " more")) {
						t.Errorf("the n=20000 entry: %d bytes, the frames past the bound not counted: %q", len(e.Text), e.Text[max(0, len(e.Text)-100):])
					}
					if !strings.HasPrefix(e.Text, "agent-error: agent threw js: Error: crafted (at "+tc.want+")\n    at f0 ("+tc.want+")\n    at g (/etc/passwd:1:1)\n    at h (agent.js:99999999999999:1)") {
						t.Errorf("exception entry %.300q", e.Text)
					}
				}
				if e.Level == "log" && !strings.HasPrefix(e.Text, "huge:     at f0 ("+tc.want+")\n    at g (/etc/passwd:1:1)\n") {
					t.Errorf("log entry %.200q", e.Text)
				}
			}
			if exceptions != 2 {
				t.Errorf("%d exception entries, want 2", exceptions)
			}
		})
	}
}
