package bundle

import (
	"path"
	"regexp"
	"strconv"
	"strings"
)

// Bounds on the work MapStack does for one text, which may come from agent
// code (an error's stack is the agent's to set, a console line is any
// text): only the first MaxStackScan bytes are looked at, at most
// MaxStackFrames frame lines are rewritten, and a source name longer than
// maxSourceName is not used (a frame keeps its bundle place). The rest of
// the text is kept as it is.
const (
	MaxStackScan   = 64 << 10
	MaxStackFrames = 256
	maxSourceName  = 512
)

// RuntimePlace replaces the place of a frame of the runtime's own code.
const RuntimePlace = "agentcloud runtime"

// frameRE matches a QuickJS backtrace frame, "at NAME (FILE:LINE:COL)" or
// "at FILE:LINE:COL", at the end of a line; what precedes "at" is kept (a
// console line may print a stack after other text).
var frameRE = regexp.MustCompile(`^(.*?\bat (?:.*? \()?)([^():]+):(\d+):(\d+)(\)?)\s*$`)

// runtimeRE matches a frame of the runtime's own code: its files are named
// "agentcloud:NAME" (prelude.js is "agentcloud:prelude").
var runtimeRE = regexp.MustCompile(`^(.*?\bat )(?:(.*?) \()?agentcloud:[^()\s]*(\))?\s*$`)

// MapStack rewrites the backtraces in text (QuickJS's "    at NAME
// (FILE:LINE:COL)" lines; text may hold other lines, or several
// backtraces, as a console line does) for the agent's author:
//
//   - a frame in file, the built entry, names the place in the agent's
//     source sm gives, as a path relative to the bundle root (a nil sm, or
//     a place it does not map, keeps the frame as it is);
//   - a frame of the runtime's own code loses its place, which changes
//     with every release and is of no use to the author, and is marked
//     "at NAME (agentcloud runtime)": it says which runtime function the
//     agent called. The runtime frames that end a backtrace after agent
//     frames, the dispatch that called the handler, are dropped;
//   - other lines are kept as they are.
//
// The work is bounded by MaxStackScan and MaxStackFrames.
func (sm *SourceMap) MapStack(text, file string) string {
	head, tail := text, ""
	if len(text) > MaxStackScan {
		cut := strings.LastIndexByte(text[:MaxStackScan], '\n') + 1
		head, tail = text[:cut], text[cut:]
	}
	if !strings.Contains(head, "at ") {
		return text
	}
	lines := strings.Split(head, "\n")
	out := make([]string, 0, len(lines))
	var pending []string // runtime frames not yet known to precede an agent frame
	agent := false       // the current backtrace has an agent frame
	// end ends a backtrace: its last runtime frames are the dispatch that
	// called the agent when it had agent frames, and are dropped then.
	end := func() {
		if !agent {
			out = append(out, pending...)
		}
		pending, agent = pending[:0], false
	}
	frames := 0
	for i, l := range lines {
		if frames >= MaxStackFrames {
			out = append(append(out, pending...), lines[i:]...)
			pending = nil
			break
		}
		if !strings.Contains(l, "at ") {
			end()
			out = append(out, l)
			continue
		}
		if !strings.HasPrefix(strings.TrimLeft(l, " \t"), "at ") {
			end() // text before a frame starts another backtrace
		}
		if m := runtimeRE.FindStringSubmatch(l); m != nil {
			frames++
			if m[2] == "" {
				pending = append(pending, m[1]+RuntimePlace)
			} else {
				pending = append(pending, m[1]+m[2]+" ("+RuntimePlace+")")
			}
			continue
		}
		m := frameRE.FindStringSubmatch(l)
		switch {
		case m != nil:
			frames++
			out = append(append(out, pending...), sm.mapFrame(m, l, file))
			pending, agent = pending[:0], true
		case strings.HasPrefix(strings.TrimLeft(l, " \t"), "at "): // "at map (native)"
			frames++
			out = append(append(out, pending...), l)
			pending = pending[:0]
		default:
			end()
			out = append(out, l)
		}
	}
	end()
	return strings.Join(out, "\n") + tail
}

// mapFrame is line l, whose frameRE match is m, with its place mapped when
// it is in file and sm maps it.
func (sm *SourceMap) mapFrame(m []string, l, file string) string {
	if sm == nil || m[2] != file {
		return l
	}
	ln, err1 := strconv.Atoi(m[3])
	col, err2 := strconv.Atoi(m[4])
	if err1 != nil || err2 != nil {
		return l // absurd numbers: no place in any map
	}
	src, sl, sc, ok := sm.Lookup(ln, col)
	if !ok || len(src) > maxSourceName {
		return l
	}
	if !strings.HasPrefix(src, "/") && !strings.Contains(src, "://") {
		src = path.Join(path.Dir(file), src) // sources are relative to the map, which sits beside file
	}
	return m[1] + src + ":" + strconv.Itoa(sl) + ":" + strconv.Itoa(sc) + m[5]
}

// FirstFrame returns "FILE:LINE:COL" of the first frame of a QuickJS
// backtrace outside the runtime's own code (file names starting
// "agentcloud:"), or "".
func FirstFrame(stack string) string {
	for _, l := range strings.Split(stack, "\n") {
		m := frameRE.FindStringSubmatch(l)
		if m == nil || strings.HasPrefix(m[2], "agentcloud") {
			continue
		}
		return m[2] + ":" + m[3] + ":" + m[4]
	}
	return ""
}
