package session

import (
	"errors"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

// Outcome is what one call into a session came to, for the versions'
// health (internal/rollout compares a canary with the stable version).
type Outcome struct {
	Agent   string
	Version string // the digest of the version that ran the call
	// Duration is the call's wall time once the session is active
	// (activation is bounded by the init limits, and would make every new
	// session, so every canary, look slow).
	Duration time.Duration
	// Status is the response's status (0 when the call failed).
	Status int
	// Failed is set for a 5xx response, an exception, a limit kill (CPU,
	// wall, memory) or a crash: the failures a rollout counts.
	Failed bool
	// Kind is the failure's problem kind ("" when the call succeeded).
	Kind api.Kind
}

// Observer sees the outcome of every call that reached a version. Observe
// runs on the call's goroutine after the response is ready: it must be
// quick and must not call back into the Manager.
type Observer interface {
	Observe(o Outcome)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(Outcome)

// Observe calls f.
func (f ObserverFunc) Observe(o Outcome) { f(o) }

// observe reports one call of version digest to the observer, if any.
// Failures before a version ran (bad input, an unknown agent) are not
// reported: they say nothing about the version.
func (m *Manager) observe(agent, digest string, start time.Time, status int, err error) {
	if m.b.Observer == nil || digest == "" {
		return
	}
	o := Outcome{Agent: agent, Version: digest, Duration: time.Since(start), Status: status, Failed: status >= 500}
	if err != nil {
		var p *api.Problem
		o.Failed, o.Kind = true, api.KindInternal
		if errors.As(err, &p) {
			o.Kind = p.Kind()
			o.Failed = failureKind(p.Kind())
		}
	}
	m.b.Observer.Observe(o)
}

// failureKind reports whether a call that ended in a problem of kind k
// counts against the version: its code threw or crashed, or it ran into
// a limit. Problems of the caller's making (a body too large to send) do
// not.
func failureKind(k api.Kind) bool {
	switch k {
	case api.KindTooLarge, api.KindValidation, api.KindInvalidID, api.KindNotFound:
		return false
	}
	return true
}
