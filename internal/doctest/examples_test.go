package doctest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/bundle"
)

// An example of docs/AGENT-API.md is a runnable agent: a ```json block
// holding its agent.json, one or more ```js blocks (the entry module; a
// block whose first line is "// file: NAME" is the bundle file NAME), and a
// ```text transcript of calls to one of its sessions:
//
//	> GET /path                     a request (a body may follow the path)
//	> GET /later   # until it matches   polled until the answer matches
//	> X-Name: value                  a request header (after its call)
//	< 200                            the expected status
//	the expected body                (trimmed; "..." matches any text)
//
// Every js block of the file belongs to an example, so every snippet a
// reader copies has run.
type example struct {
	line     int               // of the manifest block
	manifest bundle.Manifest   // parsed
	files    map[string][]byte // agent.json and the js files
	steps    []step
}

// step is one call of a transcript and the answer it expects.
type step struct {
	line         int
	method, path string
	body         string
	header       http.Header
	poll         bool
	status       int
	want         string
}

// exampleFileHeader names a js block's bundle file.
var exampleFileHeader = regexp.MustCompile(`^// file: ([A-Za-z0-9_./-]+)$`)

// parseExamples finds the examples of a Markdown file, or an error naming
// the line of a js block outside an example, a manifest that does not
// parse, or a malformed transcript.
func parseExamples(name, text string) ([]example, error) {
	blocks, err := parseBlocks(name, text)
	if err != nil {
		return nil, err
	}
	var out []example
	for i := 0; i < len(blocks); i++ {
		b := blocks[i]
		if b.lang == "js" {
			return nil, fmt.Errorf("%s:%d: a js block outside an example: put the agent's agent.json in a json block before it and its calls in a text block after it", name, b.start)
		}
		if b.lang != "json" || i+1 >= len(blocks) || blocks[i+1].lang != "js" {
			continue
		}
		manifest := strings.Join(b.lines, "\n")
		m, err := bundle.Parse([]byte(manifest))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: example manifest: %w", name, b.start, err)
		}
		ex := example{line: b.start, manifest: m, files: map[string][]byte{bundle.ManifestName: []byte(manifest)}}
		i++
		for ; i < len(blocks) && blocks[i].lang == "js"; i++ {
			file, code := m.Entry, blocks[i].lines
			if len(code) > 0 {
				if h := exampleFileHeader.FindStringSubmatch(code[0]); h != nil {
					file = h[1]
				}
			}
			if _, dup := ex.files[file]; dup {
				return nil, fmt.Errorf("%s:%d: a second js block for %s: name other files with a first line // file: NAME", name, blocks[i].start, file)
			}
			ex.files[file] = []byte(strings.Join(code, "\n"))
		}
		if i >= len(blocks) || blocks[i].lang != "text" {
			return nil, fmt.Errorf("%s:%d: example %s has no transcript: follow its js with a text block of calls (> GET /path, < 200, body)", name, b.start, m.Name)
		}
		if ex.steps, err = parseTranscript(blocks[i]); err != nil {
			return nil, fmt.Errorf("%s:%w", name, err)
		}
		out = append(out, ex)
	}
	return out, nil
}

// parseTranscript reads a text block of calls and answers.
func parseTranscript(b block) ([]step, error) {
	var steps []step
	var cur *step
	inBody := false
	for k, line := range b.lines {
		n := b.start + k
		switch {
		case strings.HasPrefix(line, "> "):
			req, comment, _ := strings.Cut(line[2:], "  # ")
			f := strings.SplitN(strings.TrimSpace(req), " ", 3)
			if name, value, ok := strings.Cut(strings.TrimSpace(req), ": "); ok && cur != nil && !inBody && cur.status == 0 && validHeaderName(name) {
				if cur.header == nil {
					cur.header = http.Header{}
				}
				cur.header.Add(name, value)
				continue
			}
			if len(f) < 2 || !validMethod(f[0]) || !strings.HasPrefix(f[1], "/") {
				return nil, fmt.Errorf("%d: want a call such as > GET /path or > POST /path {\"a\":1}", n)
			}
			steps = append(steps, step{line: n, method: f[0], path: f[1], poll: strings.Contains(comment, "until")})
			cur = &steps[len(steps)-1]
			if len(f) == 3 {
				cur.body = f[2]
			}
			inBody = false
		case strings.HasPrefix(line, "< "):
			if cur == nil || inBody || cur.status != 0 {
				return nil, fmt.Errorf("%d: an answer (< STATUS) must follow a call (> METHOD /path)", n)
			}
			code, err := strconv.Atoi(strings.TrimSpace(line[2:]))
			if err != nil || code < 100 || code > 599 {
				return nil, fmt.Errorf("%d: want a status such as < 200", n)
			}
			cur.status, inBody = code, true
		case inBody:
			cur.want += line + "\n"
		case strings.TrimSpace(line) != "":
			return nil, fmt.Errorf("%d: text outside a call: start calls with > and answers with <", n)
		}
	}
	if len(steps) == 0 {
		return nil, fmt.Errorf("%d: a transcript without calls", b.start)
	}
	for _, s := range steps {
		if s.status == 0 {
			return nil, fmt.Errorf("%d: a call without an answer (< STATUS)", s.line)
		}
	}
	return steps, nil
}

// validHeaderName reports whether s is an HTTP header name (a token).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}

func validMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead:
		return true
	}
	return false
}

// matches reports whether got is want, where "..." in want matches any
// text (also across lines); both are trimmed.
func matches(want, got string) bool {
	want, got = strings.TrimSpace(want), strings.TrimSpace(got)
	parts := strings.Split(want, "...")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	re, err := regexp.Compile(`(?s)\A` + strings.Join(parts, `.*`) + `\z`)
	return err == nil && re.MatchString(got)
}

var exampleCases = []struct {
	name, text string
	examples   int
	err        string
}{
	{"one", "```json\n{\"name\": \"a\", \"entry\": \"index.js\"}\n```\n```js\nexport default {}\n```\n```text\n> GET /\n< 200\nhi\n```\n", 1, ""},
	{"lib", "```json\n{\"name\": \"a\", \"entry\": \"index.js\"}\n```\n```js\nx\n```\n```js\n// file: lib.js\ny\n```\n```text\n> POST /p {\"a\": 1}  # until it matches\n> X-Sig: sha256=ab\n< 201\n```\n", 1, ""},
	{"header first", "```json\n{\"name\": \"a\", \"entry\": \"index.js\"}\n```\n```js\nx\n```\n```text\n> X-Sig: 1\n> GET /\n< 200\n```\n", 0, "want a call"},
	{"shown json", "```json\n{\"x\": 1}\n```\n\ntext\n", 0, ""},
	{"lone js", "```js\nx\n```\n", 0, "outside an example"},
	{"bad manifest", "```json\n{\"name\": \"A\", \"entry\": \"index.js\"}\n```\n```js\nx\n```\n", 0, "example manifest"},
	{"no transcript", "```json\n{\"name\": \"a\", \"entry\": \"index.js\"}\n```\n```js\nx\n```\n", 0, "no transcript"},
	{"two entries", "```json\n{\"name\": \"a\", \"entry\": \"index.js\"}\n```\n```js\nx\n```\n```js\ny\n```\n```text\n> GET /\n< 200\n```\n", 0, "second js block"},
	{"no answer", "```json\n{\"name\": \"a\", \"entry\": \"index.js\"}\n```\n```js\nx\n```\n```text\n> GET /\n```\n", 0, "without an answer"},
	{"answer first", "```json\n{\"name\": \"a\", \"entry\": \"index.js\"}\n```\n```js\nx\n```\n```text\n< 200\n```\n", 0, "must follow a call"},
	{"bad call", "```json\n{\"name\": \"a\", \"entry\": \"index.js\"}\n```\n```js\nx\n```\n```text\n> FETCH x\n< 200\n```\n", 0, "want a call"},
	{"bad status", "```json\n{\"name\": \"a\", \"entry\": \"index.js\"}\n```\n```js\nx\n```\n```text\n> GET /\n< OK\n```\n", 0, "want a status"},
	{"stray text", "```json\n{\"name\": \"a\", \"entry\": \"index.js\"}\n```\n```js\nx\n```\n```text\nhello\n> GET /\n< 200\n```\n", 0, "outside a call"},
}

func TestParseExamples(t *testing.T) {
	for _, c := range exampleCases {
		exs, err := parseExamples("x.md", c.text)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || len(exs) != c.examples {
			t.Errorf("%s: %d examples, %v; want %d", c.name, len(exs), err, c.examples)
		}
	}
	exs, _ := parseExamples("x.md", exampleCases[1].text)
	s := exs[0].steps[0]
	if s.method != "POST" || s.path != "/p" || s.body != `{"a": 1}` || !s.poll || s.status != 201 || len(exs[0].files) != 3 || s.header.Get("X-Sig") != "sha256=ab" {
		t.Fatalf("parsed %+v, files %d", s, len(exs[0].files))
	}
	for _, m := range []struct {
		want, got string
		ok        bool
	}{
		{"a", "a\n", true}, {"a...c", "abbc", true}, {"a...", "a\nb", true}, {"a.c", "abc", false}, {"x", "y", false},
	} {
		if matches(m.want, m.got) != m.ok {
			t.Errorf("matches(%q, %q) != %v", m.want, m.got, m.ok)
		}
	}
}

func FuzzParseExamples(f *testing.F) {
	for _, c := range exampleCases {
		f.Add(c.text)
	}
	f.Fuzz(func(t *testing.T, text string) {
		exs, err := parseExamples("fuzz.md", text)
		if err != nil {
			return
		}
		for _, ex := range exs {
			if len(ex.steps) == 0 || ex.files[bundle.ManifestName] == nil {
				t.Fatalf("example without steps or manifest: %+v", ex)
			}
			for _, s := range ex.steps {
				if s.status < 100 || s.status > 599 || !strings.HasPrefix(s.path, "/") {
					t.Fatalf("bad step %+v", s)
				}
			}
			if _, err := json.Marshal(ex.manifest); err != nil {
				t.Fatal(err)
			}
		}
	})
}
