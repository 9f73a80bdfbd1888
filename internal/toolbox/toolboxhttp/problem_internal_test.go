package toolboxhttp

import (
	"net/http"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/toolbox"
)

// TestToolRefusalProblemClass: every refusal code is a problem with a
// 4xx status (503 for unavailable), never a 5xx for the caller's fault,
// and keeps the fields at fault; an unknown code is a 400.
func TestToolRefusalProblemClass(t *testing.T) {
	want := map[toolbox.Code]int{
		toolbox.CodeUnknownTool: http.StatusNotFound,
		toolbox.CodeQuarantined: http.StatusConflict,
		toolbox.CodeInvalidArgs: http.StatusUnprocessableEntity,
		toolbox.CodeTooLarge:    http.StatusRequestEntityTooLarge,
		toolbox.CodeNotInList:   http.StatusForbidden,
		toolbox.CodeForbidden:   http.StatusForbidden,
		toolbox.CodeRateLimited: http.StatusTooManyRequests,
		toolbox.CodeUnavailable: http.StatusServiceUnavailable,
		"something_new":         http.StatusBadRequest,
	}
	for code, status := range want {
		e := &toolbox.Error{Code: code, Message: "m", Fields: []toolbox.FieldError{{Field: "a", Detail: "d"}}}
		p := api.AsProblem(toolProblem(e))
		if p == nil || p.Status != status || p.Detail != "m" || len(p.Errors) != 1 || p.Errors[0].Field != "a" {
			t.Errorf("%s: %+v, want status %d with the field", code, p, status)
		}
	}
}
