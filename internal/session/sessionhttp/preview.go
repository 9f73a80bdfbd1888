package sessionhttp

import (
	"net/http"

	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/session"
)

// PreviewPrefix is where an agent's preview sessions are reached:
// /agents/{agent}/preview/sessions/{session}/{path...} is the traffic route
// of the preview namespace (session.PreviewAgent), authorized like the
// agent's own traffic; production's sessions of the same ids are others.
const PreviewPrefix = "/agents/{agent}/preview"

// previewRoutes registers the preview traffic routes and DELETE
// /v1/agents/{agent}/preview (ends the preview; production is untouched).
func (h *Handler) previewRoutes(r *httpapi.Router) {
	traffic := httpapi.Route{Tag: "sessions", RawContentType: "*/*", AnyQuery: true,
		Action: session.ActionSessionCall, Resource: SessionResource,
		Summary: "Send a request to a session of the agent's preview (agentcloud dev): the preview version, with state of its own; " +
			"production's version and sessions are not touched. 404 when the agent has no preview.",
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			name, err := h.m.PreviewAgent(r.Context(), r.PathValue("agent"))
			if err != nil {
				return err
			}
			return h.traffic(w, r, name)
		}}
	for _, p := range []string{PreviewPrefix + "/sessions/{session}", PreviewPrefix + "/sessions/{session}/{path...}"} {
		traffic.Path = p
		r.Handle(traffic)
	}
	r.Handle(httpapi.Route{Method: "DELETE", Path: "/v1" + PreviewPrefix, Tag: "agents", Status: http.StatusNoContent,
		Summary: "End the agent's preview: its preview sessions with their state, snapshots and alarms. Production is not touched.",
		Action:  session.ActionAgentDeploy, Resource: AgentResource,
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			if err := h.m.EndPreview(r.Context(), r.PathValue("agent")); err != nil {
				return err
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}})
}
