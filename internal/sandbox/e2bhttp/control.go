package e2bhttp

// The control plane (control.go): the sandbox lifecycle in E2B's REST
// shapes. Wire types are ours, written after E2B's OpenAPI document.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxhttp"
	"github.com/agentcloud/agentcloud/internal/strictjson"
)

// Templates: E2B's default template "base" is the process tier's host
// template; "gvisor" is the same on the gVisor tier.
const (
	templateBase   = "base"
	templateGVisor = "gvisor"
)

// newSandbox is the body of POST /sandboxes. Fields E2B defines and this
// API does not serve are decoded so that a request using them is refused
// by name rather than silently run differently.
type newSandbox struct {
	TemplateID   string            `json:"templateID"`
	Timeout      *float64          `json:"timeout"`
	Metadata     map[string]string `json:"metadata"`
	EnvVars      map[string]string `json:"envVars"`
	Secure       *bool             `json:"secure"`
	AutoPause    *bool             `json:"autoPause"`
	MCP          json.RawMessage   `json:"mcp"`
	VolumeMounts []json.RawMessage `json:"volumeMounts"`
	AutoResume   *struct {
		Enabled bool `json:"enabled"`
	} `json:"autoResume"`
}

// sandboxOut is the answer of create and connect.
type sandboxOut struct {
	TemplateID         string  `json:"templateID"`
	SandboxID          string  `json:"sandboxID"`
	Alias              *string `json:"alias,omitempty"`
	ClientID           string  `json:"clientID"`
	EnvdVersion        string  `json:"envdVersion"`
	EnvdAccessToken    string  `json:"envdAccessToken"`
	TrafficAccessToken *string `json:"trafficAccessToken"`
	Domain             *string `json:"domain"`
}

// sandboxDetail is GET /sandboxes/{id} and an item of the listings.
type sandboxDetail struct {
	TemplateID      string            `json:"templateID"`
	SandboxID       string            `json:"sandboxID"`
	ClientID        string            `json:"clientID"`
	StartedAt       time.Time         `json:"startedAt"`
	EndAt           time.Time         `json:"endAt"`
	EnvdVersion     string            `json:"envdVersion"`
	EnvdAccessToken string            `json:"envdAccessToken,omitempty"`
	Domain          *string           `json:"domain"`
	CPUCount        int               `json:"cpuCount"`
	MemoryMB        int               `json:"memoryMB"`
	DiskSizeMB      int               `json:"diskSizeMB"`
	Metadata        map[string]string `json:"metadata"`
	State           string            `json:"state"`
	VolumeMounts    []struct{}        `json:"volumeMounts"`
}

func (h *Handler) controlRoutes(r *httpapi.Router) {
	const sb = "/sandboxes/{sandbox}"
	e2bRoute(r, "GET", "/health", "E2B: health (no auth); with E2b-Sandbox-Id, envd's: 204 while the sandbox runs, 502 when it is gone.", h.handleHealth)
	create := h.control(h.handleCreate)
	e2bRoute(r, "POST", "/sandboxes", "E2B: create a sandbox (templateID base: process tier, gvisor: gVisor tier).", create)
	e2bRoute(r, "POST", "/v2/sandboxes", "E2B: create a sandbox (the path SDK 2.x uses).", create)
	list := h.control(h.handleList)
	e2bRoute(r, "GET", "/v2/sandboxes", "E2B: list the caller's sandboxes (state, metadata, limit, nextToken).", list)
	e2bRoute(r, "GET", "/sandboxes", "E2B: list the caller's running sandboxes (v1).", list)
	e2bRoute(r, "GET", sb, "E2B: describe a sandbox.", h.control(h.handleGet))
	e2bRoute(r, "DELETE", sb, "E2B: kill a sandbox.", h.control(h.handleKill))
	e2bRoute(r, "POST", sb+"/timeout", "E2B: set the sandbox to end timeout seconds from now.", h.control(h.handleTimeout))
	e2bRoute(r, "POST", sb+"/refreshes", "E2B: keep the sandbox alive for duration seconds more (at most 3600).", h.control(h.handleRefresh))
	e2bRoute(r, "POST", sb+"/pause", "E2B: pause (freeze) a sandbox; 409 when already paused.", h.control(h.handlePause))
	connect := h.control(h.handleConnect)
	e2bRoute(r, "POST", sb+"/connect", "E2B: connect to a sandbox, resuming it if paused (201) and setting its timeout.", connect)
	e2bRoute(r, "POST", "/v2"+sb+"/connect", "E2B: connect (the path SDK 2.x uses).", connect)
	e2bRoute(r, "POST", sb+"/resume", "E2B: resume a paused sandbox (deprecated by E2B: use connect).", connect)
	e2bRoute(r, "POST", sb+"/fork", "E2B: fork a running sandbox: count (1-100, default 1) new ones with a copy of its files (filesystem only), each ending timeout seconds from now (default 15); 201 with one {sandbox} or {error} per copy.", h.control(h.handleFork))
	for _, u := range [][2]string{{"POST", sb + "/snapshots"}, {"PUT", sb + "/network"},
		{"GET", sb + "/metrics"}, {"GET", "/v2" + sb + "/logs"}, {"GET", sb + "/logs"}} {
		e2bRoute(r, u[0], u[1], "E2B: not supported by this implementation (501).", h.control(h.handleUnsupported))
	}
}

// control wraps a control-plane handler: sandboxes on, X-API-Key
// authenticated, errors in E2B's format.
func (h *Handler) control(fn func(w http.ResponseWriter, r *http.Request, p caller) error) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		err := h.available()
		var p caller
		if err == nil {
			p.Principal, p.keyHash, err = h.keys.Authenticate(r.Context(), r.Header.Get("X-API-Key"))
		}
		if err == nil {
			r = r.WithContext(httpapi.WithPrincipal(r.Context(), p.Principal))
			err = fn(w, r, p)
		}
		if err != nil {
			h.writeAPIError(w, r, err)
		}
		return nil
	}
}

// decodeBody reads an optional JSON object body (an empty body is the
// zero value). Unknown fields are allowed: E2B clients send newer ones.
func decodeBody(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return bodyError(err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return api.Errorf(api.KindInvalidJSON, "malformed JSON body: %v", err)
	}
	return nil
}

// seconds validates a timeout in seconds: positive, at most max.
func (h *Handler) seconds(field string, v float64, max time.Duration) (time.Duration, error) {
	if v != v || v < 1 || v > max.Seconds() {
		return 0, api.FieldErrorf(api.KindValidation, field, "%s must be between 1 and %.0f seconds", field, max.Seconds())
	}
	return time.Duration(v * float64(time.Second)), nil
}

func (h *Handler) handleCreate(w http.ResponseWriter, r *http.Request, p caller) error {
	if err := h.authorize(r.Context(), p, sandbox.ActionCreate, ""); err != nil {
		return err
	}
	var req newSandbox
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	spec, err := h.specFor(req)
	if err != nil {
		return err
	}
	if h.cfg.BeforeCreate != nil {
		if err := h.cfg.BeforeCreate(r, &spec); err != nil {
			return err
		}
	}
	sb, err := h.m.Create(r.Context(), "", spec)
	if err != nil {
		return sandboxhttp.ProblemFor(err)
	}
	writeJSON(w, http.StatusCreated, h.out(sb.ID(), sb.Tier(), p.keyHash))
	return nil
}

// specFor validates a create request and turns it into a Spec.
func (h *Handler) specFor(req newSandbox) (sandbox.Spec, error) {
	switch {
	case len(req.MCP) > 0 && string(req.MCP) != "null":
		return sandbox.Spec{}, api.FieldErrorf(api.KindValidation, "mcp", "the MCP gateway in a sandbox is not supported; agentcloud's own MCP toolbox is at /mcp")
	case len(req.VolumeMounts) > 0:
		return sandbox.Spec{}, api.FieldErrorf(api.KindValidation, "volumeMounts", "volumes are not supported")
	case req.AutoPause != nil && *req.AutoPause, req.AutoResume != nil && req.AutoResume.Enabled:
		return sandbox.Spec{}, api.FieldErrorf(api.KindValidation, "autoPause", "pausing on timeout is not supported: a sandbox is deleted when its timeout ends (extend it with setTimeout)")
	}
	spec := sandbox.Spec{Tier: sandbox.TierProcess, Template: sandbox.TemplateHost}
	switch req.TemplateID {
	case "", templateBase:
	case templateGVisor:
		spec.Tier = sandbox.TierGVisor
	default:
		return sandbox.Spec{}, api.FieldErrorf(api.KindValidation, "templateID", "unknown template %q: want %s (the process tier) or %s (the gVisor tier)", req.TemplateID, templateBase, templateGVisor)
	}
	if !slices.ContainsFunc(h.cfg.Tiers, func(t sandbox.Tier) bool { return t.Name() == spec.Tier }) {
		return sandbox.Spec{}, api.FieldErrorf(api.KindValidation, "templateID", "template %q needs the %s tier, which is not enabled on this node", req.TemplateID, spec.Tier)
	}
	if req.Timeout != nil {
		d, err := h.seconds("timeout", *req.Timeout, h.cfg.MaxTimeout)
		if err != nil {
			return sandbox.Spec{}, err
		}
		spec.Timeout = d
	}
	if err := checkEnv("envVars", req.EnvVars); err != nil {
		return sandbox.Spec{}, err
	}
	spec.Env = req.EnvVars
	if len(req.Metadata) > 64 {
		return sandbox.Spec{}, api.FieldErrorf(api.KindValidation, "metadata", "at most 64 entries")
	}
	for k, v := range req.Metadata {
		if k == "" || len(k) > 128 || len(v) > 1024 {
			return sandbox.Spec{}, api.FieldErrorf(api.KindValidation, "metadata", "keys must be 1-128 bytes and values at most 1024 bytes")
		}
		if strings.HasPrefix(k, sandbox.LabelPrefix) {
			return sandbox.Spec{}, api.FieldErrorf(api.KindValidation, "metadata."+k, "keys starting with %q are reserved for the platform", sandbox.LabelPrefix)
		}
		if spec.Labels == nil {
			spec.Labels = map[string]string{}
		}
		spec.Labels[k] = v
	}
	return spec, nil
}

// checkEnv validates environment variable names and values.
func checkEnv(field string, env map[string]string) error {
	if len(env) > 256 {
		return api.FieldErrorf(api.KindValidation, field, "at most 256 variables")
	}
	for k, v := range env {
		if k == "" || len(k) > 256 || len(v) > 32<<10 || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return api.FieldErrorf(api.KindValidation, field+"."+k, "variable names must be 1-256 bytes without '=' or NUL, values at most 32 KiB without NUL")
		}
	}
	return nil
}

// templateOf names the E2B template of a sandbox on tier.
func templateOf(tier string) string {
	if tier == sandbox.TierGVisor {
		return templateGVisor
	}
	return templateBase
}

// out is the create/connect answer for sandbox id, with an envd access
// token for the key with hash keyHash.
func (h *Handler) out(id, tier, keyHash string) sandboxOut {
	return sandboxOut{TemplateID: templateOf(tier), SandboxID: id, ClientID: "agentcloud", EnvdVersion: EnvdVersion,
		EnvdAccessToken: h.keys.envdToken(id, keyHash)}
}

// detail describes a sandbox; a stopped one (after a daemon restart) is
// "paused" to E2B, which connect resumes.
func (h *Handler) detail(info sandbox.Info) sandboxDetail {
	l := info.Limits
	d := sandboxDetail{TemplateID: templateOf(info.Tier), SandboxID: info.ID, ClientID: "agentcloud",
		StartedAt: info.Created.UTC(), EndAt: info.Deadline.UTC(), EnvdVersion: EnvdVersion,
		CPUCount: max(1, int(l.CPUs+0.5)), MemoryMB: l.MemoryMB, DiskSizeMB: l.DiskMB,
		Metadata: map[string]string{}, State: "running", VolumeMounts: []struct{}{}}
	if info.State != sandbox.StateRunning {
		d.State = "paused"
	}
	for k, v := range info.Labels {
		if !strings.HasPrefix(k, sandbox.LabelPrefix) {
			d.Metadata[k] = v
		}
	}
	return d
}

// lookup finds a sandbox the caller may act on with action: its live
// sandbox, nil when it runs nothing (stopped, or a paused copy of a fork).
func (h *Handler) lookup(r *http.Request, p caller, action string) (sandbox.Sandbox, sandbox.Info, error) {
	id := r.PathValue("sandbox")
	if err := h.authorizeSandbox(r.Context(), p, action, id); err != nil {
		return nil, sandbox.Info{}, err
	}
	info, err := h.m.Info(id)
	if err != nil {
		return nil, sandbox.Info{}, sandboxhttp.ProblemFor(err)
	}
	if info.State == sandbox.StateStopped {
		return nil, info, nil
	}
	sb, err := h.m.Get(id)
	if errors.Is(err, sandbox.ErrPaused) && info.State == sandbox.StatePaused { // a copy of a fork not yet run
		return nil, info, nil
	}
	if err != nil {
		return nil, sandbox.Info{}, sandboxhttp.ProblemFor(err)
	}
	return sb, info, nil
}

func (h *Handler) handleGet(w http.ResponseWriter, r *http.Request, p caller) error {
	_, info, err := h.lookup(r, p, sandbox.ActionRead)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h.detail(info))
	return nil
}

// listQuery is the query of the listings.
type listQuery struct {
	states   map[string]bool // empty: all
	metadata map[string]string
	limit    int
	after    string // nextToken: the last id of the page before
}

func parseListQuery(q url.Values) (listQuery, error) {
	lq := listQuery{limit: 100, states: map[string]bool{}}
	for _, v := range q["state"] {
		for _, s := range strings.Split(v, ",") {
			if s != "running" && s != "paused" {
				return lq, api.FieldErrorf(api.KindInvalidQuery, "state", "state %q: want running or paused", s)
			}
			lq.states[s] = true
		}
	}
	if m := q.Get("metadata"); m != "" {
		mq, err := url.ParseQuery(m)
		if err != nil || len(mq) > 64 {
			return lq, api.FieldErrorf(api.KindInvalidQuery, "metadata", "want URL-encoded key=value pairs, at most 64")
		}
		lq.metadata = map[string]string{}
		for k, vs := range mq {
			lq.metadata[k] = vs[0]
		}
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100 {
			return lq, api.FieldErrorf(api.KindInvalidQuery, "limit", "limit %q: want 1 to 100", l)
		}
		lq.limit = n
	}
	lq.after = q.Get("nextToken")
	if len(lq.after) > 128 {
		return lq, api.FieldErrorf(api.KindInvalidQuery, "nextToken", "too long: pass the X-Next-Token of the page before")
	}
	return lq, nil
}

func (h *Handler) handleList(w http.ResponseWriter, r *http.Request, p caller) error {
	if err := h.authorize(r.Context(), p, sandbox.ActionList, ""); err != nil {
		return err
	}
	lq, err := parseListQuery(r.URL.Query())
	if err != nil {
		return err
	}
	if r.URL.Path == Prefix+"/sandboxes" {
		lq.states = map[string]bool{"running": true} // v1 lists running ones
	}
	infos := h.m.List()
	sort.Slice(infos, func(i, j int) bool { return infos[i].ID < infos[j].ID })
	out := []sandboxDetail{}
	running, next := 0, ""
	for _, info := range infos {
		if h.cfg.Visible != nil && !h.cfg.Visible(r, info) {
			continue
		}
		d := h.detail(info)
		if d.State == "running" {
			running++
		}
		if len(lq.states) > 0 && !lq.states[d.State] || info.ID <= lq.after || !matches(d.Metadata, lq.metadata) {
			continue
		}
		if len(out) == lq.limit {
			next = out[len(out)-1].SandboxID
			continue
		}
		out = append(out, d)
	}
	if next != "" {
		w.Header().Set("X-Next-Token", next)
	}
	w.Header().Set("X-Total-Running", strconv.Itoa(running))
	writeJSON(w, http.StatusOK, out)
	return nil
}

func matches(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func (h *Handler) handleKill(w http.ResponseWriter, r *http.Request, p caller) error {
	_, info, err := h.lookup(r, p, sandbox.ActionDelete)
	if err != nil {
		return err
	}
	h.procs.closeSandbox(info.ID)
	if err := h.m.Delete(r.Context(), info.ID); err != nil {
		return sandboxhttp.ProblemFor(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) handleTimeout(w http.ResponseWriter, r *http.Request, p caller) error {
	_, info, err := h.lookup(r, p, sandbox.ActionManage)
	if err != nil {
		return err
	}
	var req struct {
		Timeout *float64 `json:"timeout"`
	}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Timeout == nil {
		return api.FieldErrorf(api.KindValidation, "timeout", "timeout (seconds) is required")
	}
	d, err := h.seconds("timeout", *req.Timeout, h.cfg.MaxTimeout)
	if err != nil {
		return err
	}
	if _, err := h.m.Extend(info.ID, d); err != nil {
		return sandboxhttp.ProblemFor(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) handleRefresh(w http.ResponseWriter, r *http.Request, p caller) error {
	_, info, err := h.lookup(r, p, sandbox.ActionManage)
	if err != nil {
		return err
	}
	var req struct {
		Duration *float64 `json:"duration"`
	}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	d := time.Duration(0)
	if req.Duration != nil {
		if d, err = h.seconds("duration", *req.Duration, time.Hour); err != nil {
			return err
		}
	}
	if err := h.extendTo(info.ID, info, d); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// extendTo moves the sandbox's end to now+d if that is later than it is.
func (h *Handler) extendTo(id string, info sandbox.Info, d time.Duration) error {
	if d <= 0 || !h.cfg.Now().Add(d).After(info.Deadline) {
		return nil
	}
	if _, err := h.m.Extend(id, d); err != nil {
		return sandboxhttp.ProblemFor(err)
	}
	return nil
}

func (h *Handler) handlePause(w http.ResponseWriter, r *http.Request, p caller) error {
	_, info, err := h.lookup(r, p, sandbox.ActionManage)
	if err != nil {
		return err
	}
	var req struct {
		Memory *bool `json:"memory"`
	}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	err = h.m.Pause(r.Context(), info.ID)
	if errors.Is(err, sandbox.ErrPaused) || errors.Is(err, sandbox.ErrStopped) {
		return api.Errorf(api.KindConflict, "sandbox %s is already paused", info.ID)
	}
	if err != nil {
		return sandboxhttp.ProblemFor(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleConnect resumes a paused sandbox (201) or answers a running one
// (200), moving its end to timeout seconds from now if that is later.
func (h *Handler) handleConnect(w http.ResponseWriter, r *http.Request, p caller) error {
	_, info, err := h.lookup(r, p, sandbox.ActionManage)
	if err != nil {
		return err
	}
	var req struct {
		Timeout *float64 `json:"timeout"`
	}
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	var d time.Duration
	if req.Timeout != nil {
		if d, err = h.seconds("timeout", *req.Timeout, h.cfg.MaxTimeout); err != nil {
			return err
		}
	}
	status := http.StatusOK
	switch info.State {
	case sandbox.StateStopped:
		if _, err := h.m.StartSandbox(r.Context(), info.ID); err != nil {
			return sandboxhttp.ProblemFor(err)
		}
		status = http.StatusCreated
	case sandbox.StatePaused:
		if err := h.m.Resume(r.Context(), info.ID); err != nil {
			return sandboxhttp.ProblemFor(err)
		}
		status = http.StatusCreated
	}
	if info, err = h.m.Info(info.ID); err != nil {
		return sandboxhttp.ProblemFor(err)
	}
	if err := h.extendTo(info.ID, info, d); err != nil {
		return err
	}
	writeJSON(w, status, h.out(info.ID, info.Tier, p.keyHash))
	return nil
}

// forkRequest is the body of POST /sandboxes/{id}/fork (parseFork): well
// formed, no key twice, the known fields of the right types; an unknown
// field is allowed, as on every E2B route.
type forkRequest struct {
	Count   *int     `json:"count"`
	Timeout *float64 `json:"timeout"`
}

// forkResult is one entry of the fork answer: exactly one of the two.
type forkResult struct {
	Sandbox *sandboxOut `json:"sandbox,omitempty"`
	Error   *apiError   `json:"error,omitempty"`
}

// forkTimeout is E2B's default lifetime of a fork's copies.
const forkTimeout = 15 * time.Second

// parseFork validates a fork body: the count of copies (default 1; its
// limits are the native fork route's) and their timeout (default
// forkTimeout). An empty body is all defaults.
func (h *Handler) parseFork(b []byte) (n int, d time.Duration, err error) {
	var req forkRequest
	if len(bytes.TrimSpace(b)) > 0 {
		// Well formed, no key twice; unknown fields are allowed, as on
		// every E2B route (newer clients send newer ones).
		if err := strictjson.Check(b); err != nil {
			return 0, 0, err
		}
		if t := bytes.TrimSpace(b); t[0] != '{' {
			return 0, 0, api.Errorf(api.KindInvalidJSON, "the fork body must be a JSON object {\"count\", \"timeout\"}")
		}
		if err := json.Unmarshal(b, &req); err != nil {
			return 0, 0, api.Errorf(api.KindInvalidJSON, "malformed fork body: %v", err)
		}
	}
	n, d = 1, forkTimeout
	if req.Count != nil {
		n = *req.Count
	}
	if err := sandboxhttp.CheckForkCount(n); err != nil {
		return 0, 0, err
	}
	if req.Timeout != nil {
		if d, err = h.seconds("timeout", *req.Timeout, h.cfg.MaxTimeout); err != nil {
			return 0, 0, err
		}
	}
	return n, d, nil
}

// handleFork makes count copies (default 1) of a running sandbox with
// the Manager's fork (filesystem only on the process tier), each ending
// timeout seconds from now (default 15, as E2B). It answers 201 with one
// entry per copy, the sandbox or the error that kept it from starting;
// any other status means no copy was attempted.
func (h *Handler) handleFork(w http.ResponseWriter, r *http.Request, p caller) error {
	_, info, err := h.lookup(r, p, sandbox.ActionManage)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return bodyError(err)
	}
	n, d, err := h.parseFork(b)
	if err != nil {
		return err
	}
	switch info.State {
	case sandbox.StateRunning:
	case sandbox.StatePaused:
		return api.Errorf(api.KindConflict, "sandbox %s is paused: only a running sandbox can be forked (resume it with connect)", info.ID)
	default:
		return api.Errorf(api.KindConflict, "sandbox %s is %s: only a running sandbox can be forked (start it again first)", info.ID, info.State)
	}
	if len(info.Volumes) > 0 { // the volume.mount check lives on the /v1 route
		writeJSON(w, http.StatusNotImplemented, apiError{Code: http.StatusNotImplemented,
			Message: "fork of a sandbox with volumes is not supported by the E2B-compatible API: use POST /v1/sandboxes/" + info.ID + "/fork"})
		return nil
	}
	copies, err := h.m.ForkEach(r.Context(), info.ID, n, d)
	if err != nil {
		return sandboxhttp.ProblemFor(err)
	}
	out := make([]forkResult, len(copies))
	for i, c := range copies {
		if c.Err != nil {
			e := h.apiErrorOf(r, sandboxhttp.ProblemFor(c.Err))
			out[i].Error = &e
			continue
		}
		o := h.out(c.Sandbox.ID(), c.Sandbox.Tier(), p.keyHash)
		out[i].Sandbox = &o
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}
