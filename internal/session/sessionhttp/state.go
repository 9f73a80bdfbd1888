package sessionhttp

import (
	"net/http"
	"strconv"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/session"
)

// maxStateKeys bounds one page of GET .../state.
const maxStateKeys = 1000

// stateRoute registers GET /v1/agents/{agent}/sessions/{session}/state:
// the keys of a session's durable state with their sizes, never the
// values (for the web console's session view).
func (h *Handler) stateRoute(r *httpapi.Router) {
	r.Handle(httpapi.Route{Method: "GET", Path: "/v1/agents/{agent}/sessions/{session}/state", Tag: "sessions",
		Summary: "List the keys of a session's durable state with the size of each value (not the values), sorted.",
		Action:  session.ActionSessionRead, Resource: SessionResource,
		Query: []httpapi.QueryParam{
			{Name: "prefix", Description: "only keys that start with this"},
			{Name: "limit", Type: httpapi.QueryInteger, Description: "at most this many keys (1 to 1000, default 100)"},
		},
		Response: api.SessionStateKeys{}, Handler: func(w http.ResponseWriter, r *http.Request) error {
			q := r.URL.Query()
			limit := 100
			if s := q.Get("limit"); s != "" {
				n, err := strconv.Atoi(s)
				if err != nil || n < 1 || n > maxStateKeys {
					return api.FieldErrorf(api.KindInvalidQuery, "limit", "limit must be 1 to %d", maxStateKeys)
				}
				limit = n
			}
			prefix := q.Get("prefix")
			if prefix != "" {
				if p := api.CheckID("prefix", api.IDStateKey, prefix); p != nil {
					return p
				}
			}
			es, err := h.m.StateList(r.Context(), r.PathValue("agent"), r.PathValue("session"), prefix, limit)
			if err != nil {
				return err
			}
			out := api.SessionStateKeys{Keys: make([]api.SessionStateKey, 0, len(es))}
			for _, e := range es {
				out.Keys = append(out.Keys, api.SessionStateKey{Key: e.Key, Bytes: len(e.Value)})
			}
			httpapi.WriteJSON(w, http.StatusOK, out)
			return nil
		}})
}
