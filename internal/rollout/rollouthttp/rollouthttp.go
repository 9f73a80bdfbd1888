// Package rollouthttp serves rollouts over HTTP: an agent's deployment
// (which versions serve which share, its latest rollout) and the operator's
// controls (pause, resume, promote, rollback).
//
// It owns no state: it turns requests into calls on a *rollout.Controller
// and errors into problem+json. It is not wired into the daemon yet;
// Routes registers the endpoints on a Router, which authenticates, checks
// the {agent} wildcard against its identifier rule and authorizes.
package rollouthttp

import (
	"net/http"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/rollout"
)

// The authorization actions, on the agent: reading the deployment needs
// what reading the agent needs; changing what serves needs what deploying
// it needs (the same action names as the agent routes, so one policy
// covers both).
const (
	ActionRead   = "agent.read"
	ActionChange = "agent.deploy"
)

// Handler serves one controller.
type Handler struct{ c *rollout.Controller }

// New returns a Handler for c; register it with Routes.
func New(c *rollout.Controller) *Handler { return &Handler{c: c} }

func agentResource(r *http.Request) httpapi.Resource {
	return httpapi.Resource{Type: "Agent", ID: r.PathValue("agent")}
}

// Routes registers the endpoints on r.
func (h *Handler) Routes(r *httpapi.Router) {
	const base = "/v1/agents/{agent}/"
	r.Handle(httpapi.Route{Method: "GET", Path: base + "deployment", Tag: "rollouts", Action: ActionRead, Resource: agentResource,
		Summary:  "Which versions of the agent serve which share of new sessions, the versions kept, and its latest rollout.",
		Response: api.Deployment{}, Handler: h.show})
	control := func(path, summary string, fn func(r *http.Request, agent string) error) {
		r.Handle(httpapi.Route{Method: "POST", Path: base + path, Tag: "rollouts", Action: ActionChange, Resource: agentResource,
			Summary: summary, Request: api.RolloutControl{}, Response: api.Deployment{},
			Handler: func(w http.ResponseWriter, req *http.Request) error {
				agent := req.PathValue("agent")
				if err := fn(req, agent); err != nil {
					return err
				}
				return h.show(w, req)
			}})
	}
	control("rollout/pause", "Hold the running rollout at its share (a failing canary is still rolled back).",
		func(r *http.Request, agent string) error {
			var body api.RolloutControl
			if err := decodeOptional(r, &body); err != nil {
				return err
			}
			_, err := h.c.Pause(r.Context(), agent, body.Reason)
			return err
		})
	control("rollout/resume", "Continue a paused rollout; its step's pause starts again.",
		func(r *http.Request, agent string) error {
			var body api.RolloutControl
			if err := decodeOptional(r, &body); err != nil {
				return err
			}
			_, err := h.c.Resume(r.Context(), agent)
			return err
		})
	control("rollout/promote", "Take the rollout's next step now (complete it from the last step).",
		func(r *http.Request, agent string) error {
			var body api.RolloutControl
			if err := decodeOptional(r, &body); err != nil {
				return err
			}
			_, err := h.c.Promote(r.Context(), agent, body.Reason)
			return err
		})
	r.Handle(httpapi.Route{Method: "POST", Path: base + "rollback", Tag: "rollouts", Action: ActionChange, Resource: agentResource,
		Summary: "Serve an earlier version again: the one the latest rollout replaced, or the kept version named in to.",
		Request: api.RollbackRequest{}, Response: api.Deployment{},
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			var body api.RollbackRequest
			if err := decodeOptional(r, &body); err != nil {
				return err
			}
			if _, err := h.c.Rollback(r.Context(), r.PathValue("agent"), body.To, body.Reason); err != nil {
				return err
			}
			return h.show(w, r)
		}})
}

func (h *Handler) show(w http.ResponseWriter, r *http.Request) error {
	d, err := h.c.Status(r.Context(), r.PathValue("agent"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, d)
	return nil
}

// decodeOptional decodes a JSON body into v; an empty body leaves v zero.
func decodeOptional(r *http.Request, v any) error {
	if r.ContentLength == 0 && r.Header.Get("Content-Type") == "" {
		return nil
	}
	return httpapi.DecodeJSON(r, v)
}
