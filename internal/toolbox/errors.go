package toolbox

import (
	"errors"
	"fmt"
)

// Code is the stable kind of a tool-call refusal or failure. Clients see it
// in MCP structured content ("error.code") and as the problem type of the
// REST API.
type Code string

// Error codes.
const (
	CodeUnknownTool  Code = "unknown_tool"
	CodeQuarantined  Code = "quarantined"
	CodeInvalidArgs  Code = "invalid_arguments"
	CodeTooLarge     Code = "arguments_too_large"
	CodeNotInList    Code = "not_in_manifest" // the agent manifest does not list the tool
	CodeForbidden    Code = "forbidden"       // policy refused
	CodeRateLimited  Code = "rate_limited"
	CodeToolFailed   Code = "tool_failed" // the tool ran and reported an error
	CodeUnavailable  Code = "unavailable" // the tool's backing part is not running here
	CodeInternal     Code = "internal"
	CodeUnauthorized Code = "unauthenticated"
)

// Sentinel errors; every *Error matches the one of its Code with errors.Is.
var (
	ErrUnknownTool = &Error{Code: CodeUnknownTool}
	ErrQuarantined = &Error{Code: CodeQuarantined}
	ErrInvalidArgs = &Error{Code: CodeInvalidArgs}
	ErrTooLarge    = &Error{Code: CodeTooLarge}
	ErrNotInList   = &Error{Code: CodeNotInList}
	ErrForbidden   = &Error{Code: CodeForbidden}
	ErrRateLimited = &Error{Code: CodeRateLimited}
	ErrToolFailed  = &Error{Code: CodeToolFailed}
	ErrUnavailable = &Error{Code: CodeUnavailable}
)

// FieldError names one argument that failed validation.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// Error is a typed refusal or failure of a tool call. Its Message says what
// went wrong and what the caller can do about it.
type Error struct {
	Code    Code         `json:"code"`
	Tool    string       `json:"tool,omitempty"`
	Message string       `json:"message"`
	Fields  []FieldError `json:"fields,omitempty"`
	// RetryAfterS is set for rate-limited calls: seconds until a retry can
	// succeed.
	RetryAfterS float64 `json:"retryAfterS,omitempty"`
	cause       error
}

func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return e.Message
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.cause }

// Is matches another *Error with the same Code (so errors.Is(err,
// ErrUnknownTool) works for any unknown-tool error).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Errorf builds an *Error for tool.
func Errorf(code Code, tool, format string, args ...any) *Error {
	return &Error{Code: code, Tool: tool, Message: fmt.Sprintf(format, args...)}
}

// Wrap builds an *Error with cause as its Unwrap.
func Wrap(code Code, tool string, cause error, format string, args ...any) *Error {
	e := Errorf(code, tool, format, args...)
	e.cause = cause
	return e
}

// AsError returns err as an *Error; other errors become CodeToolFailed
// (or CodeInternal when err is nil-like).
func AsError(tool string, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		if e.Tool == "" {
			c := *e
			c.Tool = tool
			return &c
		}
		return e
	}
	return &Error{Code: CodeToolFailed, Tool: tool, Message: err.Error(), cause: err}
}
