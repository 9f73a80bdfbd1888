package bundle

import (
	"fmt"
	"strings"
)

// FieldError is one problem with a manifest: which field, what is wrong
// and how to fix it.
type FieldError struct {
	// Field is the JSON path of the value, such as "name",
	// "limits.memory_mib", "egress[2]" or "env.API_URL". It is empty for a
	// problem with the document as a whole, such as a JSON syntax error.
	Field string
	// Problem says what is wrong, as a lowercase phrase.
	Problem string
	// Fix says how to put it right, as a lowercase imperative phrase.
	Fix string
	// Line and Column locate the value in agent.json, 1-based; both are 0
	// when there is no place to point at (a missing field, say). Column
	// counts characters, not bytes.
	Line, Column int
}

// Error formats the problem as "field: problem; fix (line L, column C)".
func (e FieldError) Error() string {
	var b strings.Builder
	if e.Field == "" && e.Line > 0 {
		fmt.Fprintf(&b, "line %d, column %d: ", e.Line, e.Column)
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Problem)
	if e.Fix != "" {
		b.WriteString("; ")
		b.WriteString(e.Fix)
	}
	if e.Field != "" && e.Line > 0 {
		fmt.Fprintf(&b, " (line %d, column %d)", e.Line, e.Column)
	}
	return b.String()
}

// ManifestError reports every problem found in a manifest. It matches
// ErrInvalidManifest with errors.Is, and errors.As reaches the underlying
// cause when there is one (a *json.SyntaxError, for instance).
type ManifestError struct {
	Problems []FieldError
	// Err is the underlying error, if a problem came from one.
	Err error
}

func (e *ManifestError) Error() string {
	switch len(e.Problems) {
	case 0:
		return ManifestName + ": invalid"
	case 1:
		return ManifestName + ": " + e.Problems[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problems:", ManifestName, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap returns ErrInvalidManifest and the underlying cause, if any.
func (e *ManifestError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalidManifest, e.Err}
	}
	return []error{ErrInvalidManifest}
}

// Field returns the first problem with the given field, if any.
func (e *ManifestError) Field(field string) (FieldError, bool) {
	for _, p := range e.Problems {
		if p.Field == field {
			return p, true
		}
	}
	return FieldError{}, false
}
