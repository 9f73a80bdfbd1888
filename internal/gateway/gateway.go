package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/gateway/adaptive"
	"github.com/agentcloud/agentcloud/internal/gateway/clock"
	"github.com/agentcloud/agentcloud/internal/gateway/fairq"
	"github.com/agentcloud/agentcloud/internal/gateway/webbotauth"
)

// Deps are what the gateway needs from the rest of the daemon.
type Deps struct {
	// Identifier establishes mTLS and JWT identities (nil: none).
	Identifier Identifier
	// Fetcher resolves Web Bot Auth key directories (nil: Web Bot Auth
	// is off).
	Fetcher webbotauth.Fetcher
	// Registerer receives the gateway's metrics (nil: none).
	Registerer prometheus.Registerer
	// Clock is the time source (nil: the wall clock).
	Clock clock.Clock
	// Log receives warnings (nil: discarded).
	Log *slog.Logger
}

// Gateway is the front door. Build it with New and put it in front of the
// router with Wrap.
type Gateway struct {
	clock       clock.Clock
	log         *slog.Logger
	identifier  Identifier
	wba         *webbotauth.Verifier
	schemas     []schema
	fallback    string // the last level: where unmatched requests go
	rates       []rateRule
	longRunning matchers
	mcpPath     string
	peekBytes   int
	sched       *fairq.Scheduler
	limiter     *adaptive.Gradient // nil: fixed limit
	inflight    atomic.Int64
	metrics     *metrics
	timeouts    map[string]time.Duration // queue timeout per level
}

// New builds a gateway from the config's gateway section (nil lists take
// their defaults).
func New(cfg config.Gateway, deps Deps) (*Gateway, error) {
	cfg = cfg.Effective()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Gateway{clock: deps.Clock, log: deps.Log, identifier: deps.Identifier, mcpPath: cfg.MCP.Path, peekBytes: cfg.MCP.PeekBytes}
	if g.clock == nil {
		g.clock = clock.Real()
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if g.schemas, err = compileSchemas(cfg.FlowSchemas); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if g.rates, err = compileRates(cfg.RateLimits); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if g.longRunning, err = compileMatches(cfg.LongRunning); err != nil {
		return nil, fmt.Errorf("gateway: long_running: %w", err)
	}
	if len(cfg.LongRunning) == 0 {
		g.longRunning = nil
	}
	levels := make([]fairq.LevelConfig, 0, len(cfg.Levels))
	for _, l := range cfg.Levels {
		borrow := -1
		if l.BorrowingLimitPercent != nil {
			borrow = *l.BorrowingLimitPercent
		}
		levels = append(levels, fairq.LevelConfig{
			Name: l.Name, Exempt: l.Exempt, Shares: l.Shares, LendablePercent: l.LendablePercent,
			BorrowingLimitPercent: borrow, Queues: l.Queues, HandSize: l.HandSize,
			QueueLength: l.QueueLength, QueueTimeout: l.QueueTimeout.D(),
		})
	}
	g.fallback = cfg.Levels[len(cfg.Levels)-1].Name
	g.timeouts = make(map[string]time.Duration, len(cfg.Levels))
	for _, l := range cfg.Levels {
		g.timeouts[l.Name] = l.QueueTimeout.D()
	}
	if g.sched, err = fairq.New(fairq.Config{Levels: levels, ConcurrencyLimit: cfg.Concurrency.Limit, Clock: g.clock}); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if c := cfg.Concurrency; c.Adaptive {
		ac := adaptive.DefaultConfig(c.Limit, c.Min, c.Max)
		ac.Tolerance = c.Tolerance
		if g.limiter, err = adaptive.New(ac); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	if w := cfg.WebBotAuth; w.Enabled && deps.Fetcher != nil {
		vc := webbotauth.Config{
			MaxAge: w.MaxAge.D(), MaxLifetime: w.MaxLifetime.D(), ClockSkew: w.ClockSkew.D(),
			RequireNonce: w.RequireNonce, AllowUnprovenKeys: w.AllowUnprovenKeys,
			DefaultTTL: w.DirectoryTTL.D(), FetchTimeout: w.FetchTimeout.D(),
			MaxDirectoryBytes: w.MaxDirectoryBytes, FetchesPerMinute: w.FetchesPerMinute,
		}
		if g.wba, err = webbotauth.New(vc, deps.Fetcher, g.clock); err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	if g.metrics, err = newMetrics(deps.Registerer, g); err != nil {
		return nil, fmt.Errorf("gateway: metrics: %w", err)
	}
	return g, nil
}

// Wrap returns next behind the gateway.
func (g *Gateway) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.serve(w, r, next) })
}

// identify establishes the request's identity: the Identifier's (client
// certificate or bearer token), else a verified Web Bot Auth signer, else
// the client address. A Web Bot Auth signature that is malformed or does
// not verify is refused with the returned problem.
func (g *Gateway) identify(r *http.Request) (Identity, *api.Problem) {
	if g.identifier != nil {
		id, err := g.identifier.Identify(r)
		if err == nil && id.Kind != "" && id.ID != "" {
			g.metrics.identified.WithLabelValues(string(id.Method), "none").Inc()
			return id, nil
		}
	}
	if g.wba != nil && r.Header.Get("Signature-Input") != "" {
		res := g.wba.Verify(r.Context(), r)
		g.metrics.identified.WithLabelValues(string(MethodWebBotAuth), res.Outcome.String()).Inc()
		switch res.Outcome {
		case webbotauth.Verified:
			return Identity{Kind: KindBot, ID: res.Signer, Method: MethodWebBotAuth, Signer: res.Signer}, nil
		case webbotauth.Invalid:
			if errors.Is(res.Err, webbotauth.ErrMalformed) {
				return Identity{}, api.FieldErrorf(api.KindBadRequest, "Signature-Input", "%v", res.Err)
			}
			p := api.Errorf(api.KindUnauthenticated, "%v", res.Err)
			p.Field = "Signature"
			return Identity{}, p
		}
		// Unverified or no web-bot-auth signature: not attributed.
	} else {
		g.metrics.identified.WithLabelValues(string(MethodNone), "none").Inc()
	}
	return Anonymous(r.RemoteAddr), nil
}

// classify picks the priority level of a.
func (g *Gateway) classify(a *attrs) (level, schema string) {
	for i := range g.schemas {
		if g.schemas[i].match.matches(a) {
			return g.schemas[i].level, g.schemas[i].name
		}
	}
	return g.fallback, ""
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	id, prob := g.identify(r)
	if prob != nil {
		g.metrics.rejected.WithLabelValues("", "bad-signature").Inc()
		writeProblem(w, r, prob, 0)
		return
	}
	a := attrs{id: id, method: r.Method, path: r.URL.Path}
	if r.Method == http.MethodPost && r.URL.Path == g.mcpPath {
		a.mcpMethod, a.tool = peekMCP(r, g.peekBytes)
	}
	cls := &Class{Identity: id, MCPMethod: a.mcpMethod, Tool: a.tool}
	cls.Level, cls.Schema = g.classify(&a)
	cls.LongRunning = len(g.longRunning) > 0 && g.longRunning.matches(&a)

	now := g.clock.Now()
	rates := g.checkRates(&a, now)
	rates.setHeaders(w.Header())
	if rates.denied != nil {
		g.metrics.rejected.WithLabelValues(cls.Level, "rate-limited").Inc()
		p := api.Errorf(api.KindRateLimited, "rate limit %q (%d requests per %ds for each %s) is used up for %s in priority level %q; retry in %ds",
			rates.denied.name, rates.denied.quota, rates.denied.window, keyName(rates.denied), id.ID, cls.Level, ceilSeconds(rates.retryAfter))
		p.Limit, p.PriorityLevel = rates.denied.name, cls.Level
		writeProblem(w, r, p, rates.retryAfter)
		return
	}
	ctx := context.WithValue(r.Context(), classKey, cls)
	if cls.LongRunning {
		g.metrics.dispatched.WithLabelValues(cls.Level).Inc()
		next.ServeHTTP(w, r.WithContext(ctx))
		return
	}
	t, err := g.sched.Acquire(r.Context(), cls.Level, id.ID)
	if err != nil {
		g.refuse(w, r, cls, err)
		return
	}
	cls.Wait = t.Wait()
	g.metrics.dispatched.WithLabelValues(cls.Level).Inc()
	g.metrics.wait.WithLabelValues(cls.Level).Observe(cls.Wait.Seconds())
	inflight := int(g.inflight.Add(1))
	defer func() {
		g.inflight.Add(-1)
		end := g.clock.Now()
		t.Done()
		if g.limiter != nil {
			if limit, changed := g.limiter.Observe(end, end.Sub(t.Start()), inflight); changed {
				g.sched.SetLimit(limit)
			}
		}
	}()
	next.ServeHTTP(w, r.WithContext(ctx))
}

func keyName(r *rateRule) string {
	if r.perTool {
		return "identity and tool"
	}
	return "identity"
}

// refuse answers a request the scheduler did not dispatch.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, cls *Class, err error) {
	var re *fairq.RejectError
	if !errors.As(err, &re) {
		g.log.ErrorContext(r.Context(), "gateway scheduling failed", "err", err, "priority_level", cls.Level)
		writeProblem(w, r, api.AsProblem(err), 0)
		return
	}
	g.metrics.rejected.WithLabelValues(cls.Level, string(re.Reason)).Inc()
	retry := re.RetryAfter
	var p *api.Problem
	switch re.Reason {
	case fairq.ReasonCanceled:
		return // the client is gone
	case fairq.ReasonTimeout:
		p = api.Errorf(api.KindQueueTimeout, "waited the queue timeout of %s in priority level %q without a free seat; retry in %ds",
			g.timeouts[cls.Level], cls.Level, ceilSeconds(retry))
		p.Limit = "queue"
	case fairq.ReasonQueueFull:
		if re.OwnBacklog {
			p = api.Errorf(api.KindRateLimited, "%s has more requests waiting in priority level %q than its fair share of the queue; retry in %ds",
				cls.Identity.ID, cls.Level, ceilSeconds(retry))
		} else {
			p = api.Errorf(api.KindOverloaded, "priority level %q is overloaded: its queue for this caller is full; retry in %ds",
				cls.Level, ceilSeconds(retry))
		}
		p.Limit = "queue"
	case fairq.ReasonWouldTimeOut:
		p = api.Errorf(api.KindOverloaded, "priority level %q is overloaded: this request would wait longer than its queue timeout of %s; retry in %ds",
			cls.Level, g.timeouts[cls.Level], ceilSeconds(retry))
		if re.OwnBacklog {
			p = api.Errorf(api.KindRateLimited, "%s has more requests waiting in priority level %q than can be served within its queue timeout of %s; retry in %ds",
				cls.Identity.ID, cls.Level, g.timeouts[cls.Level], ceilSeconds(retry))
		}
		p.Limit = "queue"
	default:
		p = api.Errorf(api.KindOverloaded, "priority level %q has no free seat and does not queue; retry in %ds", cls.Level, ceilSeconds(retry))
		p.Limit = "concurrency"
	}
	p.PriorityLevel = cls.Level
	writeProblem(w, r, p, retry)
}

// Levels is the state of every priority level.
func (g *Gateway) Levels() []api.TrafficLevel { return g.sched.Levels() }

// Flows is every remembered flow of level ("" for all), busiest first.
func (g *Gateway) Flows(level string) []api.TrafficFlow { return g.sched.Flows(level) }

// Top is the n busiest flows.
func (g *Gateway) Top(n int) []api.TrafficFlow { return g.sched.Top(n) }

// Traffic is the snapshot /v1/traffic answers with.
func (g *Gateway) Traffic(top int) api.Traffic {
	return api.Traffic{ConcurrencyLimit: g.sched.Limit(), Levels: g.sched.Levels(), Top: g.sched.Top(top)}
}
