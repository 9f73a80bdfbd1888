package bundle

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/agentcloud/agentcloud/internal/egress/hostpattern"
)

var (
	nameRE   = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	secretRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	toolRE   = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_./-]{0,127}$`)
)

// maxEnvValue is the largest plain env value, in bytes.
const maxEnvValue = 4 << 10

// reservedEnv are env keys the runtime sets itself: the env bindings of
// the JavaScript prelude (internal/isolate/prelude.js), and secrets.
var reservedEnv = map[string]bool{"state": true, "session": true, "tools": true, "ai": true, "sandbox": true, "secrets": true}

// ReservedEnv reports whether name is an env key the runtime sets itself
// (env.state, env.session, env.tools, env.ai, env.sandbox, env.secrets),
// which a manifest's env may not use.
func ReservedEnv(name string) bool { return reservedEnv[name] }

// validate checks the decoded values. Fields that failed to decode hold
// their zero value and already have a problem, so zero values are skipped
// where they would only repeat it.
func (p *parser) validate(m *Manifest) {
	if m.Name != "" && !nameRE.MatchString(m.Name) {
		fix := "use 1 to 63 lowercase letters, digits and '-', starting with a letter"
		if s := slug(m.Name); s != "" {
			fix += fmt.Sprintf(", such as %q", s)
		}
		p.add("name", fmt.Sprintf("%q is not a valid agent name", m.Name), fix)
	}
	switch m.Runtime {
	case RuntimeJS, RuntimeWASM:
	default:
		p.add("runtime", fmt.Sprintf("%q is not a runtime", m.Runtime), `use "js" (the default) or "wasm"`)
	}
	if m.Entry != "" {
		p.validateEntry(m.Entry, m.Runtime)
	}
	p.eachUnique("egress", m.Egress, func(field, s string) {
		if problem, fix := checkHostPattern(s); problem != "" {
			p.add(field, problem, fix)
		}
	})
	p.eachUnique("tools", m.Tools, func(field, s string) {
		if !toolRE.MatchString(s) {
			p.add(field, fmt.Sprintf("%q is not a valid tool name", s), "use 1 to 128 letters, digits, '_', '-', '.' or '/', starting with a letter, digit or '_'")
		}
	})
	p.eachUnique("secrets", m.Secrets, func(field, s string) {
		if !secretRE.MatchString(s) {
			p.add(field, fmt.Sprintf("%q is not a valid secret name", s), "use 1 to 128 letters, digits and '_', not starting with a digit, such as \"API_KEY\"")
		}
	})
	p.validateEnv(m)
	p.validateTest(m.Test)
}

// MaxTestCommand is the longest manifest test command, in bytes.
const MaxTestCommand = 1024

// validateTest checks the manifest's test command: one line of text.
func (p *parser) validateTest(cmd string) {
	switch {
	case cmd == "":
	case len(cmd) > MaxTestCommand:
		p.add("test", fmt.Sprintf("the test command is %d bytes", len(cmd)), fmt.Sprintf("keep it under %d bytes; put longer scripts in a file of the bundle and run that", MaxTestCommand))
	case !utf8.ValidString(cmd) || strings.ContainsAny(cmd, "\x00\n\r"):
		p.add("test", "the test command must be one line of UTF-8 text", "remove line breaks and NUL bytes; put longer scripts in a file of the bundle")
	case strings.TrimSpace(cmd) == "":
		p.add("test", "the test command is blank", "remove it or name a command, such as \"python3 -m pytest\"")
	}
}

// IsSourceEntry reports whether entry is TypeScript or JSX source (.ts,
// .mts, .cts, .tsx, .jsx): an entry the CLI builds into JavaScript
// (internal/bundle/jsbuild) before it uploads the agent.
func IsSourceEntry(entry string) bool {
	switch path.Ext(entry) {
	case ".ts", ".mts", ".cts", ".tsx", ".jsx":
		return !strings.HasSuffix(entry, ".d.ts")
	}
	return false
}

// eachUnique calls check for each element and reports repeats.
func (p *parser) eachUnique(field string, list []string, check func(field, s string)) {
	first := map[string]int{}
	for i, s := range list {
		f := field + "[" + strconv.Itoa(i) + "]"
		if j, dup := first[s]; dup {
			p.add(f, fmt.Sprintf("%q repeats %s[%d]", s, field, j), "remove it")
			continue
		}
		first[s] = i
		check(f, s)
	}
}

func (p *parser) validateEntry(entry string, rt Runtime) {
	if why := pathProblem(entry); why != "" {
		fix := "give a path relative to the bundle root, such as \"index.js\""
		if c := strings.TrimLeft(path.Clean("/"+strings.ReplaceAll(entry, `\`, "/")), "/"); c != "" && c != entry && pathProblem(c) == "" && !strings.Contains(entry, "..") {
			fix = fmt.Sprintf("write it as %q", c)
		}
		p.add("entry", fmt.Sprintf("%q is not a valid path: %s", entry, why), fix)
		return
	}
	ext := path.Ext(entry)
	switch {
	case rt == RuntimeJS && IsSourceEntry(entry) && p.source:
	case rt == RuntimeJS && IsSourceEntry(entry):
		p.add("entry", fmt.Sprintf("%q is TypeScript or JSX source, which the daemon does not build", entry),
			"deploy the agent directory with 'agentcloud deploy DIR': it bundles TypeScript and npm dependencies into JavaScript before uploading")
	case rt == RuntimeJS && ext != ".js" && ext != ".mjs":
		fix := "point entry at a .js or .mjs module"
		if ext == ".wasm" {
			fix = `set "runtime": "wasm", or point entry at a .js module`
		}
		p.add("entry", fmt.Sprintf("%q is not a JavaScript module (.js or .mjs) for runtime \"js\"", entry), fix)
	case rt == RuntimeWASM && ext != ".wasm":
		p.add("entry", fmt.Sprintf("%q is not a .wasm module for runtime \"wasm\"", entry), `point entry at a .wasm file, or set "runtime": "js"`)
	}
}

func (p *parser) validateEnv(m *Manifest) {
	for _, k := range slices.Sorted(maps.Keys(m.Env)) {
		field := childPath("env", k)
		v := m.Env[k]
		switch {
		case !identRE.MatchString(k):
			p.add(field, fmt.Sprintf("%q is not a valid variable name", k), "use letters, digits and '_', not starting with a digit")
		case reservedEnv[k]:
			p.add(field, fmt.Sprintf("%q is reserved: the runtime sets env.%s", k, k), "choose another name")
		case slices.Contains(m.Secrets, k):
			p.add(field, fmt.Sprintf("%q is also listed in secrets", k), "remove one of them; secrets never go in env")
		case len(v) > maxEnvValue:
			p.add(field, fmt.Sprintf("value is %d bytes, above the maximum %d", len(v), maxEnvValue), "shorten it, or put the data in a bundle file")
		}
	}
}

// checkHostPattern validates an egress pattern with the matcher's own
// parser (internal/egress/hostpattern), so a manifest accepts exactly what
// egress can match: a DNS name, "*." and a name of at least two labels, or
// an IPv4 address, each optionally followed by ":port" (without one, ports
// 80 and 443). It returns a problem and a fix, or two empty strings.
func checkHostPattern(s string) (problem, fix string) {
	if _, err := hostpattern.Parse(s); err != nil {
		var e *hostpattern.Error
		if errors.As(err, &e) {
			return e.Problem, e.Fix
		}
		return err.Error(), "write a host such as \"api.example.com\""
	}
	return "", ""
}

// pathProblem says why p is not a clean, safe, slash-separated path
// relative to the bundle root, or returns "".
func pathProblem(p string) string {
	switch {
	case p == "":
		return "empty path"
	case len(p) > MaxPathLen:
		return fmt.Sprintf("longer than %d bytes", MaxPathLen)
	case !utf8.ValidString(p):
		return "not valid UTF-8"
	case strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "contains a control character"
	case strings.Contains(p, `\`):
		return "contains a backslash; use '/'"
	case strings.HasPrefix(p, "/") || (len(p) >= 2 && p[1] == ':'):
		return "absolute path"
	}
	for _, el := range strings.Split(p, "/") {
		switch el {
		case "..":
			return `".." would escape the bundle`
		case ".":
			return `contains a "." element`
		case "":
			return "contains an empty element"
		}
	}
	return ""
}

// slug turns s into a valid agent name, or "" if nothing is left.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.TrimRight(b.String(), "-")
	if out != "" && (out[0] < 'a' || out[0] > 'z') {
		out = "agent-" + out
	}
	if len(out) > 63 {
		out = strings.TrimRight(out[:63], "-")
	}
	if !nameRE.MatchString(out) {
		return ""
	}
	return out
}
