package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/telemetry"
	"github.com/prometheus/client_golang/prometheus"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	principalKey
)

// reqInfo is what the router knows of a request, in one context value:
// its ID, and once authenticated its principal (set before the handler
// runs, never changed after). One value instead of two saves a context and
// a copy of the request on every request.
type reqInfo struct {
	id        string
	principal Principal
	known     bool // principal is set
}

// reqCtx is a request's context under the router: the server's, with the
// reqInfo as the value of requestIDKey, and the request's statusWriter
// beside it: what context.WithValue, a reqInfo and a statusWriter made in
// three allocations, in one.
type reqCtx struct {
	context.Context
	info reqInfo
	sw   statusWriter
}

// Value implements context.Context.
func (c *reqCtx) Value(key any) any {
	if k, ok := key.(ctxKey); ok && k == requestIDKey {
		return &c.info
	}
	return c.Context.Value(key)
}

// RequestID returns the request's ID ("" outside a request).
func RequestID(ctx context.Context) string {
	if i, ok := ctx.Value(requestIDKey).(*reqInfo); ok {
		return i.id
	}
	return ""
}

// Principal is who made a request, as established by an Authenticator.
type Principal struct {
	// ID is a stable name such as "admin" or a SPIFFE ID.
	ID string
	// Kind is admin, user, agent, session, sandbox or node.
	Kind string
}

// PrincipalFrom returns the authenticated principal of a request. A
// principal set with WithPrincipal (always on a context derived from the
// request's) comes before the one the router authenticated.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	if p, ok := ctx.Value(principalKey).(Principal); ok {
		return p, true
	}
	if i, ok := ctx.Value(requestIDKey).(*reqInfo); ok && i.known {
		return i.principal, true
	}
	return Principal{}, false
}

// WithPrincipal returns ctx carrying p (for tests and internal calls).
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey, p)
}

// Authenticator establishes who sent a request. It returns an
// api.KindUnauthenticated problem when the credentials are missing or bad.
type Authenticator interface {
	Authenticate(r *http.Request) (Principal, error)
}

func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// statusWriter records the status for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush forwards to the underlying writer so streaming works.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		f.Flush()
	}
}

// Metrics are the HTTP layer's Prometheus collectors.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight prometheus.Gauge
}

// NewMetrics registers the HTTP collectors on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentcloud_http_requests_total", Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "agentcloud_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"route"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "agentcloud_http_requests_in_flight", Help: "HTTP requests being served.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.inflight)
	return m
}

// routeMetrics are one route's collectors, looked up once rather than by
// label values on every request.
type routeMetrics struct {
	m        *Metrics
	route    string
	duration prometheus.Observer

	mu    sync.RWMutex // guards codes
	codes map[methodCode]prometheus.Counter
}

type methodCode struct {
	method string
	code   int
}

func (m *Metrics) route(route string) *routeMetrics {
	return &routeMetrics{m: m, route: route, duration: m.duration.WithLabelValues(route), codes: map[methodCode]prometheus.Counter{}}
}

// requests is the request counter of method and status code.
func (rm *routeMetrics) requests(method string, code int) prometheus.Counter {
	k := methodCode{method, code}
	rm.mu.RLock()
	c, ok := rm.codes[k]
	rm.mu.RUnlock()
	if ok {
		return c
	}
	c = rm.m.requests.WithLabelValues(rm.route, method, strconv.Itoa(code))
	rm.mu.Lock()
	if len(rm.codes) < 64 { // methods are any the client sends: bound the cache
		rm.codes[k] = c
	}
	rm.mu.Unlock()
	return c
}

// wrap applies the common chain around one route's handler.
func (rt *Router) wrap(route string, spec Route) http.Handler {
	public, h := spec.Public, spec.Handler
	// JSON reads coalesce; streams, raw content and agents' own URLs do not.
	coalesce := spec.Method == http.MethodGet && spec.RawContentType == "" && !spec.AnyQuery && !spec.Streams
	var met *routeMetrics
	if rt.metrics != nil {
		met = rt.metrics.route(route)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = newRequestID()
		}
		rc := &reqCtx{Context: r.Context(), info: reqInfo{id: id}, sw: statusWriter{ResponseWriter: w}}
		info, sw, ctx := &rc.info, &rc.sw, context.Context(rc)
		r = r.WithContext(ctx)
		sw.Header()["X-Request-Id"] = []string{id} // canonical already
		if rt.metrics != nil {
			rt.metrics.inflight.Inc()
		}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				rt.log.ErrorContext(ctx, "panic in handler", "route", route, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if sw.status == 0 {
					WriteProblem(sw, r, nil, api.Errorf(api.KindInternal, "internal error (request %s)", id))
				}
			}
			rt.served(ctx, r, route, met, sw, time.Since(start), id)
		}()
		if r.Body != nil && r.Body != http.NoBody && rt.maxBody > 0 { // NoBody: nothing to bound
			r.Body = http.MaxBytesReader(sw, r.Body, rt.maxBody)
			if r.ContentLength > rt.maxBody {
				WriteProblem(sw, r, rt.log, api.Errorf(api.KindTooLarge, "request body of %d bytes is larger than the limit of %d bytes", r.ContentLength, rt.maxBody))
				return
			}
		}
		if !public {
			if rt.auth == nil {
				WriteProblem(sw, r, rt.log, api.Errorf(api.KindUnauthenticated, "no authenticator configured"))
				return
			}
			p, err := rt.auth.Authenticate(r)
			if err != nil {
				WriteProblem(sw, r, rt.log, err)
				return
			}
			info.principal, info.known = p, true
			if err := checkRequest(r, spec); err != nil {
				WriteProblem(sw, r, rt.log, err)
				return
			}
			if err := rt.authorize(r, p, spec); err != nil {
				WriteProblem(sw, r, rt.log, err)
				return
			}
		}
		if public {
			if err := checkRequest(r, spec); err != nil {
				WriteProblem(sw, r, rt.log, err)
				return
			}
		}
		if coalesce && Coalescible(r) {
			// Identical control-plane reads in flight share one answer,
			// never across principals (coalesce.go).
			rt.coalesce.Do(sw, r, CoalesceKey(r, coalesceWho(info)), func(w http.ResponseWriter) {
				rt.run(w, r, h, sw, route)
			})
			return
		}
		rt.run(sw, r, h, sw, route) // no closure for the common case
	})
}

// run calls a route's handler, writing w a problem for its error unless sw
// says the response has started.
func (rt *Router) run(w http.ResponseWriter, r *http.Request, h HandlerFunc, sw *statusWriter, route string) {
	if err := h(w, r); err != nil {
		if sw.status != 0 {
			// Headers are gone; the best we can do is log.
			rt.log.WarnContext(r.Context(), "error after response started", "route", route, "err", err)
			return
		}
		WriteProblem(w, r, rt.log, err)
	}
}

// served records a served request: its span, metrics and access log.
func (rt *Router) served(ctx context.Context, r *http.Request, route string, met *routeMetrics, sw *statusWriter, el time.Duration, id string) {
	telemetry.Route(ctx, r.Method, route, sw.status)
	if met != nil {
		rt.metrics.inflight.Dec()
		met.requests(r.Method, sw.status).Inc()
		met.duration.Observe(el.Seconds())
	}
	lvl := slog.LevelDebug
	if sw.status >= 500 {
		lvl = slog.LevelWarn
	}
	if !rt.log.Enabled(ctx, lvl) {
		return // the arguments below cost allocations
	}
	rt.log.Log(ctx, lvl, "http", "method", r.Method, "path", r.URL.Path, "route", route,
		"status", sw.status, "bytes", sw.bytes, "dur", el, "req_id", id)
}

// coalesceWho is the principal part of a coalesced read's key: the
// principal, none for public routes.
func coalesceWho(i *reqInfo) string {
	if !i.known {
		return ""
	}
	return i.principal.Kind + " " + i.principal.ID
}

// authorize applies the route's action to the authenticated principal.
func (rt *Router) authorize(r *http.Request, p Principal, spec Route) error {
	var res Resource
	if spec.Resource != nil {
		res = spec.Resource(r)
	}
	if rt.authz != nil && spec.Action != "" {
		return rt.authz.Authorize(r.Context(), p, spec.Action, res)
	}
	if p.Kind == "admin" {
		return nil
	}
	if spec.Action == "" {
		return api.Errorf(api.KindForbidden, "%s %s is for administrators", r.Method, r.URL.Path)
	}
	return api.Errorf(api.KindForbidden, "no authorizer configured for %s", spec.Action)
}
