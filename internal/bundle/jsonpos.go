package bundle

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A position index for a JSON document that is already known to be valid:
// where each value near the top starts (so problems can name a line and
// column) and which object keys appear twice (encoding/json silently keeps
// the last one; a strict manifest rejects them).

// posDepth is how deep value positions are recorded: top-level fields,
// their elements, limits.* and rollout.steps[i].* are all the manifest
// needs.
const posDepth = 4

type dupKey struct {
	path string
	at   int
}

type jsonIndex struct {
	data []byte
	dec  *json.Decoder
	pos  map[string]int // JSON path -> byte offset of the value
	dups []dupKey
	keys map[string][]string // object path -> its keys in document order, for the top two levels
}

// indexJSON walks data, which must be valid JSON.
func indexJSON(data []byte) *jsonIndex {
	ix := &jsonIndex{data: data, pos: map[string]int{}, keys: map[string][]string{}}
	ix.dec = json.NewDecoder(bytes.NewReader(data))
	ix.dec.UseNumber()
	_ = ix.value("", 0) // data is valid JSON, so this cannot fail
	return ix
}

func (ix *jsonIndex) value(path string, depth int) error {
	start := ix.skip(int(ix.dec.InputOffset()))
	if depth <= posDepth {
		ix.pos[path] = start
	}
	tok, err := ix.dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for ix.dec.More() {
			at := ix.skip(int(ix.dec.InputOffset()))
			kt, err := ix.dec.Token()
			if err != nil {
				return err
			}
			key, _ := kt.(string)
			child := childPath(path, key)
			if seen[key] {
				ix.dups = append(ix.dups, dupKey{child, at})
			} else if depth < posDepth {
				ix.keys[path] = append(ix.keys[path], key)
			}
			seen[key] = true
			if err := ix.value(child, depth+1); err != nil {
				return err
			}
		}
		_, err = ix.dec.Token()
	case json.Delim('['):
		for i := 0; ix.dec.More(); i++ {
			if err := ix.value(path+"["+strconv.Itoa(i)+"]", depth+1); err != nil {
				return err
			}
		}
		_, err = ix.dec.Token()
	}
	return err
}

// skip moves past whitespace and the separators a Decoder has not yet
// consumed, to the first byte of the next token.
func (ix *jsonIndex) skip(off int) int {
	for off < len(ix.data) {
		switch ix.data[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
		default:
			return off
		}
	}
	return off
}

// at returns the 1-based line and column of the value at path, or zeros.
func (ix *jsonIndex) at(path string) (line, col int) {
	if ix == nil {
		return 0, 0
	}
	off, ok := ix.pos[path]
	if !ok {
		return 0, 0
	}
	return lineCol(ix.data, off)
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// childPath names a member of an object: "limits.cpu_ms", or
// `env["odd key"]` when the key is not an identifier.
func childPath(parent, key string) string {
	if !identRE.MatchString(key) {
		return parent + "[" + strconv.Quote(key) + "]"
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// lineCol converts a byte offset into a 1-based line and character column.
func lineCol(data []byte, off int) (line, col int) {
	off = min(max(off, 0), len(data))
	before := data[:off]
	line = bytes.Count(before, []byte{'\n'}) + 1
	lineStart := bytes.LastIndexByte(before, '\n') + 1
	col = utf8.RuneCount(before[lineStart:]) + 1
	return line, col
}

// syntaxPos locates a *json.SyntaxError, whose Offset counts the bytes read
// up to and including the offending one.
func syntaxPos(data []byte, e *json.SyntaxError) (line, col int) {
	off := int(e.Offset)
	if off > 0 && off <= len(data) && !strings.HasPrefix(e.Error(), "json: unexpected end") {
		off--
	}
	return lineCol(data, off)
}
