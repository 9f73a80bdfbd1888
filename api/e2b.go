package api

import "time"

// E2BKeyRequest asks for an API key of the E2B-compatible API
// (/e2b/...) for the caller.
type E2BKeyRequest struct {
	// Name is a label for the key, shown in listings (optional).
	Name string `json:"name,omitempty"`
}

// E2BKey is an API key of the E2B-compatible API: "e2b_" and 40 hex
// digits, sent as X-API-Key. It acts as the principal it was issued to.
// Key is shown once, at creation; only its hash is stored.
type E2BKey struct {
	Key       string    `json:"key,omitempty"`
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	Principal string    `json:"principal"`
	Created   time.Time `json:"created"`
}

// E2BKeyList lists E2B API keys (without their secret part).
type E2BKeyList struct {
	Keys []E2BKey `json:"keys"`
}
