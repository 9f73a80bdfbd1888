package gateway

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/agentcloud/agentcloud/internal/config"
)

// glob is a compiled pattern: * matches any run of characters other than
// "/", ** any run at all; everything else is literal. Patterns without a
// star compare exactly. Matching is linear (RE2).
type glob struct {
	exact string
	re    *regexp.Regexp
}

func compileGlob(p string) (glob, error) {
	if !utf8.ValidString(p) {
		return glob{}, fmt.Errorf("pattern %q is not UTF-8", p)
	}
	if !strings.Contains(p, "*") {
		return glob{exact: p}, nil
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); {
		switch {
		case strings.HasPrefix(p[i:], "**"):
			b.WriteString(".*")
			i += 2
		case p[i] == '*':
			b.WriteString("[^/]*")
			i++
		default:
			j := i
			for j < len(p) && p[j] != '*' {
				j++
			}
			b.WriteString(regexp.QuoteMeta(p[i:j]))
			i = j
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return glob{}, fmt.Errorf("pattern %q: %w", p, err)
	}
	return glob{re: re}, nil
}

func (g glob) match(s string) bool {
	if g.re == nil {
		return s == g.exact
	}
	return g.re.MatchString(s)
}

type globs []glob

// any reports whether the list is empty (matches everything) or one
// pattern matches s.
func (gs globs) any(s string) bool {
	if len(gs) == 0 {
		return true
	}
	for _, g := range gs {
		if g.match(s) {
			return true
		}
	}
	return false
}

func compileGlobs(ps []string) (globs, error) {
	out := make(globs, 0, len(ps))
	for _, p := range ps {
		g, err := compileGlob(p)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

// attrs are the request's properties that flow schemas and rate limits
// match on.
type attrs struct {
	id              Identity
	method, path    string
	mcpMethod, tool string
}

// matcher is a compiled config.FlowMatch.
type matcher struct {
	kinds                                   []Kind
	methods                                 []string
	identities, signers, paths, mcpm, tools globs
}

func compileMatch(m config.FlowMatch) (matcher, error) {
	var out matcher
	for _, k := range m.Kinds {
		out.kinds = append(out.kinds, Kind(k))
	}
	out.methods = m.Methods
	var err error
	for _, c := range []struct {
		dst *globs
		src []string
	}{{&out.identities, m.Identities}, {&out.signers, m.Signers}, {&out.paths, m.Paths}, {&out.mcpm, m.MCPMethods}, {&out.tools, m.Tools}} {
		if *c.dst, err = compileGlobs(c.src); err != nil {
			return matcher{}, err
		}
	}
	return out, nil
}

func (m *matcher) matches(a *attrs) bool {
	if len(m.kinds) > 0 {
		ok := false
		for _, k := range m.kinds {
			if k == a.id.Kind {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(m.methods) > 0 {
		ok := false
		for _, x := range m.methods {
			if x == a.method {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(m.mcpm) > 0 && (a.mcpMethod == "" || !m.mcpm.any(a.mcpMethod)) {
		return false
	}
	if len(m.tools) > 0 && (a.tool == "" || !m.tools.any(a.tool)) {
		return false
	}
	if len(m.signers) > 0 && (a.id.Signer == "" || !m.signers.any(a.id.Signer)) {
		return false
	}
	return m.identities.any(a.id.ID) && m.paths.any(a.path)
}

// matchers is a list of alternatives: none matches everything.
type matchers []matcher

func compileMatches(ms []config.FlowMatch) (matchers, error) {
	out := make(matchers, 0, len(ms))
	for _, m := range ms {
		c, err := compileMatch(m)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (ms matchers) matches(a *attrs) bool {
	if len(ms) == 0 {
		return true
	}
	for i := range ms {
		if ms[i].matches(a) {
			return true
		}
	}
	return false
}

// schema is a compiled flow schema.
type schema struct {
	name, level string
	precedence  int
	match       matchers
}

func compileSchemas(in []config.FlowSchema) ([]schema, error) {
	out := make([]schema, 0, len(in))
	for i, s := range in {
		m, err := compileMatches(s.Match)
		if err != nil {
			return nil, fmt.Errorf("flow_schemas[%d]: %w", i, err)
		}
		out = append(out, schema{name: s.Name, level: s.Level, precedence: s.Precedence, match: m})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].precedence < out[j].precedence })
	return out, nil
}
