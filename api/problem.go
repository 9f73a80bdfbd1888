// Package api holds the wire types of the agentcloud HTTP API and the one list
// of error kinds that every handler answers with. It imports only the standard
// library so that the Go SDK in client/ and any other program can depend on it.
//
// Errors are RFC 9457 problem details ("application/problem+json"). Each kind
// has a stable Type URI and one HTTP status; the mapping lives here and only
// here.
package api

import (
	"errors"
	"fmt"
	"net/http"
)

// ProblemContentType is the media type of an error body.
const ProblemContentType = "application/problem+json"

// TypeBase prefixes every problem Type URI.
const TypeBase = "https://agentcloud.dev/problems/"

// Kind is a stable error kind. Its string form is the last path element of the
// problem Type URI, so clients can switch on it.
type Kind string

// The error kinds. Add a kind here, with its status in kindStatus, before using it.
const (
	KindBadRequest  Kind = "bad-request"
	KindInvalidJSON Kind = "invalid-json"
	KindValidation  Kind = "validation-failed"
	// KindInvalidID: an identifier (in the path, a body or a store key)
	// breaks its documented length or character rule (api.IDRules).
	KindInvalidID Kind = "invalid-identifier"
	// KindInvalidQuery: a query parameter the route does not take, one
	// given twice, of the wrong type, missing when required, or a query
	// string that does not parse.
	KindInvalidQuery     Kind = "invalid-query-parameter"
	KindUnauthenticated  Kind = "unauthenticated"
	KindForbidden        Kind = "forbidden"
	KindNotFound         Kind = "not-found"
	KindMethodNotAllowed Kind = "method-not-allowed"
	KindConflict         Kind = "conflict"
	KindTooLarge         Kind = "payload-too-large"
	KindUnsupportedMedia Kind = "unsupported-media-type"
	KindRateLimited      Kind = "rate-limited"
	KindUnavailable      Kind = "unavailable"
	KindTimeout          Kind = "timeout"
	KindInternal         Kind = "internal"

	KindSessionMemoryExceeded Kind = "session-memory-exceeded"
	KindSessionTimeout        Kind = "session-timeout"
	KindSessionCrashed        Kind = "session-crashed"
	KindAgentError            Kind = "agent-error"
	// KindAgentInitTimeout: the agent's initialisation (module top level,
	// wasm _initialize) ran past its CPU or wall limit at deploy; the
	// previous version stays current.
	KindAgentInitTimeout Kind = "agent-init-timeout"
	// KindAgentResponseTooLarge: the agent's response body is larger than
	// the node's session body limit; it was refused by length, before the
	// host copied it.
	KindAgentResponseTooLarge Kind = "agent-response-too-large"

	// KindSandboxLimit: a sandbox's memory, process or disk limit was hit.
	KindSandboxLimit Kind = "sandbox-limit-exceeded"
	// KindSandboxFailed: the sandbox stopped working (its init or sandbox
	// kernel died, e.g. out of memory) and takes no more exec or file
	// calls; its description says why. Delete it and create a new one.
	KindSandboxFailed Kind = "sandbox-failed"
	// KindInvalidImage: an image archive or directory was refused as a
	// sandbox template (a path out of the tree, a device node, a hard link
	// out of the tree, over the size or layer limits, not an image).
	KindInvalidImage Kind = "invalid-image"

	// KindBudgetExceeded: a model call would exceed the caller's token
	// budget (402: not worth retrying until the budget is raised).
	KindBudgetExceeded Kind = "budget-exceeded"

	// KindOverloaded: the front door shed the request because its
	// priority level has no free seat and no queue room (503, retry after
	// Retry-After).
	KindOverloaded Kind = "overloaded"
	// KindQueueTimeout: the request waited in its priority level's queue
	// for the level's whole queue timeout without getting a seat (503).
	KindQueueTimeout Kind = "queue-timeout"

	// KindPipelineFailed: the deploy's pipeline run failed or was
	// cancelled (a stage's reason says why: failing tests, a policy
	// denial, a rejected review, code that does not initialise); the
	// previous version keeps serving. The run is in the instance field.
	KindPipelineFailed Kind = "pipeline-failed"

	// KindCSRF: a mutating call from the web console's cookie session
	// without its X-CSRF-Token header (or with a wrong one), or a
	// browser's mutating call authenticated by a client certificate
	// outside a console session.
	KindCSRF Kind = "csrf-check-failed"

	// KindBuildFailed: a template build step (template create --run)
	// exited non-zero or did not finish in time; the field names the step
	// (run[i]) and the detail carries its exit code and output tail. No
	// template was made.
	KindBuildFailed Kind = "template-build-failed"
)

var kindStatus = map[Kind]int{
	KindBadRequest:            http.StatusBadRequest,
	KindInvalidJSON:           http.StatusBadRequest,
	KindValidation:            http.StatusUnprocessableEntity,
	KindInvalidID:             http.StatusBadRequest,
	KindInvalidQuery:          http.StatusBadRequest,
	KindUnauthenticated:       http.StatusUnauthorized,
	KindForbidden:             http.StatusForbidden,
	KindNotFound:              http.StatusNotFound,
	KindMethodNotAllowed:      http.StatusMethodNotAllowed,
	KindConflict:              http.StatusConflict,
	KindTooLarge:              http.StatusRequestEntityTooLarge,
	KindUnsupportedMedia:      http.StatusUnsupportedMediaType,
	KindRateLimited:           http.StatusTooManyRequests,
	KindUnavailable:           http.StatusServiceUnavailable,
	KindTimeout:               http.StatusGatewayTimeout,
	KindInternal:              http.StatusInternalServerError,
	KindSessionMemoryExceeded: http.StatusInsufficientStorage,
	KindSessionTimeout:        http.StatusGatewayTimeout,
	KindSessionCrashed:        http.StatusBadGateway,
	KindAgentError:            http.StatusBadGateway,
	KindAgentInitTimeout:      http.StatusUnprocessableEntity,
	KindAgentResponseTooLarge: http.StatusBadGateway,
	KindSandboxLimit:          http.StatusInsufficientStorage,
	KindSandboxFailed:         http.StatusConflict,
	KindInvalidImage:          http.StatusUnprocessableEntity,
	KindBudgetExceeded:        http.StatusPaymentRequired,
	KindOverloaded:            http.StatusServiceUnavailable,
	KindQueueTimeout:          http.StatusServiceUnavailable,
	KindPipelineFailed:        http.StatusUnprocessableEntity,
	KindCSRF:                  http.StatusForbidden,
	KindBuildFailed:           http.StatusUnprocessableEntity,
}

// Kinds returns every known kind, for documentation and tests.
func Kinds() []Kind {
	out := make([]Kind, 0, len(kindStatus))
	for k := range kindStatus {
		out = append(out, k)
	}
	return out
}

// Status is the HTTP status a kind is answered with (500 for an unknown kind).
func (k Kind) Status() int {
	if s, ok := kindStatus[k]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// TypeURI is the problem Type for the kind.
func (k Kind) TypeURI() string { return TypeBase + string(k) }

// Title is a short human summary of the kind.
func (k Kind) Title() string { return http.StatusText(k.Status()) }

// Problem is an RFC 9457 problem details object, and also a Go error.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// RequestID ties the problem to the server's logs.
	RequestID string `json:"request_id,omitempty"`
	// Field names the offending input, when there is one.
	Field string `json:"field,omitempty"`
	// Errors lists several field problems at once (validation).
	Errors []FieldError `json:"errors,omitempty"`
	// Limit names the limit that refused the request: a rate limit
	// policy (as in the RateLimit-Policy header), "queue" or
	// "concurrency" (rate-limited, overloaded, queue-timeout).
	Limit string `json:"limit,omitempty"`
	// PriorityLevel is the traffic class the request was scheduled in.
	PriorityLevel string `json:"priority_level,omitempty"`
	// RetryAfterSeconds repeats the Retry-After header: when to retry.
	RetryAfterSeconds int `json:"retry_after_seconds,omitempty"`

	kind  Kind
	cause error
}

// FieldError is one invalid field.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// Error implements error.
func (p *Problem) Error() string {
	if p.Detail != "" {
		return fmt.Sprintf("%s: %s", p.Kind(), p.Detail)
	}
	return string(p.Kind())
}

// Unwrap returns the cause, if any.
func (p *Problem) Unwrap() error { return p.cause }

// Kind reports the problem's kind, derived from Type when decoded from the wire.
func (p *Problem) Kind() Kind {
	if p.kind != "" {
		return p.kind
	}
	if len(p.Type) > len(TypeBase) && p.Type[:len(TypeBase)] == TypeBase {
		return Kind(p.Type[len(TypeBase):])
	}
	return KindInternal
}

// Errorf makes a problem of the given kind; a %w verb keeps the cause.
func Errorf(k Kind, format string, args ...any) *Problem {
	err := fmt.Errorf(format, args...)
	return &Problem{
		Type: k.TypeURI(), Title: k.Title(), Status: k.Status(),
		Detail: err.Error(), kind: k, cause: errors.Unwrap(err),
	}
}

// FieldErrorf makes a problem about one named field.
func FieldErrorf(k Kind, field, format string, args ...any) *Problem {
	p := Errorf(k, format, args...)
	p.Field = field
	return p
}

// AsProblem returns the problem inside err, or a problem of kind internal
// whose detail hides the error text (internal errors are logged, not shown).
func AsProblem(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	return &Problem{Type: KindInternal.TypeURI(), Title: KindInternal.Title(),
		Status: KindInternal.Status(), Detail: "internal error", kind: KindInternal, cause: err}
}

// IsKind reports whether err is a problem of kind k.
func IsKind(err error, k Kind) bool {
	var p *Problem
	return errors.As(err, &p) && p.Kind() == k
}
