package api

import (
	"fmt"
	"strconv"
)

// IDKind names one kind of identifier that becomes part of a store key, a
// SPIFFE ID or a URL path. Each kind has one length and character rule,
// listed in IDRules; the router checks every path parameter against its
// kind before a handler runs, and the store refuses over-long keys as a
// backstop, so no route can forget the check.
type IDKind string

// The identifier kinds.
const (
	IDAgent    IDKind = "agent"    // agent name: a DNS label
	IDSession  IDKind = "session"  // session id: a SPIFFE path segment
	IDSandbox  IDKind = "sandbox"  // sandbox id
	IDSecret   IDKind = "secret"   // secret name
	IDApproval IDKind = "approval" // approval id
	IDTool     IDKind = "tool"     // tool name (upstream.tool for registered tools)
	IDUpstream IDKind = "upstream" // registered tool upstream name
	IDProvider IDKind = "provider" // model provider name
	IDPolicy   IDKind = "policy"   // policy id
	IDToken    IDKind = "token"    // token id (jti)
	IDVersion  IDKind = "version"  // agent version
	IDStateKey IDKind = "state-key"
	IDNode     IDKind = "node" // cluster member name
	// IDLedgerEntry is a ledger entry's index (decimal) and IDLedgerHash a
	// ledger entry's leaf hash (64 lowercase hex digits).
	IDLedgerEntry IDKind = "ledger-entry"
	IDLedgerHash  IDKind = "ledger-hash"
	// IDRun is a pipeline run id (internal/pipeline makes them: "run-"
	// and lowercase base32).
	IDRun IDKind = "run"
	// IDTemplate is a sandbox image template's name.
	IDTemplate IDKind = "template"
	// IDSnapshot is a sandbox snapshot id ("snap-" and 20 lowercase hex
	// digits; internal/sandbox/snapshot makes them).
	IDSnapshot IDKind = "snapshot"
	// IDVolume is a named sandbox volume's name (unique per owner).
	IDVolume IDKind = "volume"
)

// IDRule is the documented limit of one identifier kind.
type IDRule struct {
	Kind IDKind
	// Max is the longest value in bytes.
	Max int
	// Chars describes the allowed characters for error messages; Allowed
	// decides. A nil Allowed admits any bytes (the store escapes them).
	Chars   string
	Allowed func(c byte, i int) bool
	// NoDots refuses the values "." and "..", which cannot form a path
	// segment.
	NoDots bool
}

func lowerDigitDash(c byte, i int) bool {
	return c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '-')
}

func segment(c byte, _ int) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

func decimal(c byte, _ int) bool { return c >= '0' && c <= '9' }

func lowerHex(c byte, _ int) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

// runChar admits what a run id is made of, and nothing that would split a
// store subject (the run's events are filed under it).
func runChar(c byte, _ int) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func toolChar(c byte, i int) bool {
	return segment(c, i) || i > 0 && c == '/'
}

// IDRules is the one table of identifier limits.
var IDRules = map[IDKind]IDRule{
	IDAgent:    {IDAgent, 63, "a-z first, then a-z 0-9 -", lowerDigitDash, false},
	IDSession:  {IDSession, 128, "A-Z a-z 0-9 . _ -, not . or ..", segment, true},
	IDSandbox:  {IDSandbox, 64, "A-Z a-z 0-9 . _ -", segment, true},
	IDSecret:   {IDSecret, 128, "A-Z a-z 0-9 . _ -", segment, true},
	IDApproval: {IDApproval, 64, "A-Z a-z 0-9 . _ -", segment, true},
	IDTool:     {IDTool, 192, "A-Z a-z 0-9 . _ - /", toolChar, true},
	IDUpstream: {IDUpstream, 63, "A-Z a-z 0-9 . _ -", segment, true},
	IDProvider: {IDProvider, 63, "A-Z a-z 0-9 . _ -", segment, true},
	IDPolicy:   {IDPolicy, 128, "A-Z a-z 0-9 . _ -", segment, true},
	IDToken:    {IDToken, 128, "A-Z a-z 0-9 . _ -", segment, true},
	IDVersion:  {IDVersion, 64, "A-Z a-z 0-9 . _ -", segment, true},
	IDStateKey: {IDStateKey, 512, "any bytes", nil, false},
	IDNode:     {IDNode, 63, "a-z first, then a-z 0-9 -", lowerDigitDash, false},
	// uint64 has at most 20 digits; a leaf hash is 32 bytes in hex.
	IDLedgerEntry: {IDLedgerEntry, 20, "0-9", decimal, false},
	IDLedgerHash:  {IDLedgerHash, 64, "0-9 a-f", lowerHex, false},
	IDRun:         {IDRun, 64, "a-z 0-9 _ -", runChar, false},
	IDTemplate:    {IDTemplate, 63, "a-z first, then a-z 0-9 -", lowerDigitDash, false},
	IDSnapshot:    {IDSnapshot, 64, "a-z 0-9 _ -", runChar, false},
	IDVolume:      {IDVolume, 63, "a-z first, then a-z 0-9 -", lowerDigitDash, false},
}

// CheckID checks value against the rule of kind and returns nil or a
// KindInvalidID problem naming field.
func CheckID(field string, kind IDKind, value string) *Problem {
	rule, ok := IDRules[kind]
	if !ok {
		return Errorf(KindInternal, "no identifier rule for %q", kind)
	}
	if value == "" {
		return FieldErrorf(KindInvalidID, field, "%s is empty: give 1 to %d characters (%s)", field, rule.Max, rule.Chars)
	}
	if len(value) > rule.Max {
		return FieldErrorf(KindInvalidID, field, "%s is %d bytes long; the limit is %d (%s)", field, len(value), rule.Max, rule.Chars)
	}
	if rule.NoDots && (value == "." || value == "..") {
		return FieldErrorf(KindInvalidID, field, "%s %q cannot be . or ..", field, value)
	}
	if rule.Allowed == nil {
		return nil
	}
	for i := 0; i < len(value); i++ {
		if !rule.Allowed(value[i], i) {
			return FieldErrorf(KindInvalidID, field, "%s has %s at byte %d; allowed: %s (at most %d)",
				field, quoteByte(value[i]), i, rule.Chars, rule.Max)
		}
	}
	return nil
}

// ValidID reports whether value satisfies the rule of kind.
func ValidID(kind IDKind, value string) bool { return CheckID("id", kind, value) == nil }

func quoteByte(c byte) string {
	if c < 0x20 || c >= 0x7f {
		return fmt.Sprintf("byte 0x%02X", c)
	}
	return strconv.QuoteRune(rune(c))
}
