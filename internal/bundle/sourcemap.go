package bundle

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// SourceMap is a decoded source map (version 3, as esbuild writes it next
// to a built entry: ENTRY.map): for a place in the generated file, the
// place in the agent's source it came from. Only the mappings and source
// names are kept; sourcesContent is ignored.
type SourceMap struct {
	sources []string
	lines   [][]segment // by generated line, 0-based; each sorted by column
}

// segment maps a generated column to a source place, all 0-based.
type segment struct {
	genCol, src, line, col int32
}

// ErrBadSourceMap: a source map that cannot be decoded.
var ErrBadSourceMap = errors.New("bad source map")

// maxSegments bounds the mappings of one map: every segment counts, empty
// or not (an empty one costs a step of the decode), and so does every
// line. Decoded, a mapping takes 16 bytes and a line 24.
const maxSegments = 4 << 20

// maxLines bounds the generated lines of one map (a line per 32 bytes of
// the largest bundle).
const maxLines = 1 << 20

// ParseSourceMap decodes a version 3 source map (no index maps).
func ParseSourceMap(data []byte) (*SourceMap, error) {
	var raw struct {
		Version    int      `json:"version"`
		Sources    []string `json:"sources"`
		SourceRoot string   `json:"sourceRoot"`
		Mappings   string   `json:"mappings"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSourceMap, err)
	}
	if raw.Version != 3 {
		return nil, fmt.Errorf("%w: version %d, want 3", ErrBadSourceMap, raw.Version)
	}
	sm := &SourceMap{sources: raw.Sources}
	if raw.SourceRoot != "" {
		for i, s := range sm.sources {
			sm.sources[i] = strings.TrimSuffix(raw.SourceRoot, "/") + "/" + s
		}
	}
	var st [4]int32 // source, line, col carry across lines; genCol resets
	total := 0
	for rest, more := raw.Mappings, true; more; {
		var line string
		line, rest, more = strings.Cut(rest, ";")
		if len(sm.lines) == maxLines {
			return nil, fmt.Errorf("%w: more than %d lines", ErrBadSourceMap, maxLines)
		}
		if total++; total > maxSegments {
			return nil, fmt.Errorf("%w: more than %d lines and mappings", ErrBadSourceMap, maxSegments)
		}
		var segs []segment
		st0 := int32(0)
		for segsLeft := true; segsLeft; {
			var s string
			s, line, segsLeft = strings.Cut(line, ",")
			if s == "" {
				if segsLeft {
					if total++; total > maxSegments {
						return nil, fmt.Errorf("%w: more than %d lines and mappings", ErrBadSourceMap, maxSegments)
					}
				}
				continue
			}
			vals, err := decodeVLQ(s)
			if err != nil {
				return nil, err
			}
			if total++; total > maxSegments {
				return nil, fmt.Errorf("%w: more than %d lines and mappings", ErrBadSourceMap, maxSegments)
			}
			st0 += vals[0]
			if len(vals) < 4 {
				continue // a generated column with no source
			}
			st[1] += vals[1]
			st[2] += vals[2]
			st[3] += vals[3]
			if st0 < 0 || st[1] < 0 || int(st[1]) >= len(sm.sources) || st[2] < 0 || st[3] < 0 {
				return nil, fmt.Errorf("%w: mapping %q out of range", ErrBadSourceMap, s)
			}
			segs = append(segs, segment{genCol: st0, src: st[1], line: st[2], col: st[3]})
		}
		if len(segs) > 1 {
			slices.SortStableFunc(segs, func(a, b segment) int { return cmp.Compare(a.genCol, b.genCol) })
		}
		sm.lines = append(sm.lines, segs)
	}
	return sm, nil
}

const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// decodeVLQ decodes one segment: 1, 4 or 5 base64 VLQ values.
func decodeVLQ(s string) ([]int32, error) {
	var out []int32
	var v, shift int64
	for i := 0; i < len(s); i++ {
		d := strings.IndexByte(b64, s[i])
		if d < 0 {
			return nil, fmt.Errorf("%w: %q is not base64", ErrBadSourceMap, s[i])
		}
		v |= int64(d&31) << shift
		if d&32 != 0 {
			if shift += 5; shift > 30 {
				return nil, fmt.Errorf("%w: value too large in %q", ErrBadSourceMap, s)
			}
			continue
		}
		n := v >> 1
		if v&1 != 0 {
			n = -n
		}
		out = append(out, int32(n))
		v, shift = 0, 0
	}
	if shift != 0 {
		return nil, fmt.Errorf("%w: truncated segment %q", ErrBadSourceMap, s)
	}
	if n := len(out); n != 1 && n != 4 && n != 5 {
		return nil, fmt.Errorf("%w: segment %q has %d fields", ErrBadSourceMap, s, n)
	}
	return out, nil
}

// Lookup maps a 1-based line and column of the generated file to the
// source file and its 1-based line and column, or reports false.
func (sm *SourceMap) Lookup(line, col int) (source string, srcLine, srcCol int, ok bool) {
	if sm == nil || line < 1 || line > len(sm.lines) {
		return "", 0, 0, false
	}
	segs := sm.lines[line-1]
	i := sort.Search(len(segs), func(i int) bool { return int(segs[i].genCol) > col-1 }) - 1
	if i < 0 {
		if len(segs) == 0 {
			return "", 0, 0, false
		}
		i = 0
	}
	s := segs[i]
	return sm.sources[s.src], int(s.line) + 1, int(s.col) + 1, true
}
