package registry

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// HiddenError reports a character in a tool definition that a person
// reading it would not see but a model would: zero-width characters, bidi
// controls, tag characters and other format (Cf) or private-use (Co) code
// points, plus invalid UTF-8 and control characters other than tab and
// newline.
type HiddenError struct {
	Tool  string // the tool's name as the upstream serves it
	Field string // "name", "description", or a JSON pointer into the input schema
	Rune  rune   // utf8.RuneError for invalid UTF-8
	Pos   int    // 0-based rune position within the field's text
}

func (e *HiddenError) Error() string {
	what := fmt.Sprintf("hidden character U+%04X (%s)", e.Rune, hiddenKind(e.Rune))
	if e.Rune == utf8.RuneError {
		what = "invalid UTF-8"
	}
	return fmt.Sprintf("tool %q: %s in %s at position %d", e.Tool, what, e.Field, e.Pos)
}

// hidden reports whether r must not appear in a tool's name or description.
func hidden(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r':
		return false
	case r >= 0x200B && r <= 0x200F, r == 0x2060, r == 0xFEFF: // zero-width, LRM/RLM, word joiner, BOM
		return true
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069: // bidi embeddings, overrides, isolates
		return true
	case r >= 0xE0000 && r <= 0xE007F: // tag characters
		return true
	case r == utf8.RuneError:
		return true
	}
	return unicode.In(r, unicode.Cf, unicode.Co, unicode.Cc)
}

func hiddenKind(r rune) string {
	switch {
	case r >= 0x200B && r <= 0x200F, r == 0x2060, r == 0xFEFF:
		return "zero-width"
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069:
		return "bidi control"
	case r >= 0xE0000 && r <= 0xE007F:
		return "tag character"
	case unicode.Is(unicode.Co, r):
		return "private use"
	case unicode.Is(unicode.Cc, r):
		return "control character"
	}
	return "invisible format character"
}

// FindHidden returns the first hidden character in s and its rune position.
func FindHidden(s string) (r rune, pos int, found bool) {
	i := 0
	for off := 0; off < len(s); {
		c, size := utf8.DecodeRuneInString(s[off:])
		if hidden(c) {
			return c, i, true
		}
		off += size
		i++
	}
	return 0, 0, false
}

// CheckDefinition checks a tool's name, description and every string in its
// input schema that a model reads (descriptions, titles, property names,
// enum values): the first hidden character found is returned as a
// *HiddenError.
func CheckDefinition(d Definition) error {
	if d.Name == "" || len(d.Name) > 128 || strings.ContainsAny(d.Name, " /") {
		return fmt.Errorf("tool %q: a tool name must be 1-128 characters without spaces or '/'", d.Name)
	}
	if r, pos, ok := FindHidden(d.Name); ok {
		return &HiddenError{Tool: d.Name, Field: "name", Rune: r, Pos: pos}
	}
	if r, pos, ok := FindHidden(d.Description); ok {
		return &HiddenError{Tool: d.Name, Field: "description", Rune: r, Pos: pos}
	}
	if len(d.InputSchema) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(d.InputSchema, &v); err != nil {
		return fmt.Errorf("tool %q: input schema is not JSON: %w", d.Name, err)
	}
	return checkValue(d.Name, "inputSchema", v)
}

// checkValue walks a decoded JSON value; every object key and string value
// is checked (schemas carry text in descriptions, titles, enums, examples
// and property names).
func checkValue(tool, ptr string, v any) error {
	switch x := v.(type) {
	case string:
		if r, pos, ok := FindHidden(x); ok {
			return &HiddenError{Tool: tool, Field: ptr, Rune: r, Pos: pos}
		}
	case []any:
		for i, e := range x {
			if err := checkValue(tool, fmt.Sprintf("%s/%d", ptr, i), e); err != nil {
				return err
			}
		}
	case map[string]any:
		for _, k := range sortedKeys(x) {
			if r, pos, ok := FindHidden(k); ok {
				return &HiddenError{Tool: tool, Field: ptr + " (key " + fmt.Sprintf("%q", k) + ")", Rune: r, Pos: pos}
			}
			if err := checkValue(tool, ptr+"/"+k, x[k]); err != nil {
				return err
			}
		}
	}
	return nil
}
