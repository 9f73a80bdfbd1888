package e2bhttp

// What this API does not serve (unsupported.go): E2B routes it does not
// implement answer 501 in the route's error format, so an SDK call says
// "not supported" rather than "not found" (which the SDKs read as a
// missing sandbox).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// unsupportedMessage says that what is not served.
func unsupportedMessage(what string) string {
	return fmt.Sprintf("%s is not supported by agentcloud's E2B-compatible API (see the README, E2B-compatible API)", what)
}

// unsupportedRoutes registers the catch-all of the E2B API: any method and
// path under the prefix that no route serves (E2B's snapshots listing,
// templates, volumes, secrets, API keys, teams, sandbox metrics; envd's
// /envs, /files/compose, /metrics and the Connect methods not listed in
// envdRoutes, such as StreamInput and WatchDir) answers 501 to an
// authenticated caller.
func (h *Handler) unsupportedRoutes(r *httpapi.Router) {
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		e2bRoute(r, m, "/{path...}", "E2B: any other route of E2B's API or envd's: not supported by this implementation (501).", h.handleUnknown)
	}
}

// handleUnsupported answers 501 for a route of one sandbox (after the
// same lookup as the served routes: another tenant's is 404).
func (h *Handler) handleUnsupported(w http.ResponseWriter, r *http.Request, p caller) error {
	if _, _, err := h.lookup(r, p, sandbox.ActionRead); err != nil {
		return err
	}
	what := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	writeJSON(w, http.StatusNotImplemented, apiError{Code: http.StatusNotImplemented, Message: unsupportedMessage(what)})
	return nil
}

// handleUnknown answers 501 for a path no route serves, once the caller
// is authenticated (an API key, or an envd access token of the sandbox
// in E2b-Sandbox-Id): a Connect error on a Connect service's path,
// E2B's REST error elsewhere.
func (h *Handler) handleUnknown(w http.ResponseWriter, r *http.Request) error {
	path := strings.TrimPrefix(r.URL.Path, Prefix)
	connect := strings.HasPrefix(path, "/process.Process/") || strings.HasPrefix(path, "/filesystem.Filesystem/")
	err := h.available()
	if err == nil {
		_, _, err = h.authenticate(r, r.Header.Get("E2b-Sandbox-Id"))
	}
	switch {
	case err != nil && connect:
		writeConnectError(w, err)
	case err != nil:
		h.writeAPIError(w, r, err)
	case connect:
		w.Header().Set("Content-Type", connectUnaryJSON)
		w.WriteHeader(http.StatusNotImplemented)
		msg := unsupportedMessage(strings.TrimPrefix(path, "/"))
		_ = json.NewEncoder(w).Encode(connectError{Code: "unimplemented", Message: msg})
	default:
		what := r.Method + " " + path
		writeJSON(w, http.StatusNotImplemented, apiError{Code: http.StatusNotImplemented, Message: unsupportedMessage(what)})
	}
	return nil
}
