// Package pipelinehttp serves the deploy pipeline over HTTP
// (/v1/pipeline/...): runs (list, show, logs, a live NDJSON or SSE
// progress stream), review (approve, reject), cancel, the diff against the
// parent version, the test report and the signed provenance.
//
// It owns no runs: it turns requests into calls on a *pipeline.Runner and
// errors into problem+json. It is not wired into the daemon yet; Routes
// registers the endpoints on a Router.
package pipelinehttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/pipeline"
	"github.com/agentcloud/agentcloud/internal/store"
)

// Authorization actions; the resource is the run's agent.
const (
	ActionRead   = "pipeline.read"
	ActionReview = "pipeline.review"
	ActionCancel = "pipeline.cancel"
)

// Prefix is where the routes live.
const Prefix = "/v1/pipeline"

// PrincipalFunc maps an authenticated principal to a pipeline principal
// (kind and labels).
type PrincipalFunc func(ctx context.Context, p httpapi.Principal) api.PipelinePrincipal

// Handler serves one runner.
type Handler struct {
	r         *pipeline.Runner
	principal PrincipalFunc
	log       *slog.Logger
	// StreamLimit bounds one progress stream (default 15 minutes).
	StreamLimit time.Duration
}

// New returns a Handler for r; principal nil maps by kind (admin and user
// are people, agent an agent, session and sandbox a session, anything
// else an agent) without labels.
func New(r *pipeline.Runner, principal PrincipalFunc, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if principal == nil {
		principal = DefaultPrincipal
	}
	return &Handler{r: r, principal: principal, log: log, StreamLimit: 15 * time.Minute}
}

// DefaultPrincipal maps a principal by its kind.
func DefaultPrincipal(_ context.Context, p httpapi.Principal) api.PipelinePrincipal {
	kind := api.AuthorAgent
	switch p.Kind {
	case "admin", "user":
		kind = api.AuthorHuman
	case "session", "sandbox":
		kind = api.AuthorSession
	}
	return api.PipelinePrincipal{Kind: kind, ID: p.ID}
}

// Routes registers the pipeline's endpoints on rt.
func (h *Handler) Routes(rt *httpapi.Router) {
	add := func(r httpapi.Route) {
		r.Tag = "pipeline"
		if strings.Contains(r.Path, "{run}") {
			r.Resource = h.runResource
		}
		fn := r.Handler
		r.Handler = func(w http.ResponseWriter, req *http.Request) error { return problem(fn(w, req)) }
		rt.Handle(r)
	}
	run := Prefix + "/runs/{run}"
	add(httpapi.Route{Method: "GET", Path: Prefix + "/runs", Action: ActionRead, Response: api.PipelineRunList{}, Resource: agentQuery,
		Query: []httpapi.QueryParam{{Name: "agent", Description: "only this agent's runs (authorized on the agent; without it, on the platform)"},
			{Name: "limit", Type: httpapi.QueryInteger, Description: "at most this many (default and most 1000)"}},
		Summary: "Pipeline runs, newest first.", Handler: h.list})
	add(httpapi.Route{Method: "GET", Path: run, Action: ActionRead, Response: api.PipelineRun{},
		Summary: "One run: its state, each stage's state, timings and reason, and what it decided.", Handler: h.show})
	add(httpapi.Route{Method: "GET", Path: run + "/logs", Action: ActionRead, Response: api.PipelineLogs{},
		Query: []httpapi.QueryParam{{Name: "from", Type: httpapi.QueryInteger, Description: "the sequence to continue from"},
			{Name: "limit", Type: httpapi.QueryInteger, Description: "at most this many events (default and most 1000)"}},
		Summary: "The run's progress and log events, oldest first.", Handler: h.logs})
	add(httpapi.Route{Method: "GET", Path: run + "/events", Action: ActionRead, RawContentType: api.PipelineEventContentType,
		Query:   []httpapi.QueryParam{{Name: "from", Type: httpapi.QueryInteger, Description: "the sequence to continue from"}},
		Summary: "The run's events as they happen, one JSON event per line (server-sent events with Accept: text/event-stream), until the run ends or waits for review.",
		Handler: h.events})
	add(httpapi.Route{Method: "POST", Path: run + "/approve", Action: ActionReview, Request: api.PipelineReviewRequest{}, Response: api.PipelineRun{},
		Summary: "Approve a run waiting for review (never the author's own change).", Handler: h.review(true)})
	add(httpapi.Route{Method: "POST", Path: run + "/reject", Action: ActionReview, Request: api.PipelineReviewRequest{}, Response: api.PipelineRun{},
		Summary: "Reject a run waiting for review; it fails and the old version keeps serving.", Handler: h.review(false)})
	add(httpapi.Route{Method: "POST", Path: run + "/cancel", Action: ActionCancel, Response: api.PipelineRun{},
		Summary: "Cancel a run; the old version keeps serving unless the rollout had started.", Handler: h.cancel})
	add(httpapi.Route{Method: "GET", Path: run + "/diff", Action: ActionRead, Response: api.PipelineDiff{},
		Summary: "The run's version against its parent, file by file (unified diff).", Handler: h.diff})
	add(httpapi.Route{Method: "GET", Path: run + "/report", Action: ActionRead, Response: api.PipelineTestReport{},
		Summary: "The run's full test report.", Handler: h.report})
	add(httpapi.Route{Method: "GET", Path: run + "/provenance", Action: ActionRead, Response: api.PipelineProvenance{},
		Summary: "The released version's signed provenance (DSSE envelope of an in-toto SLSA v1 statement) and the key to verify it.",
		Handler: h.provenance})
}

// agentQuery is the agent named by ?agent= (the platform without one).
func agentQuery(r *http.Request) httpapi.Resource {
	if a := r.URL.Query().Get("agent"); a != "" {
		return httpapi.Resource{Type: "Agent", ID: a}
	}
	return httpapi.Resource{}
}

// runResource is the run's agent (the platform for a configuration run,
// and when the run is unknown: the handler then answers 404).
func (h *Handler) runResource(r *http.Request) httpapi.Resource {
	run, err := h.r.Get(r.Context(), r.PathValue("run"))
	if err != nil || run.Config != nil {
		return httpapi.Resource{} // a configuration run is the platform's
	}
	return httpapi.Resource{Type: "Agent", ID: run.Agent}
}

func intQuery(r *http.Request, name string) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, api.FieldErrorf(api.KindInvalidQuery, name, "%s must be a non-negative integer", name)
	}
	return n, nil
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) error {
	limit, err := intQuery(r, "limit")
	if err != nil {
		return err
	}
	runs, err := h.r.List(r.Context(), r.URL.Query().Get("agent"), limit)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, api.PipelineRunList{Runs: runs})
	return nil
}

func (h *Handler) show(w http.ResponseWriter, r *http.Request) error {
	run, err := h.r.Get(r.Context(), r.PathValue("run"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, run)
	return nil
}

func (h *Handler) logs(w http.ResponseWriter, r *http.Request) error {
	from, err := intQuery(r, "from")
	if err != nil {
		return err
	}
	limit, err := intQuery(r, "limit")
	if err != nil {
		return err
	}
	evs, next, err := h.r.Events(r.Context(), r.PathValue("run"), uint64(from), limit)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, api.PipelineLogs{Events: evs, Next: next})
	return nil
}

// The stream reads new events when the runner says the run changed;
// streamRecheck is how long it waits without being told, for a run driven
// by another node (whose events reach the shared log but not this node's
// runner). streamSettle is how long it waits for the event announcing an
// end it has already read.
const (
	streamRecheck = time.Second
	streamSettle  = 2 * time.Second
)

func (h *Handler) events(w http.ResponseWriter, r *http.Request) error {
	from, err := intQuery(r, "from")
	if err != nil {
		return err
	}
	id := r.PathValue("run")
	if _, err := h.r.Get(r.Context(), id); err != nil {
		return err
	}
	sse := strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
	} else {
		w.Header().Set("Content-Type", api.PipelineEventContentType)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	ctx, cancel := context.WithTimeout(r.Context(), h.StreamLimit)
	defer cancel()
	next := uint64(from)
	// A run's state is written before the event announcing it: a stream
	// that sees the run ended (or waiting) ends once it has sent that
	// event, or after streamSettle without it.
	var ended bool
	var settle time.Time
	for {
		changed := h.r.Changed(id)
		evs, n, err := h.r.Events(ctx, id, next, 0)
		if err != nil {
			return nil // headers are out; the client sees the stream end
		}
		next = n
		for _, ev := range evs {
			switch {
			case ev.Type == api.EventRun && (ev.State == api.RunPassed || ev.State == api.RunFailed || ev.State == api.RunCancelled),
				ev.Type == api.EventStage && ev.State == api.StageWaiting:
				ended = true
			case ev.Type != api.EventLog:
				ended = false
			}
			b, _ := json.Marshal(ev)
			if sse {
				_, err = fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, ev.Type, b)
			} else {
				_, err = fmt.Fprintf(w, "%s\n", b)
			}
			if err != nil {
				return nil
			}
		}
		if flusher != nil {
			flusher.Flush()
		}
		if len(evs) > 0 {
			continue
		}
		run, err := h.r.Get(ctx, id)
		if err != nil {
			return nil
		}
		if run.Terminal() || (run.State == api.RunWaiting && (run.Review == nil || run.Review.Decision == "") && !run.CancelRequested) {
			if settle.IsZero() {
				settle = time.Now().Add(streamSettle)
			}
			if ended || time.Now().After(settle) {
				if more, _, _ := h.r.Events(ctx, id, next, 1); len(more) == 0 {
					return nil
				}
				continue
			}
		} else {
			settle = time.Time{}
		}
		t := time.NewTimer(streamRecheck)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

func (h *Handler) review(approve bool) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var body api.PipelineReviewRequest
		if r.ContentLength != 0 {
			if err := httpapi.DecodeJSON(r, &body); err != nil {
				return err
			}
		}
		p, ok := httpapi.PrincipalFrom(r.Context())
		if !ok {
			return api.Errorf(api.KindUnauthenticated, "reviewing a run needs an authenticated principal")
		}
		reviewer := h.principal(r.Context(), p)
		var run api.PipelineRun
		var err error
		if approve {
			run, err = h.r.Approve(r.Context(), r.PathValue("run"), reviewer, body.Comment)
		} else {
			run, err = h.r.Reject(r.Context(), r.PathValue("run"), reviewer, body.Comment)
		}
		if err != nil {
			return err
		}
		httpapi.WriteJSON(w, http.StatusOK, run)
		return nil
	}
}

func (h *Handler) cancel(w http.ResponseWriter, r *http.Request) error {
	p, ok := httpapi.PrincipalFrom(r.Context())
	if !ok {
		return api.Errorf(api.KindUnauthenticated, "cancelling a run needs an authenticated principal")
	}
	run, err := h.r.Cancel(r.Context(), r.PathValue("run"), h.principal(r.Context(), p))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, run)
	return nil
}

func (h *Handler) diff(w http.ResponseWriter, r *http.Request) error {
	d, err := h.r.Diff(r.Context(), r.PathValue("run"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, d)
	return nil
}

func (h *Handler) report(w http.ResponseWriter, r *http.Request) error {
	rep, err := h.r.TestReport(r.Context(), r.PathValue("run"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, rep)
	return nil
}

func (h *Handler) provenance(w http.ResponseWriter, r *http.Request) error {
	p, err := h.r.Provenance(r.Context(), r.PathValue("run"))
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, p)
	return nil
}

func problem(err error) error {
	var p *api.Problem
	switch {
	case err == nil, errors.As(err, &p):
		return err
	case errors.Is(err, store.ErrUnavailable):
		return api.Errorf(api.KindUnavailable, "the pipeline store is unavailable: %w", err)
	}
	return fmt.Errorf("pipeline: %w", err)
}
