package toolenv

import (
	"testing"

	"github.com/agentcloud/agentcloud/internal/toolbox"
)

// TestJSErrorNameClass: every tool error code becomes a JavaScript Error
// name agent code can match on.
func TestJSErrorNameClass(t *testing.T) {
	for code, want := range map[toolbox.Code]string{
		toolbox.CodeRateLimited: "RateLimitedError",
		toolbox.CodeUnknownTool: "UnknownToolError",
		toolbox.CodeInvalidArgs: "InvalidArgumentsError",
		"":                      "Error",
		"x__y":                  "XYError",
	} {
		if got := jsErrorName(code); got != want {
			t.Errorf("%q: %q, want %q", code, got, want)
		}
	}
}
