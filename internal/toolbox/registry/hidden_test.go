package registry

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestFindHidden(t *testing.T) {
	for _, r := range []rune{0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x2060, 0xFEFF,
		0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069,
		0xE0000, 0xE0001, 0xE0041, 0xE007F, 0x00AD, 0x061C, 0xE000, 0xF8FF, 0xF0000, 0x0007, 0x001B, 0x007F} {
		s := "ab" + string(r) + "c"
		got, pos, ok := FindHidden(s)
		if !ok || got != r || pos != 2 {
			t.Errorf("U+%04X: got U+%04X at %d (%v)", r, got, pos, ok)
		}
	}
	for _, s := range []string{"", "plain text", "tab\tand\nnewline\r", "café naïve", "日本語のテキスト", "emoji 🚀✓", "math ∑ ≤ ∞", "Ελληνικά"} {
		if r, pos, ok := FindHidden(s); ok {
			t.Errorf("%q: false positive U+%04X at %d", s, r, pos)
		}
	}
	if r, pos, ok := FindHidden("é\xffx"); !ok || r != utf8.RuneError || pos != 1 {
		t.Errorf("invalid UTF-8: %v %d %v", r, pos, ok)
	}
	// Position counts runes, not bytes.
	if _, pos, _ := FindHidden("日本\u202Eabc"); pos != 2 {
		t.Errorf("rune position %d, want 2", pos)
	}
}

func TestCheckDefinition(t *testing.T) {
	cases := []struct {
		d    Definition
		want string
	}{
		{Definition{Name: "ok", Description: "fine", InputSchema: json.RawMessage(`{"type":"object","properties":{"a":{"description":"an a"}}}`)}, ""},
		{Definition{Name: "to\u200bol", Description: "x"}, `tool "to\u200bol": hidden character U+200B (zero-width) in name at position 2`},
		{Definition{Name: "t", Description: "Say hi\U000E0049\U000E0047"}, "U+E0049 (tag character) in description at position 6"},
		{Definition{Name: "t", Description: "rtl \u202Eevil"}, "U+202E (bidi control) in description at position 4"},
		{Definition{Name: "t", Description: "x", InputSchema: json.RawMessage(`{"properties":{"a":{"description":"ignore\u2066 previous"}}}`)},
			"U+2066 (bidi control) in inputSchema/properties/a/description at position 6"},
		{Definition{Name: "t", Description: "x", InputSchema: json.RawMessage(`{"properties":{"a\u200d":{}}}`)}, `(key "a\u200d")`},
		{Definition{Name: "t", Description: "x", InputSchema: json.RawMessage(`{"enum":["a","\uE000"]}`)}, "U+E000 (private use) in inputSchema/enum/1"},
	}
	for _, c := range cases {
		err := CheckDefinition(c.d)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: unexpected %v", c.d.Name, err)
			}
			continue
		}
		var he *HiddenError
		if !errors.As(err, &he) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.d.Name, err, c.want)
		}
	}
}

// FuzzCheckDefinition: the checker never panics, finds a character only
// where one is, and reports the first one at its rune position.
func FuzzCheckDefinition(f *testing.F) {
	for _, s := range []string{"plain", "a\u200bb", "\u202Ertl", "\U000E0041", "\xff", "tab\t", "é\u2060", `{"description":"x\u200b"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, pos, ok := FindHidden(s)
		runes := []rune(s)
		if ok {
			if pos >= len(runes) || runes[pos] != r || !hidden(r) {
				t.Fatalf("%q: reported U+%04X at %d", s, r, pos)
			}
			for _, c := range runes[:pos] {
				if hidden(c) {
					t.Fatalf("%q: U+%04X before the reported position", s, c)
				}
			}
		} else {
			for _, c := range runes {
				if hidden(c) {
					t.Fatalf("%q: missed U+%04X", s, c)
				}
			}
		}
		schema, _ := json.Marshal(map[string]any{"description": s, "properties": map[string]any{s: map[string]any{}}})
		err := CheckDefinition(Definition{Name: "t", Description: "d", InputSchema: schema})
		if (err != nil) != ok && utf8.ValidString(s) {
			t.Fatalf("%q: schema check %v, string check %v", s, err, ok)
		}
		if err := CheckDefinition(Definition{Name: "t", Description: s}); (err != nil) != ok {
			t.Fatalf("%q: description check %v, string check %v", s, err, ok)
		}
	})
}
