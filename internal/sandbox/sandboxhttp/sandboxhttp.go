// Package sandboxhttp serves the sandbox API (/v1/sandboxes/...) over a
// *sandbox.Manager: create, list, show, extend, delete, pause and resume
// sandboxes; exec with streamed output (newline-delimited JSON or
// Server-Sent Events) or in the background; processes and signals; and
// files under the writable paths. It turns sandbox errors into problem+json
// answers with the right kind.
//
// It owns no sandboxes and no isolation: the Manager and its tiers do. It
// does not authenticate; the Router's middleware has done that before a
// handler runs.
package sandboxhttp

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/egress/hostpattern"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/image"
	"github.com/agentcloud/agentcloud/internal/sandbox/snapshot"
	"github.com/agentcloud/agentcloud/internal/sandbox/volume"
)

// Config configures a Handler.
type Config struct {
	// Manager serves the requests. When nil, every route answers 503 with
	// Unavailable as the reason (the daemon runs without sandboxes).
	Manager *sandbox.Manager
	// Tiers are the tiers the Manager was built with, for validating
	// requests and naming the alternatives in errors.
	Tiers []sandbox.Tier
	// Unavailable says why sandboxes are off when Manager is nil.
	Unavailable error
	// MaxTimeout caps timeout_s in requests; default 24h.
	MaxTimeout time.Duration
	Logger     *slog.Logger

	// BeforeCreate, if set, runs after a create request is validated and
	// before the sandbox is made: it may refuse (an api.Problem) or add
	// reserved labels (owner) to spec. The daemon checks quotas here.
	BeforeCreate func(r *http.Request, spec *sandbox.Spec) error
	// Visible, if set, filters GET /v1/sandboxes to what the caller may read.
	Visible func(r *http.Request, info sandbox.Info) bool
	// Identity, if set, names a sandbox's SPIFFE ID in descriptions.
	Identity func(id string) string
	// PortKey (32 bytes or more) signs public port URLs; without it
	// they are off. Now is their clock (default time.Now).
	PortKey []byte
	Now     func() time.Time
	// Images, if set, serves /v1/templates (image templates).
	Images *image.Store
	// Snapshots, if set, serves the snapshot routes (snapshots.go);
	// SnapshotVisible filters GET /v1/snapshots to what the caller may read.
	Snapshots       *snapshot.Service
	SnapshotVisible func(r *http.Request, id string) bool
	// Volumes, if set, serves /v1/volumes and mounts volumes on create;
	// Authorizer then decides volume.mount for each (volumes.go).
	Volumes    *volume.Store
	Authorizer httpapi.Authorizer
}

// Handler serves the sandbox API.
type Handler struct {
	m           *sandbox.Manager
	templates   map[string][]string // tier name -> templates
	unavailable error
	maxTimeout  time.Duration
	log         *slog.Logger
	cfg         Config
}

// New returns a Handler; register it with Routes.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = 24 * time.Hour
	}
	if cfg.Manager == nil && cfg.Unavailable == nil {
		cfg.Unavailable = fmt.Errorf("sandboxes are not enabled on this node")
	}
	h := &Handler{m: cfg.Manager, templates: map[string][]string{}, unavailable: cfg.Unavailable,
		maxTimeout: cfg.MaxTimeout, log: cfg.Logger, cfg: cfg}
	for _, t := range cfg.Tiers {
		h.templates[t.Name()] = t.Templates()
	}
	if cfg.Images != nil && cfg.Manager != nil {
		cfg.Images.InUse = image.UsedBy(cfg.Manager.List) // delete refuses while sandboxes use it
	}
	if cfg.Volumes != nil && cfg.Manager != nil {
		cfg.Volumes.MountedBy = volume.MountedBy(cfg.Manager.List)
	}
	return h
}

const tag = "sandboxes"

// Authorization actions of the sandbox routes (sandbox.Action*, shared
// with env.sandbox and the run_code tool).
const (
	ActionCreate = sandbox.ActionCreate
	ActionList   = sandbox.ActionList
	ActionRead   = sandbox.ActionRead
	ActionWrite  = sandbox.ActionWrite
	ActionExec   = sandbox.ActionExec
	ActionManage = sandbox.ActionManage
	ActionDelete = sandbox.ActionDelete
)

func sandboxResource(r *http.Request) httpapi.Resource {
	return httpapi.Resource{Type: "Sandbox", ID: r.PathValue("sandbox")}
}

// Routes registers every sandbox endpoint.
func (h *Handler) Routes(r *httpapi.Router) {
	add := func(rt httpapi.Route) {
		rt.Tag, rt.Handler = tag, h.guard(rt.Handler)
		if strings.Contains(rt.Path, "{sandbox}") {
			rt.Resource = sandboxResource
		}
		r.Handle(rt)
	}
	const sb = "/v1/sandboxes/{sandbox}"
	add(httpapi.Route{Method: "POST", Path: "/v1/sandboxes", Action: ActionCreate, Status: http.StatusCreated,
		Resource: func(*http.Request) httpapi.Resource { return httpapi.Resource{Type: "Sandbox"} }, // a new one
		Summary:  "Create a sandbox (from a warm pool when one matches) and answer its description.",
		Request:  api.CreateSandboxRequest{}, Response: api.Sandbox{}, Handler: h.handleCreate})
	add(httpapi.Route{Method: "GET", Path: "/v1/sandboxes", Action: ActionList, Summary: "List live sandboxes.",
		Response: api.SandboxList{}, Handler: h.handleList})
	add(httpapi.Route{Method: "GET", Path: sb, Action: ActionRead, Summary: "Show one sandbox.",
		Response: api.Sandbox{}, Handler: h.handleGet})
	add(httpapi.Route{Method: "DELETE", Path: sb, Action: ActionDelete, Status: http.StatusNoContent,
		Summary: "Delete a sandbox: kill its processes and free everything it holds.", Handler: h.handleDelete})
	add(httpapi.Route{Method: "POST", Path: sb + "/extend", Action: ActionManage,
		Summary: "Set the sandbox to expire timeout_s seconds from now.",
		Request: api.ExtendSandboxRequest{}, Response: api.Sandbox{}, Handler: h.handleExtend})
	add(httpapi.Route{Method: "POST", Path: sb + "/pause", Action: ActionManage, Summary: "Freeze every process of the sandbox.",
		Response: api.Sandbox{}, Handler: h.handlePause})
	add(httpapi.Route{Method: "POST", Path: sb + "/resume", Action: ActionManage, Summary: "Thaw a paused sandbox.",
		Response: api.Sandbox{}, Handler: h.handleResume})
	add(httpapi.Route{Method: "POST", Path: sb + "/fork", Action: ActionManage, Status: http.StatusCreated,
		Summary: "Make count copies of the sandbox, each with a copy of its /workspace (and, on an image template, of what it changed in its root) and, on the gVisor tier, of its memory state.",
		Request: api.ForkSandboxRequest{}, Response: api.SandboxList{}, Handler: h.handleFork})
	add(httpapi.Route{Method: "POST", Path: sb + "/start", Action: ActionManage,
		Summary:  "Run a stopped sandbox (after a daemon restart) again with its files; a running one is answered as it is.",
		Response: api.Sandbox{}, Handler: h.handleStart})

	add(httpapi.Route{Method: "POST", Path: sb + "/exec", Action: ActionExec, Request: api.ExecRequest{}, Response: api.ExecEvent{},
		RawContentType: api.ExecStreamContentType, Handler: h.handleExec,
		Summary: "Run a command; stream its output as newline-delimited JSON events (SSE with Accept: text/event-stream) ending with exit or error, or answer 202 {pid} with background: true."})
	add(httpapi.Route{Method: "GET", Path: sb + "/processes", Action: ActionRead, Summary: "List the processes running in the sandbox.",
		Response: api.ProcessList{}, Handler: h.handleProcesses})
	add(httpapi.Route{Method: "POST", Path: sb + "/processes/{pid}/signal", Action: ActionExec, Status: http.StatusNoContent,
		Summary: "Send a signal (TERM, KILL, INT, ...) to a process in the sandbox.",
		Request: api.SignalRequest{}, Handler: h.handleSignal})

	filePath := httpapi.QueryParam{Name: "path", Required: true, Description: "a path under /workspace or /tmp (relative paths are under /workspace)"}
	add(httpapi.Route{Method: "PUT", Path: sb + "/files", Action: ActionWrite, RequestContentType: "application/octet-stream",
		Query:    []httpapi.QueryParam{filePath, {Name: "mode", Description: "octal permission bits, e.g. 0644 (the default) or 0755"}},
		Summary:  "Upload the raw request body to ?path= (under /workspace or /tmp; &mode=0644 optional), replacing any file there.",
		Response: api.SandboxFile{}, Handler: h.handlePutFile})
	add(httpapi.Route{Method: "GET", Path: sb + "/files", Action: ActionRead, RawContentType: "application/octet-stream",
		Summary: "Download the file at ?path= as raw bytes.", Query: []httpapi.QueryParam{filePath}, Handler: h.handleGetFile})
	add(httpapi.Route{Method: "DELETE", Path: sb + "/files", Action: ActionWrite, Status: http.StatusNoContent,
		Summary: "Remove the file or directory tree at ?path=.", Query: []httpapi.QueryParam{filePath}, Handler: h.handleRemoveFile})
	add(httpapi.Route{Method: "GET", Path: sb + "/files/list", Action: ActionRead,
		Summary: "List the directory at ?path= (default /workspace).", Response: api.FileList{}, Handler: h.handleListFiles,
		Query: []httpapi.QueryParam{{Name: "path", Description: "a directory under /workspace or /tmp (default /workspace)"}}})
	add(httpapi.Route{Method: "GET", Path: sb + "/files/stat", Action: ActionRead,
		Summary: "Describe the file at ?path=.", Response: api.SandboxFile{}, Query: []httpapi.QueryParam{filePath}, Handler: h.handleStatFile})
	add(httpapi.Route{Method: "POST", Path: sb + "/files/mkdir", Action: ActionWrite, Status: http.StatusCreated,
		Summary: "Create the directory at ?path= with its parents.", Response: api.SandboxFile{}, Query: []httpapi.QueryParam{filePath}, Handler: h.handleMkdir})
	h.portRoutes(add, r)
	h.terminalRoutes(add)
	h.templateRoutes(r)
	h.snapshotRoutes(add)
	h.volumeRoutes(r)
}

// guard answers 503 when sandboxes are off.
func (h *Handler) guard(fn httpapi.HandlerFunc) httpapi.HandlerFunc {
	if h.m != nil {
		return fn
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		return api.Errorf(api.KindUnavailable, "sandboxes are unavailable on this node: %v", h.unavailable)
	}
}

func (h *Handler) handleCreate(w http.ResponseWriter, r *http.Request) error {
	var req api.CreateSandboxRequest
	if err := httpapi.DecodeJSON(r, &req); err != nil {
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
	release, err := h.mountVolumes(r, req.Volumes, &spec)
	if err != nil {
		return err
	}
	defer release()
	sb, err := h.m.Create(r.Context(), "", spec)
	if err != nil {
		return problemFor(err)
	}
	out, err := h.describe(sb.ID())
	if err != nil {
		return problemFor(err)
	}
	w.Header().Set("Location", "/v1/sandboxes/"+out.ID)
	httpapi.WriteJSON(w, http.StatusCreated, out)
	return nil
}

// specFor validates a create request and turns it into a Spec.
func (h *Handler) specFor(req api.CreateSandboxRequest) (sandbox.Spec, error) {
	tier := req.Tier
	if tier == "" {
		tier = sandbox.TierProcess
	}
	templates, ok := h.templatesOf(tier)
	if !ok {
		if tier == sandbox.TierProcess || tier == sandbox.TierGVisor {
			return sandbox.Spec{}, api.FieldErrorf(api.KindValidation, "tier",
				"tier %q is not enabled on this node; enabled tiers: %s", tier, h.tierNames())
		}
		return sandbox.Spec{}, api.FieldErrorf(api.KindValidation, "tier",
			"unknown tier %q: want one of %s", tier, h.tierNames())
	}
	template := req.Template
	if template == "" {
		template = sandbox.TemplateHost
	}
	if !slices.Contains(templates, template) {
		return sandbox.Spec{}, api.FieldErrorf(api.KindValidation, "template",
			"unknown template %q for tier %s: want one of %s", template, tier, strings.Join(templates, ", "))
	}
	var errs []api.FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, api.FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
	}
	l := req.Limits
	if math.IsNaN(l.CPUs) || l.CPUs < 0 || l.CPUs > 256 {
		bad("limits.cpus", "must be between 0 (default) and 256 cores")
	}
	if l.MemoryMB < 0 || (l.MemoryMB > 0 && l.MemoryMB < 32) || l.MemoryMB > 1<<20 {
		bad("limits.memory_mb", "must be 0 (default) or between 32 and 1048576")
	}
	if l.Pids < 0 || (l.Pids > 0 && l.Pids < 8) || l.Pids > 1<<20 {
		bad("limits.pids", "must be 0 (default) or between 8 and 1048576")
	}
	if l.DiskMB < 0 || l.DiskMB > 1<<20 {
		bad("limits.disk_mb", "must be between 0 (default) and 1048576")
	}
	timeout, terr := h.timeout(req.TimeoutS, "timeout_s")
	if terr != nil {
		errs = append(errs, *terr)
	}
	errs = append(errs, checkEnv("env", req.Env)...)
	labels := make(map[string]string, len(req.Metadata)+2)
	for k, v := range req.Metadata {
		if k == "" || len(k) > 128 || len(v) > 1024 {
			bad("metadata", "keys must be 1-128 bytes and values at most 1024 bytes")
			break
		}
		if strings.HasPrefix(k, sandbox.LabelPrefix) {
			bad("metadata."+k, "keys starting with %q are reserved for the platform", sandbox.LabelPrefix)
			break
		}
		labels[k] = v
	}
	if len(req.Metadata) > 64 {
		bad("metadata", "at most 64 entries")
	}
	errs = append(errs, checkEgress(req.Egress, req.Secrets)...)
	if err := validation(errs); err != nil {
		return sandbox.Spec{}, err
	}
	if len(req.Egress) > 0 {
		labels[sandbox.LabelEgress] = strings.Join(req.Egress, ",")
	}
	if len(req.Secrets) > 0 {
		labels[sandbox.LabelSecrets] = strings.Join(req.Secrets, ",")
	}
	if len(labels) == 0 {
		labels = nil
	}
	return sandbox.Spec{
		Tier: tier, Template: template,
		Limits:  sandbox.Limits{CPUs: l.CPUs, MemoryMB: l.MemoryMB, Pids: l.Pids, DiskMB: l.DiskMB},
		Env:     req.Env,
		Timeout: timeout,
		Labels:  labels,
	}, nil
}

// secretNameRE is the secret name syntax of {{secret:NAME}} placeholders.
var secretNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// checkEgress validates the egress host patterns and secret names of a
// create request.
func checkEgress(egress, secretNames []string) []api.FieldError {
	var errs []api.FieldError
	if len(egress) > 64 {
		errs = append(errs, api.FieldError{Field: "egress", Detail: "at most 64 host patterns"})
	}
	for i, p := range egress {
		// The egress matcher's own parser: no ',' (the label's separator)
		// gets through it.
		if _, err := hostpattern.Parse(p); err != nil {
			errs = append(errs, api.FieldError{Field: fmt.Sprintf("egress[%d]", i),
				Detail: fmt.Sprintf("host pattern %q: %v (a host name such as api.example.com or *.example.com, optionally with :port; without one, ports 80 and 443)", p, err)})
		}
	}
	if len(secretNames) > 64 {
		errs = append(errs, api.FieldError{Field: "secrets", Detail: "at most 64 secret names"})
	}
	for i, n := range secretNames {
		if !secretNameRE.MatchString(n) {
			errs = append(errs, api.FieldError{Field: fmt.Sprintf("secrets[%d]", i),
				Detail: fmt.Sprintf("secret name %q: want 1-128 of A-Z a-z 0-9 _ . -", n)})
		}
	}
	return errs
}

// timeout validates a timeout in seconds (0 = default).
func (h *Handler) timeout(s float64, field string) (time.Duration, *api.FieldError) {
	if math.IsNaN(s) || s < 0 || s > h.maxTimeout.Seconds() {
		return 0, &api.FieldError{Field: field,
			Detail: fmt.Sprintf("must be between 0 (default) and %.0f seconds", h.maxTimeout.Seconds())}
	}
	return time.Duration(s * float64(time.Second)), nil
}

func (h *Handler) tierNames() string {
	var names []string
	for n := range h.templates {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "(none)"
	}
	return strings.Join(names, ", ")
}

// validation turns field errors into one 422 problem, or nil.
func validation(errs []api.FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	p := api.Errorf(api.KindValidation, "invalid %s: %s", errs[0].Field, errs[0].Detail)
	if len(errs) == 1 {
		p.Field = errs[0].Field
	}
	p.Errors = errs
	return p
}

// checkEnv validates environment variable names and values.
func checkEnv(field string, env map[string]string) []api.FieldError {
	var errs []api.FieldError
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(env[k], 0) {
			errs = append(errs, api.FieldError{Field: field + "." + k,
				Detail: "variable names must be non-empty without '=' or NUL, values without NUL"})
		}
	}
	return errs
}

func (h *Handler) handleList(w http.ResponseWriter, r *http.Request) error {
	infos := h.m.List()
	out := api.SandboxList{Sandboxes: make([]api.Sandbox, 0, len(infos))}
	for _, info := range infos {
		if h.cfg.Visible != nil && !h.cfg.Visible(r, info) {
			continue
		}
		out.Sandboxes = append(out.Sandboxes, h.wire(info))
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handler) handleGet(w http.ResponseWriter, r *http.Request) error {
	out, err := h.describe(r.PathValue("sandbox"))
	if err != nil {
		return problemFor(err)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handler) handleDelete(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("sandbox")
	if err := h.m.Delete(r.Context(), id); err != nil {
		return problemFor(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) handleExtend(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("sandbox")
	if _, err := h.m.Info(id); err != nil {
		return problemFor(err)
	}
	var req api.ExtendSandboxRequest
	if err := httpapi.DecodeJSON(r, &req); err != nil {
		return err
	}
	d, fe := h.timeout(req.TimeoutS, "timeout_s")
	if fe == nil && d <= 0 {
		fe = &api.FieldError{Field: "timeout_s", Detail: "must be positive"}
	}
	if fe != nil {
		return validation([]api.FieldError{*fe})
	}
	if _, err := h.m.Extend(id, d); err != nil {
		return problemFor(err)
	}
	return h.answer(w, id)
}

func (h *Handler) handlePause(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("sandbox")
	if err := h.m.Pause(r.Context(), id); err != nil && !errors.Is(err, sandbox.ErrPaused) {
		return problemFor(err)
	}
	return h.answer(w, id)
}

func (h *Handler) handleResume(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("sandbox")
	if err := h.m.Resume(r.Context(), id); err != nil {
		return problemFor(err)
	}
	return h.answer(w, id)
}

// CheckForkCount validates the count of copies of a fork request: 1 to
// sandbox.MaxForks, else a validation problem naming count. The E2B
// fork route checks its count here too.
func CheckForkCount(n int) error {
	if n < 1 || n > sandbox.MaxForks {
		return validation([]api.FieldError{{Field: "count", Detail: fmt.Sprintf("must be 1 to %d", sandbox.MaxForks)}})
	}
	return nil
}

func (h *Handler) handleFork(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("sandbox")
	info, err := h.m.Info(id)
	if err != nil {
		return problemFor(err)
	}
	var req api.ForkSandboxRequest
	if err := httpapi.DecodeJSON(r, &req); err != nil {
		return err
	}
	if err := CheckForkCount(req.Count); err != nil {
		return err
	}
	// The copies mount the source's volumes (its owner's): the same check
	// as a create, held until the copies are made.
	_, release, err := h.resolveVolumes(r, info.Labels[sandbox.LabelOwner], volume.MountsOf(info.Volumes))
	if err != nil {
		return err
	}
	defer release()
	copies, err := h.m.ForkWith(r.Context(), id, sandbox.ForkOptions{Count: req.Count, Parked: req.Paused})
	if err != nil {
		return problemFor(err)
	}
	out := api.SandboxList{Sandboxes: make([]api.Sandbox, 0, len(copies))}
	var first error
	for _, c := range copies {
		if c.Err != nil {
			first = cmp.Or(first, c.Err)
			continue
		}
		if d, derr := h.describe(c.ID); derr == nil {
			out.Sandboxes = append(out.Sandboxes, d)
		}
	}
	if len(out.Sandboxes) == 0 && first != nil {
		return problemFor(first)
	}
	if first != nil { // some made: answer them, say why the rest were not
		h.log.Warn("fork cut short", "sandbox", id, "made", len(out.Sandboxes), "err", first)
	}
	httpapi.WriteJSON(w, http.StatusCreated, out)
	return nil
}

func (h *Handler) handleStart(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("sandbox")
	if _, err := h.m.StartSandbox(r.Context(), id); err != nil {
		return problemFor(err)
	}
	return h.answer(w, id)
}

func (h *Handler) answer(w http.ResponseWriter, id string) error {
	out, err := h.describe(id)
	if err != nil {
		return problemFor(err)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (h *Handler) describe(id string) (api.Sandbox, error) {
	info, err := h.m.Info(id)
	if err != nil {
		return api.Sandbox{}, err
	}
	return h.wire(info), nil
}

func (h *Handler) wire(info sandbox.Info) api.Sandbox {
	l := info.Limits
	out := api.Sandbox{
		ID: info.ID, Tier: info.Tier, Template: info.Template,
		Created: info.Created.UTC(), Expires: info.Deadline.UTC(),
		Limits: api.SandboxLimits{CPUs: l.CPUs, MemoryMB: l.MemoryMB, Pids: l.Pids, DiskMB: l.DiskMB},
		Paused: info.State == sandbox.StatePaused, State: api.SandboxStateRunning, Failure: info.Failure, Reason: info.Reason,
	}
	switch {
	case info.Failure != "":
		out.State = api.SandboxStateFailed
	case info.State == sandbox.StatePaused:
		out.State = api.SandboxStatePaused
	case info.State == sandbox.StateStopped:
		out.State = api.SandboxStateStopped
	}
	for k, v := range info.Labels {
		switch k {
		case sandbox.LabelOwner:
			out.Owner = v
		case sandbox.LabelSession:
			out.Session = v
		case sandbox.LabelEgress:
			out.Egress = strings.Split(v, ",")
		case sandbox.LabelSecrets:
			out.Secrets = strings.Split(v, ",")
		default:
			if out.Metadata == nil {
				out.Metadata = map[string]string{}
			}
			out.Metadata[k] = v
		}
	}
	if h.cfg.Identity != nil {
		out.Identity = h.cfg.Identity(info.ID)
	}
	out.Volumes = wireVolumes(volume.MountsOf(info.Volumes))
	return out
}

// wireVolumes is the API form of a sandbox's (or snapshot's) volumes.
func wireVolumes(vs []sandbox.VolumeRef) []api.SandboxVolume {
	var out []api.SandboxVolume
	for _, v := range vs {
		out = append(out, api.SandboxVolume{Name: v.Name, Path: v.Path, ReadOnly: v.ReadOnly})
	}
	return out
}
