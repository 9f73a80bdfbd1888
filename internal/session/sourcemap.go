package session

import (
	"sync"

	"github.com/agentcloud/agentcloud/internal/bundle"
)

// sourceMap is a version's source map: the built entry's ENTRY.map (the
// CLI writes one when it bundles TypeScript, internal/bundle/jsbuild),
// decoded on the first uncaught error and kept with the version.
type sourceMap struct {
	entry string // the built entry's path in the bundle
	raw   []byte // nil: the version has no map

	once sync.Once
	sm   *bundle.SourceMap // nil if raw does not decode
}

func newSourceMap(b *bundle.Bundle) *sourceMap {
	return &sourceMap{entry: b.Entry, raw: b.Files[b.Entry+".map"]}
}

// where says where an uncaught error was thrown, as " (at FILE:LINE:COL)"
// in the agent's own source when the version has a source map, else in the
// bundle's files; "" when the backtrace names no agent code.
func (s *sourceMap) where(stack string) string {
	if s == nil || stack == "" {
		return ""
	}
	if s.raw != nil {
		s.once.Do(func() {
			s.sm, _ = bundle.ParseSourceMap(s.raw) // a bad map only costs the mapping
			s.raw = nil
		})
	}
	if s.sm != nil {
		stack = s.sm.MapStack(stack, s.entry)
	}
	at := bundle.FirstFrame(stack)
	if at == "" {
		return ""
	}
	return " (at " + at + ")"
}
