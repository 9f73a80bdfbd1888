package gateway

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

// writeProblem answers with a problem+json body; a positive retry also
// goes into Retry-After (whole seconds, at least one).
func writeProblem(w http.ResponseWriter, r *http.Request, p *api.Problem, retry time.Duration) {
	cp := *p
	if cp.Instance == "" {
		cp.Instance = r.URL.Path
	}
	h := w.Header()
	if retry > 0 {
		secs := ceilSeconds(retry)
		if secs < 1 {
			secs = 1
		}
		cp.RetryAfterSeconds = secs
		h.Set("Retry-After", strconv.Itoa(secs))
	}
	h.Set("Content-Type", api.ProblemContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(cp.Status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(&cp)
}
