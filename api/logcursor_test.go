package api

import (
	"encoding/base64"
	"fmt"
	"maps"
	"strings"
	"testing"
)

func rawCursor(json string) string {
	return logCursorPrefix + base64.RawURLEncoding.EncodeToString([]byte(json))
}

// logCursorCases are malformed or foreign cursors for agent "chatty"; each
// must be refused as a problem on the field cursor.
func logCursorCases() map[string]string {
	many := map[string]uint64{}
	for i := range MaxLogCursorMembers + 1 {
		many[fmt.Sprintf("n%d", i)] = 1
	}
	return map[string]string{
		"empty":           "",
		"no prefix":       "eyJhIjoiY2hhdHR5IiwicCI6e319",
		"other version":   "c2." + strings.TrimPrefix(EncodeLogCursor(LogCursor{Agent: "chatty"}), logCursorPrefix),
		"not base64":      "c1.!!!!",
		"padded base64":   logCursorPrefix + base64.URLEncoding.EncodeToString([]byte(`{"a":"chatty","p":{"n":1}}`)),
		"not JSON":        rawCursor("hello"),
		"unknown field":   rawCursor(`{"a":"chatty","p":{},"admin":true}`),
		"trailing data":   rawCursor(`{"a":"chatty","p":{}}{}`),
		"no positions":    rawCursor(`{"a":"chatty"}`),
		"null positions":  rawCursor(`{"a":"chatty","p":null}`),
		"negative":        rawCursor(`{"a":"chatty","p":{"n0":-1}}`),
		"fraction":        rawCursor(`{"a":"chatty","p":{"n0":1.5}}`),
		"too big":         rawCursor(`{"a":"chatty","p":{"n0":99999999999999999999999}}`),
		"another agent":   EncodeLogCursor(LogCursor{Agent: "other", Pos: map[string]uint64{"n0": 3}}),
		"too many":        EncodeLogCursor(LogCursor{Agent: "chatty", Pos: many}),
		"dotted member":   EncodeLogCursor(LogCursor{Agent: "chatty", Pos: map[string]uint64{"../x": 1}}),
		"empty member":    EncodeLogCursor(LogCursor{Agent: "chatty", Pos: map[string]uint64{"": 1}}),
		"spaced member":   EncodeLogCursor(LogCursor{Agent: "chatty", Pos: map[string]uint64{"n 0": 1}}),
		"long member":     EncodeLogCursor(LogCursor{Agent: "chatty", Pos: map[string]uint64{strings.Repeat("n", 129): 1}}),
		"oversized token": logCursorPrefix + strings.Repeat("A", MaxLogCursorLen),
	}
}

// TestLogCursorClass: a cursor round-trips (equal positions give equal
// tokens); every malformed, foreign or oversized token is a 400 problem
// naming the field cursor, never a panic or a silent start.
func TestLogCursorClass(t *testing.T) {
	c := LogCursor{Agent: "chatty", Pos: map[string]uint64{"n0": 3, "n1": 0, "Host_1": 1 << 63}}
	tok := EncodeLogCursor(c)
	got, err := DecodeLogCursor("chatty", tok)
	if err != nil || got.Agent != "chatty" || !maps.Equal(got.Pos, c.Pos) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if again := EncodeLogCursor(got); again != tok {
		t.Fatalf("tokens differ for equal cursors: %s %s", tok, again)
	}
	if got, err := DecodeLogCursor("chatty", EncodeLogCursor(LogCursor{Agent: "chatty"})); err != nil || len(got.Pos) != 0 {
		t.Fatalf("no positions: %+v %v", got, err)
	}
	for name, s := range logCursorCases() {
		_, err := DecodeLogCursor("chatty", s)
		p := AsProblem(err)
		if p == nil || p.Status != 400 || p.Field != "cursor" || p.Type != KindInvalidQuery.TypeURI() {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzDecodeLogCursor(f *testing.F) {
	f.Add(EncodeLogCursor(LogCursor{Agent: "chatty", Pos: map[string]uint64{"n0": 3}}))
	for _, s := range logCursorCases() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := DecodeLogCursor("chatty", s)
		if err != nil {
			if p := AsProblem(err); p == nil || p.Status != 400 {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		back, err := DecodeLogCursor("chatty", EncodeLogCursor(c))
		if err != nil || !maps.Equal(back.Pos, c.Pos) {
			t.Fatalf("%q: re-encoded %+v %v", s, back, err)
		}
	})
}
