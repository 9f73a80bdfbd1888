package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"strings"
)

// LogCursor is where a reader of an agent's log stream stands on each
// member of a cluster: each member numbers its own entries (LogEntry.Seq),
// so a position across members is one Seq per member. It travels as an
// opaque token (EncodeLogCursor): the cursor query parameter of
// GET /v1/agents/{agent}/logs and LogList.Cursor.
//
// The token is validated, not signed: a position grants nothing (every
// member checks the caller's right to read the agent's stream on every
// read), so a hand-made cursor can only choose where a reader starts in
// entries it may read anyway. What is checked is that it is well formed,
// names the agent it is used for and stays small (docs/RATIONALE.md).
type LogCursor struct {
	Agent string
	// Pos maps a member's name to the Seq of the last entry read there.
	Pos map[string]uint64
}

// Limits of a log cursor.
const (
	// MaxLogCursorMembers is the most members one cursor names.
	MaxLogCursorMembers = 64
	// MaxLogCursorLen is the longest token in bytes.
	MaxLogCursorLen = 8 << 10
)

// logCursorPrefix starts every token (its format's version).
const logCursorPrefix = "c1."

// logCursorWire is a token's JSON before base64url.
type logCursorWire struct {
	Agent string            `json:"a"`
	Pos   map[string]uint64 `json:"p"`
}

// EncodeLogCursor returns c's token. Members are in name order (JSON
// object keys are sorted), so equal cursors have equal tokens.
func EncodeLogCursor(c LogCursor) string {
	pos := c.Pos
	if pos == nil {
		pos = map[string]uint64{}
	}
	b, _ := json.Marshal(logCursorWire{Agent: c.Agent, Pos: pos})
	return logCursorPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// DecodeLogCursor reads the token s for agent's stream. Anything but a
// well-formed token of this agent naming at most MaxLogCursorMembers valid
// member names is a 400 problem on the field cursor.
func DecodeLogCursor(agent, s string) (LogCursor, error) {
	bad := func(why string) (LogCursor, error) {
		return LogCursor{}, FieldErrorf(KindInvalidQuery, "cursor", "cursor: %s; pass the cursor of an earlier answer of this agent's logs, or none to start", why)
	}
	if len(s) > MaxLogCursorLen {
		return bad("too long")
	}
	rest, ok := strings.CutPrefix(s, logCursorPrefix)
	if !ok {
		return bad("not a log cursor")
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil {
		return bad("not a log cursor")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var w logCursorWire
	if err := dec.Decode(&w); err != nil || w.Pos == nil {
		return bad("damaged")
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("damaged")
	}
	if w.Agent != agent {
		return bad("it belongs to another agent's logs")
	}
	if len(w.Pos) > MaxLogCursorMembers {
		return bad("it names too many members")
	}
	for node := range w.Pos {
		if !cursorMember(node) {
			return bad("it names a member that cannot exist")
		}
	}
	return LogCursor(w), nil
}

// cursorMember reports whether node can name a member: what config's
// node_id admits (a cluster member's name is stricter, IDNode), at most
// 128 bytes.
func cursorMember(node string) bool {
	if node == "" || len(node) > 128 {
		return false
	}
	for i := 0; i < len(node); i++ {
		if !segment(node[i], i) || node[i] == '.' {
			return false
		}
	}
	return true
}
