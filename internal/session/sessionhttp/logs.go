package sessionhttp

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/session"
)

const logsSummary = "An agent's log stream: console.* output and the errors requests ended with, of its live sessions, " +
	"oldest first, from a bounded in-memory stream per node (missed counts entries dropped before they were read). With follow=true, " +
	"one JSON entry per line (server-sent events with Accept: text/event-stream) as they come, until the client leaves. " +
	"In a cluster every member's entries are gathered (each names its node; continue with cursor, which holds a position per member; " +
	"with after, only the member asked answers); members that do not answer are named in Agentcloud-Unreachable-Members, " +
	"and in a followed stream by an entry of level unreachable."

// logsRoute registers GET /v1/agents/{agent}/logs (Cedar session.read on
// the agent, like the sessions listing).
func (h *Handler) logsRoute(r *httpapi.Router) {
	r.Handle(httpapi.Route{Method: "GET", Path: "/v1/agents/{agent}/logs", Tag: "sessions", Summary: logsSummary,
		Action: session.ActionSessionRead, Resource: AgentResource, Response: api.LogList{}, Streams: true,
		Query:   logsQuery,
		Handler: h.logs})
	r.Handle(httpapi.Route{Method: "GET", Path: "/v1" + PreviewPrefix + "/logs", Tag: "sessions",
		Summary: "The log stream of the agent's preview sessions (agentcloud dev), as GET /v1/agents/{agent}/logs reads production's; " +
			"404 when the agent has no preview.",
		Action: session.ActionSessionRead, Resource: AgentResource, Response: api.LogList{}, Streams: true,
		Query: logsQuery, Handler: h.logs})
}

// logsQuery is the query of both log stream routes.
var logsQuery = []httpapi.QueryParam{
	{Name: "session", Description: "only this session's entries"},
	{Name: "after", Type: httpapi.QueryInteger, Description: "continue after this seq of the member asked (a previous answer's next)"},
	{Name: "cursor", Description: "continue where a previous answer's cursor says, on every member (not with after)"},
	{Name: "limit", Type: httpapi.QueryInteger, Description: "at most this many entries (default and most 1000; without follow)"},
	{Name: "follow", Type: httpapi.QueryBoolean, Description: "keep the answer open and stream new entries"},
}

// deleteAgentRoute registers DELETE /v1/agents/{agent} (Cedar
// agent.delete; the security part audits the decision).
func (h *Handler) deleteAgentRoute(r *httpapi.Router) {
	r.Handle(httpapi.Route{Method: "DELETE", Path: "/v1/agents/{agent}", Tag: "agents", Status: http.StatusNoContent,
		Summary: "Delete an agent with every version and every session (state, snapshots, alarms, logs); the decision is audited.",
		Action:  session.ActionAgentDelete, Resource: AgentResource,
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			if err := h.m.DeleteAgent(r.Context(), r.PathValue("agent")); err != nil {
				return err
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}})
}

func uintQuery(r *http.Request, name string) (uint64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, api.FieldErrorf(api.KindInvalidQuery, name, "query parameter %s must be a non-negative whole number", name)
	}
	return n, nil
}

func (h *Handler) logs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	after, err := uintQuery(r, "after")
	if err != nil {
		return err
	}
	limit, err := uintQuery(r, "limit")
	if err != nil {
		return err
	}
	follow, _ := strconv.ParseBool(q.Get("follow")) // the router checked it
	agent, sess := r.PathValue("agent"), q.Get("session")
	read, stream := h.m.Logs, agent
	if strings.HasSuffix(r.URL.Path, "/preview/logs") {
		read, stream = h.m.PreviewLogs, agent+"/preview" // cursors name the stream as its path does
	}
	if c := q.Get("cursor"); c != "" {
		if q.Has("after") {
			return api.FieldErrorf(api.KindInvalidQuery, "cursor", "pass either cursor or after, not both")
		}
		cur, err := api.DecodeLogCursor(stream, c)
		if err != nil {
			return err
		}
		after = cur.Pos[h.node]
	}
	lim := session.MaxLogRead
	if limit > 0 && limit < uint64(lim) {
		lim = int(limit)
	}
	l, wake, err := read(r.Context(), agent, sess, after, lim)
	if err != nil {
		return err
	}
	if !follow {
		h.stamp(stream, &l, false)
		httpapi.WriteJSON(w, http.StatusOK, l)
		return nil
	}
	sse := strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
	} else {
		w.Header().Set("Content-Type", api.LogContentType)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	for {
		if len(l.Entries) > 0 && l.Missed > 0 {
			l.Entries[0].Missed = l.Missed
		}
		_ = rc.SetWriteDeadline(time.Now().Add(StreamStall))
		h.stamp(stream, &l, true)
		for _, e := range l.Entries {
			b, _ := json.Marshal(e)
			if sse {
				_, err = fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Level, b)
			} else {
				_, err = fmt.Fprintf(w, "%s\n", b)
			}
			if err != nil {
				return nil // the client left; headers are out
			}
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
		select {
		case <-r.Context().Done():
			return nil
		case <-h.m.Stopping():
			return nil
		case <-wake:
		}
		if l, wake, err = read(r.Context(), agent, sess, l.Next, session.MaxLogRead); err != nil {
			return nil // the agent was deleted: the stream ends
		}
	}
}

// stamp names this node on l's entries and sets l's cursor (each entry's
// too when each says where a follower stands).
func (h *Handler) stamp(agent string, l *api.LogList, each bool) {
	for i := range l.Entries {
		l.Entries[i].Node = h.node
		if each {
			l.Entries[i].Cursor = api.EncodeLogCursor(api.LogCursor{Agent: agent, Pos: map[string]uint64{h.node: l.Entries[i].Seq}})
		}
	}
	l.Cursor = api.EncodeLogCursor(api.LogCursor{Agent: agent, Pos: map[string]uint64{h.node: l.Next}})
}
