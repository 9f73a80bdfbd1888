package config

import (
	"strconv"
	"time"
)

// WebSocketConfig bounds the WebSockets sessions hold (session.SocketLimits).
type WebSocketConfig struct {
	// MaxMessageBytes caps one message either way; a larger one from a
	// client closes its socket with 1009. session_max_body_bytes caps it
	// too (a message is a body into or out of a session).
	MaxMessageBytes int64 `json:"max_message_bytes"`
	// PerSession and PerTenant cap the open sockets of one session and of
	// all sessions of one tenant (the agents' owner).
	PerSession int `json:"per_session"`
	PerTenant  int `json:"per_tenant"`
	// IdleTimeout closes a socket no message crossed for this long.
	IdleTimeout Duration `json:"idle_timeout"`
}

func defaultWebSockets() WebSocketConfig {
	return WebSocketConfig{MaxMessageBytes: 1 << 20, PerSession: 32, PerTenant: 1024, IdleTimeout: Duration(5 * time.Minute)}
}

// loadWebSocketEnv merges the AGENTCLOUD_WEBSOCKET_* variables.
func (c *Config) loadWebSocketEnv(lookup func(string) (string, bool)) Errors {
	var errs Errors
	integer := func(name string, set func(int64)) {
		if v, ok := lookup("AGENTCLOUD_WEBSOCKET_" + name); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				errs = append(errs, FieldError{"AGENTCLOUD_WEBSOCKET_" + name, v, "want a whole number"})
			}
			set(n)
		}
	}
	integer("MAX_MESSAGE_BYTES", func(n int64) { c.WebSockets.MaxMessageBytes = n })
	integer("PER_SESSION", func(n int64) { c.WebSockets.PerSession = int(n) })
	integer("PER_TENANT", func(n int64) { c.WebSockets.PerTenant = int(n) })
	if v, ok := lookup("AGENTCLOUD_WEBSOCKET_IDLE_TIMEOUT"); ok {
		if err := c.WebSockets.IdleTimeout.Set(v); err != nil {
			errs = append(errs, FieldError{"AGENTCLOUD_WEBSOCKET_IDLE_TIMEOUT", v, err.Error()})
		}
	}
	return errs
}

// validateWebSockets checks the websockets settings.
func (c Config) validateWebSockets() Errors {
	var errs Errors
	add := func(field, value, detail string) { errs = append(errs, FieldError{field, value, detail}) }
	w := c.WebSockets
	if n := w.MaxMessageBytes; n < 125 || n > 1<<30 {
		add("websockets.max_message_bytes", strconv.FormatInt(n, 10), "want from 125 to 1073741824 bytes (session_max_body_bytes caps it too)")
	}
	if n := w.PerSession; n < 1 || n > 10_000 {
		add("websockets.per_session", strconv.Itoa(n), "want from 1 to 10000")
	}
	if n := w.PerTenant; n < w.PerSession || n > 1_000_000 {
		add("websockets.per_tenant", strconv.Itoa(n), "want from websockets.per_session to 1000000")
	}
	if d := w.IdleTimeout.D(); d < time.Second || d > 24*time.Hour {
		add("websockets.idle_timeout", w.IdleTimeout.String(), "want a duration from 1s to 24h")
	}
	return errs
}
