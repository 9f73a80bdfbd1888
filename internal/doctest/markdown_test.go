package doctest

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// block is one fenced code block of a Markdown file.
type block struct {
	lang  string
	start int      // line number (1-based) of the first code line
	lines []string // the code, without the fence's indentation
}

// Fence labels: sh blocks run in TestDocCommands; the others are shown, not
// run. A block without a label, or labelled as another shell, is an error,
// so every command a reader may copy is either run or marked as not run.
var (
	runLangs  = map[string]bool{"sh": true}
	showLangs = map[string]bool{"text": true, "js": true, "json": true, "c": true, "cedar": true, "yaml": true, "go": true}
)

// unfencedCommand spots a command in an indented (unfenced) code block.
var unfencedCommand = regexp.MustCompile(`^(    |\t)\s*(\$ |agentcloud |bin/agentcloud|\./|curl |make |go |examples/)`)

// parseBlocks returns the fenced code blocks of a Markdown text, or an
// error naming the line of an unlabelled or unknown fence, an unclosed
// fence, or a command in an indented code block.
func parseBlocks(name, text string) ([]block, error) {
	lines := strings.Split(text, "\n")
	var blocks []block
	var cur *block
	indent := ""
	var fence string
	for i, line := range lines {
		n := i + 1
		trimmed := strings.TrimLeft(line, " ")
		lead := line[:len(line)-len(trimmed)]
		if cur == nil {
			if len(lead) <= 3 && (strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~")) {
				fence = trimmed[:3]
				lang := strings.TrimSpace(strings.TrimLeft(trimmed, fence[:1]))
				lang, _, _ = strings.Cut(lang, " ")
				switch {
				case lang == "":
					return nil, fmt.Errorf("%s:%d: code block without a label: write ```sh (run by the doc test) or ```text (not run)", name, n)
				case !runLangs[lang] && !showLangs[lang]:
					return nil, fmt.Errorf("%s:%d: code block labelled %q: use sh for commands (run by the doc test), text for anything not to run", name, n, lang)
				}
				cur, indent = &block{lang: lang, start: n + 1}, lead
				continue
			}
			if unfencedCommand.MatchString(line) && (i == 0 || strings.TrimSpace(lines[i-1]) == "" || unfencedCommand.MatchString(lines[i-1])) {
				return nil, fmt.Errorf("%s:%d: a command in an indented code block: fence it as ```sh (run by the doc test) or ```text", name, n)
			}
			continue
		}
		if strings.HasPrefix(trimmed, fence) && strings.TrimSpace(strings.TrimLeft(trimmed, fence[:1])) == "" {
			blocks = append(blocks, *cur)
			cur = nil
			continue
		}
		cur.lines = append(cur.lines, strings.TrimPrefix(line, indent))
	}
	if cur != nil {
		return nil, fmt.Errorf("%s:%d: code block is not closed", name, cur.start-1)
	}
	return blocks, nil
}

// command is one shell command of an sh block: its first line and text
// (continuation lines joined), for error reports.
type command struct {
	first, last int
	text        string
}

// commands splits the sh blocks into commands: a line ending in \ goes on,
// and a here-document runs to its terminator.
func commands(blocks []block) []command {
	var out []command
	for _, b := range blocks {
		if !runLangs[b.lang] {
			continue
		}
		for i := 0; i < len(b.lines); i++ {
			line := b.lines[i]
			if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			c := command{first: b.start + i, text: line}
			for strings.HasSuffix(strings.TrimRight(c.text, " "), "\\") && i+1 < len(b.lines) {
				i++
				c.text = strings.TrimRight(strings.TrimSuffix(strings.TrimRight(c.text, " "), "\\"), " ") + " " + strings.TrimSpace(b.lines[i])
			}
			if m := heredoc.FindStringSubmatch(line); m != nil {
				for i+1 < len(b.lines) {
					i++
					if strings.TrimSpace(b.lines[i]) == m[1] {
						break
					}
				}
			}
			c.last = b.start + i
			out = append(out, c)
		}
	}
	return out
}

var heredoc = regexp.MustCompile(`<<-?\s*'?"?([A-Za-z_]+)'?"?`)

// bashScript turns a file's sh blocks into one bash script whose line N is the
// file's line N (other lines are blank), after a one-line prologue, so
// bash's LINENO is the Markdown line.
func bashScript(prologue string, nlines int, blocks []block) (string, error) {
	out := make([]string, nlines)
	out[0] = prologue
	for _, b := range blocks {
		if !runLangs[b.lang] {
			continue
		}
		if b.start <= 1 {
			return "", fmt.Errorf("an sh block may not start on line 1")
		}
		for i, l := range b.lines {
			out[b.start-1+i] = l
		}
	}
	return strings.Join(out, "\n") + "\n", nil
}

var parseCases = []struct {
	name, text string
	blocks     int
	err        string
}{
	{"sh and text", "# t\n```sh\nls\n```\n\n```text\nserve [--x]\n```\n", 2, ""},
	{"indented fence", "- item\n  ```sh\n  ls\n  ```\n", 1, ""},
	{"tilde", "~~~sh\nls\n~~~\n", 1, ""},
	{"no label", "```\nls\n```\n", 0, "without a label"},
	{"bash label", "```bash\nls\n```\n", 0, `labelled "bash"`},
	{"unclosed", "```sh\nls\n", 0, "not closed"},
	{"indented command", "text\n\n    agentcloud deploy .\n", 0, "indented code block"},
	{"list continuation", "- a\n    more text\n", 0, ""},
	{"backticks inside", "```sh\necho '```'\n```\n", 1, ""},
}

func TestParseBlocks(t *testing.T) {
	for _, c := range parseCases {
		bs, err := parseBlocks("x.md", c.text)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || len(bs) != c.blocks {
			t.Errorf("%s: %d blocks, %v; want %d", c.name, len(bs), err, c.blocks)
		}
	}
	bs, _ := parseBlocks("x.md", "# t\n\n```sh\na \\\n  b\ncat > f <<'EOF'\nx\nEOF\nc\n```\n")
	cs := commands(bs)
	if len(cs) != 3 || cs[0].text != "a b" || cs[0].first != 4 || cs[1].first != 6 || cs[1].last != 8 || cs[2].first != 9 {
		t.Fatalf("commands: %+v", cs)
	}
	s, err := bashScript("P", 11, bs)
	if err != nil || strings.Split(s, "\n")[3] != "a \\" || strings.Split(s, "\n")[0] != "P" {
		t.Fatalf("script: %q %v", s, err)
	}
}

func FuzzParseBlocks(f *testing.F) {
	for _, c := range parseCases {
		f.Add(c.text)
	}
	f.Fuzz(func(t *testing.T, text string) {
		bs, err := parseBlocks("fuzz.md", text)
		if err != nil {
			return
		}
		n := strings.Count(text, "\n") + 1
		for _, b := range bs {
			if b.start < 1 || b.start+len(b.lines) > n+1 {
				t.Fatalf("block at %d with %d lines in a %d-line text", b.start, len(b.lines), n)
			}
		}
		_ = commands(bs)
		if len(bs) > 0 && bs[0].start > 1 {
			if _, err := bashScript("p", n, bs); err != nil {
				t.Fatal(err)
			}
		}
	})
}
