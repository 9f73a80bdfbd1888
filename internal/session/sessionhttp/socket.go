package sessionhttp

import (
	"net/http"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/coder/websocket"
)

// serveSocket upgrades the request whose session answered 101 with a
// WebSocket (its id in the pseudo-header ":websocket") and serves the
// socket until it closes (session.Manager.ServeSocket). The request was
// authenticated and authorized for the session like any other traffic.
func (h *Handler) serveSocket(w http.ResponseWriter, r *http.Request, agent string, resp isolate.Response) error {
	id := r.PathValue("session")
	sid := resp.Header(":websocket")
	if sid == "" {
		return api.Errorf(api.KindAgentError, "the agent answered 101 without a webSocket (new Response(null, {status: 101, webSocket: client}))")
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return api.Errorf(api.KindBadRequest, "the agent accepted a WebSocket but the request is not a WebSocket upgrade (Upgrade: websocket)")
	}
	return h.m.ServeSocket(r.Context(), agent, id, sid, func() (*websocket.Conn, error) {
		// The server's read and write timeouts are for requests, not for a
		// socket that lives on after its upgrade.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
		var protos []string
		for _, kv := range resp.Headers {
			if strings.EqualFold(kv[0], "Sec-WebSocket-Protocol") {
				protos = append(protos, kv[1])
			}
		}
		// A browser's cross-origin upgrade is refused (403), as
		// coder/websocket does by default.
		return websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: protos})
	})
}
