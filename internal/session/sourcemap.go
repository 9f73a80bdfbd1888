package session

import (
	"strconv"
	"strings"
	"sync"

	"github.com/agentcloud/agentcloud/internal/bundle"
)

// sourceMap is a version's source map: the built entry's ENTRY.map (the
// CLI writes one when it bundles TypeScript, internal/bundle/jsbuild),
// decoded on the first stack that needs it and kept with the version.
// Every backtrace the platform shows, an uncaught error's problem and the
// log entries of it and of console output, goes through mapStack: the
// entry's frames name the agent's source, the runtime's are marked or
// dropped (bundle.MapStack). e.stack inside the agent keeps the bundle's
// places (docs/RATIONALE.md).
type sourceMap struct {
	entry string // the built entry's path in the bundle

	once sync.Once
	raw  []byte            // nil: the version has no map; dropped once decoded
	sm   *bundle.SourceMap // nil if raw does not decode
}

// Bounds on the backtrace an uncaught error's log entry carries; the
// frames past them are counted, not shown.
const (
	problemFrames     = 32
	problemStackBytes = 4 << 10
)

func newSourceMap(b *bundle.Bundle) *sourceMap {
	return &sourceMap{entry: b.Entry, raw: b.Files[b.Entry+".map"]}
}

// decoded is the decoded map, or nil.
func (s *sourceMap) decoded() *bundle.SourceMap {
	s.once.Do(func() {
		if s.raw != nil {
			s.sm, _ = bundle.ParseSourceMap(s.raw) // a bad map only costs the mapping
			s.raw = nil
		}
	})
	return s.sm
}

// mapStack is text with its backtraces made readable (bundle.MapStack).
func (s *sourceMap) mapStack(text string) string {
	if s == nil {
		return (*bundle.SourceMap)(nil).MapStack(text, "")
	}
	var sm *bundle.SourceMap
	if strings.Contains(text, s.entry+":") { // no entry frame: no need to decode
		sm = s.decoded()
	}
	return sm.MapStack(text, s.entry)
}

// where says where an uncaught error was thrown: " (at FILE:LINE:COL)" of
// the first frame outside the runtime of stack, a backtrace mapStack
// mapped (the agent's own source when the version has a source map, else
// the bundle's files); "" when the
// backtrace names no agent code. It goes into the problem, which any
// caller of the agent may read: the rest of the backtrace (logFrames) goes
// only to the owner's log stream.
func where(stack string) string {
	if stack == "" {
		return ""
	}
	if at := bundle.FirstFrame(stack); at != "" {
		return " (at " + at + ")"
	}
	return ""
}

// logFrames is an uncaught error's backtrace for the log stream: the frames of
// stack (mapped, as where's) one a line; "" when it names no agent
// code. At most problemFrames frames and problemStackBytes bytes are
// kept; the rest are counted.
func logFrames(stack string) string {
	if stack == "" || bundle.FirstFrame(stack) == "" {
		return ""
	}
	var b strings.Builder
	shown, more := 0, 0
	for _, l := range strings.Split(stack, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if shown == problemFrames || b.Len()+1+len(l) > problemStackBytes {
			more++
			continue
		}
		b.WriteString("\n" + l)
		shown++
	}
	if more > 0 {
		b.WriteString("\n    ... " + strconv.Itoa(more) + " more")
	}
	return b.String()
}
