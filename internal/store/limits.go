package store

import (
	"fmt"

	"github.com/agentcloud/agentcloud/api"
)

// MaxKeyLen is the longest KV key, log subject, subject filter or blob name
// the store accepts, in bytes after escaping. NATS closes a client
// connection whose protocol line passes 4,096 bytes (its max_control_line);
// a key travels in such a line with the bucket name, the API prefix and a
// reply inbox, so the store keeps keys well below that. Every operation
// checks it here, before anything is sent, so no caller can break the
// connection with a long name.
const MaxKeyLen = 2048

// checkKey validates a KV key or subject: 1 to MaxKeyLen bytes of
// [A-Za-z0-9_=/-] tokens separated by single dots. wildcard admits the
// NATS wildcards * and > (filters only).
func checkKey(what, key string, wildcard bool) error {
	if key == "" {
		return invalid(what, key, "is empty")
	}
	if len(key) > MaxKeyLen {
		return invalid(what, key, fmt.Sprintf("is %d bytes; the limit is %d", len(key), MaxKeyLen))
	}
	prev := byte('.')
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '=', c == '/':
		case c == '.':
			if prev == '.' {
				return invalid(what, key, fmt.Sprintf("has an empty token at byte %d", i))
			}
		case wildcard && (c == '*' || c == '>'):
		default:
			return invalid(what, key, fmt.Sprintf("has byte 0x%02X at %d (build keys with store.Key)", c, i))
		}
		prev = c
	}
	if prev == '.' {
		return invalid(what, key, "ends with a dot")
	}
	return nil
}

// checkName validates a blob name or a log subject (which may hold any
// printable byte but a space) by length.
func checkName(what, name string) error {
	if name == "" {
		return invalid(what, name, "is empty")
	}
	if len(name) > MaxKeyLen {
		return invalid(what, name, fmt.Sprintf("is %d bytes; the limit is %d", len(name), MaxKeyLen))
	}
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] == 0x7f {
			return invalid(what, name, fmt.Sprintf("has byte 0x%02X at %d", name[i], i))
		}
	}
	return nil
}

// invalid is a 400 problem (so an API handler that passes it on answers
// 4xx, not 500) that is also ErrInvalid. The offending value is shortened:
// errors must not echo kilobytes back.
func invalid(what, key, why string) error {
	shown := key
	if len(shown) > 64 {
		shown = shown[:64] + "…"
	}
	return api.FieldErrorf(api.KindInvalidID, what, "%s %q %s: %w", what, shown, why, ErrInvalid)
}
