package toolbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/strictjson"
	"github.com/agentcloud/agentcloud/internal/telemetry"
)

// DefaultMaxArgBytes caps the JSON arguments of one call.
const DefaultMaxArgBytes = 256 << 10

// BuiltinProvider is the provider name of the built-in tools.
const BuiltinProvider = "builtin"

// Authorizer decides whether c may call t (policy: principal, action
// "tool.call", resource Tool::"name", with the caller's session labels). It
// returns an error wrapping ErrForbidden, with a reason, to refuse.
type Authorizer interface {
	AuthorizeTool(ctx context.Context, c Caller, t Tool) error
}

// Auditor records every call, allowed or not.
type Auditor interface {
	AuditTool(ctx context.Context, rec CallRecord)
}

// Labeler is told when a caller read untrusted tool output, before the
// output is handed over (the daemon lowers the session's integrity).
type Labeler interface {
	ReadUntrusted(ctx context.Context, c Caller, tool string) error
}

// CallRecord is the audit record of one call. Arguments and results are
// recorded by hash only.
type CallRecord struct {
	Tool         string
	Caller       Caller
	Decision     string // "allow" or "deny"
	Code         Code   // set when the call was refused or failed
	Error        string
	ArgsSHA256   string
	ResultSHA256 string
	Duration     time.Duration
	Untrusted    bool
}

// Rate is a token bucket: Burst calls at once, refilled at PerSecond. A
// zero PerSecond means no limit.
type Rate struct {
	PerSecond float64 `json:"perSecond"`
	Burst     int     `json:"burst"`
}

// Config configures a Toolbox.
type Config struct {
	// Builtins is listed first, under BuiltinProvider; nil for none.
	Builtins   Provider
	Authorizer Authorizer // nil: everything allowed (tests of this package only)
	Auditor    Auditor
	Labeler    Labeler
	// MaxArgBytes caps a call's arguments (default DefaultMaxArgBytes).
	MaxArgBytes int
	// ToolRate limits calls of each tool across callers; ToolRates
	// overrides it per tool name.
	ToolRate  Rate
	ToolRates map[string]Rate
	// CallerRate limits the calls of each agent (or, for callers that are
	// not agent code, each principal) across tools.
	CallerRate Rate
	Now        func() time.Time
	Logger     *slog.Logger
	// Metrics registers the toolbox's collectors (metrics.go); nil: none.
	// If they cannot be registered (twice on one registry), New logs it
	// and the toolbox runs without them.
	Metrics prometheus.Registerer
}

// Toolbox is the one set of tools: built-ins first, then the providers
// added at runtime. It is safe for concurrent use.
type Toolbox struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	schemas schemaCache
	limits  *limiter
	met     *metrics // nil: no metrics

	mu        sync.RWMutex // protects providers
	providers []namedProvider
}

type namedProvider struct {
	name string
	p    Provider
}

// New returns a Toolbox.
func New(cfg Config) *Toolbox {
	if cfg.MaxArgBytes <= 0 {
		cfg.MaxArgBytes = DefaultMaxArgBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	tb := &Toolbox{cfg: cfg, log: cfg.Logger, now: cfg.Now, limits: newLimiter(cfg.ToolRate, cfg.ToolRates, cfg.CallerRate)}
	met, err := newMetrics(cfg.Metrics)
	if err != nil {
		cfg.Logger.Warn("toolbox metrics not registered", "err", err)
	}
	tb.met = met
	if cfg.Builtins != nil {
		tb.providers = []namedProvider{{BuiltinProvider, cfg.Builtins}}
	}
	return tb
}

// MaxArgBytes is the argument size cap.
func (tb *Toolbox) MaxArgBytes() int { return tb.cfg.MaxArgBytes }

// AddProvider registers (or replaces) the provider called name. Its tools
// come after the built-ins when names clash.
func (tb *Toolbox) AddProvider(name string, p Provider) error {
	if name == "" || name == BuiltinProvider {
		return fmt.Errorf("add tool provider: name %q is reserved or empty", name)
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for i, np := range tb.providers {
		if np.name == name {
			tb.providers[i].p = p
			return nil
		}
	}
	tb.providers = append(tb.providers, namedProvider{name, p})
	return nil
}

// SetToolRate sets the rate limit of one tool across callers (e.g. an
// upstream's quota); a zero Rate restores Config.ToolRate.
func (tb *Toolbox) SetToolRate(name string, r Rate) { tb.limits.set(name, r) }

// RemoveProvider unregisters the provider called name; it reports whether
// one was there.
func (tb *Toolbox) RemoveProvider(name string) bool {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for i, np := range tb.providers {
		if np.name == name && name != BuiltinProvider {
			tb.providers = slices.Delete(tb.providers, i, i+1)
			return true
		}
	}
	return false
}

func (tb *Toolbox) snapshot() []namedProvider {
	tb.mu.RLock()
	defer tb.mu.RUnlock()
	return slices.Clone(tb.providers)
}

// List returns every tool sorted by name. A provider that fails to list is
// logged and skipped, so one broken upstream does not hide the rest.
func (tb *Toolbox) List(ctx context.Context) ([]Tool, error) {
	seen := map[string]bool{}
	var out []Tool
	for _, np := range tb.snapshot() {
		ts, err := np.p.Tools(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("list tools: %w", ctx.Err())
			}
			tb.log.WarnContext(ctx, "tool provider failed to list", "provider", np.name, "err", err)
			continue
		}
		for _, t := range ts {
			if seen[t.Name] {
				continue // built-ins and earlier providers win
			}
			seen[t.Name] = true
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Search ranks tools by how many of words occur in their name (counted
// twice) and description, best first, then by name; tools matching no word
// are left out. Quarantined tools are included (marked). limit <= 0 means 20.
func (tb *Toolbox) Search(ctx context.Context, words string, limit int) ([]Tool, error) {
	if limit <= 0 {
		limit = 20
	}
	all, err := tb.List(ctx)
	if err != nil {
		return nil, err
	}
	terms := strings.Fields(strings.ToLower(words))
	if len(terms) == 0 {
		return all[:min(limit, len(all))], nil
	}
	type scored struct {
		t     Tool
		score int
	}
	var hits []scored
	for _, t := range all {
		name, desc := strings.ToLower(t.Name+" "+t.Title), strings.ToLower(t.Description)
		score := 0
		for _, w := range terms {
			if strings.Contains(name, w) {
				score += 2
			}
			if strings.Contains(desc, w) {
				score++
			}
		}
		if score > 0 {
			hits = append(hits, scored{t, score})
		}
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].score > hits[j].score })
	out := make([]Tool, 0, min(limit, len(hits)))
	for _, h := range hits[:min(limit, len(hits))] {
		out = append(out, h.t)
	}
	return out, nil
}

// Lookup finds a tool and its provider by name.
func (tb *Toolbox) Lookup(ctx context.Context, name string) (Tool, Provider, error) {
	for _, np := range tb.snapshot() {
		ts, err := np.p.Tools(ctx)
		if err != nil {
			tb.log.WarnContext(ctx, "tool provider failed to list", "provider", np.name, "err", err)
			continue
		}
		for _, t := range ts {
			if t.Name == name {
				return t, np.p, nil
			}
		}
	}
	return Tool{}, nil, Errorf(CodeUnknownTool, name, "unknown tool %q: list the tools with tools/list or search_tools", clip(name, 100))
}

// Call runs one tool for c: size cap, lookup, quarantine, the manifest's
// tool list, policy, rate limits, schema validation, the call itself, the
// untrusted-output hook, and an audit record whatever happened. Refusals
// and failures are *Error values.
func (tb *Toolbox) Call(ctx context.Context, c Caller, name string, args json.RawMessage) (res Result, err error) {
	start := tb.now()
	ctx, span := telemetry.Start(ctx, "tool.call", "agentcloud.tool", name)
	defer func() { telemetry.End(span, err) }()
	rec := CallRecord{Tool: name, Caller: c, Decision: "deny", ArgsSHA256: hashHex(args)}
	known := false // name is a tool (a bounded metrics label)
	defer func() {
		rec.Duration = tb.now().Sub(start)
		result := "ok"
		if err != nil {
			e := AsError(name, err)
			rec.Code, rec.Error = e.Code, e.Message
			err = e
			result = codeLabel(e.Code)
		}
		tb.met.call(name, known, result, rec.Duration)
		if err == nil {
			b, _ := json.Marshal(res)
			rec.ResultSHA256 = hashHex(b)
			rec.Untrusted = res.Untrusted
		}
		if tb.cfg.Auditor != nil {
			tb.cfg.Auditor.AuditTool(ctx, rec)
		}
	}()
	if len(args) > tb.cfg.MaxArgBytes {
		return Result{}, Errorf(CodeTooLarge, name, "arguments are %d bytes; the limit is %d: pass large inputs as files or fetch them inside the tool", len(args), tb.cfg.MaxArgBytes)
	}
	if len(bytes.TrimSpace(args)) == 0 || bytes.Equal(bytes.TrimSpace(args), []byte("null")) {
		args = json.RawMessage("{}")
	}
	if err := strictjson.Check(args); err != nil {
		p := api.AsProblem(err)
		e := Errorf(CodeInvalidArgs, name, "arguments: %s", p.Detail)
		if p.Field != "" {
			e.Fields = []FieldError{{Field: p.Field, Detail: p.Detail}}
		}
		return Result{}, e
	}
	t, p, err := tb.Lookup(ctx, name)
	if err != nil {
		return Result{}, err
	}
	known = true
	if t.Quarantined {
		why := t.QuarantineReason
		if why == "" {
			why = "its definition changed upstream since it was pinned"
		}
		return Result{}, Errorf(CodeQuarantined, name, "tool %s is quarantined: %s; an administrator can review and run agentcloud tools approve %s", name, why, t.Source)
	}
	if c.Allowed != nil && !allowedByList(c.Allowed, name) {
		return Result{}, Errorf(CodeNotInList, name, "tool %s is not in the agent manifest's tools list; add it to \"tools\" in agent.json and deploy again", name)
	}
	if tb.cfg.Authorizer != nil {
		if err := tb.cfg.Authorizer.AuthorizeTool(ctx, c, t); err != nil {
			return Result{}, err
		}
	}
	if wait, ok := tb.limits.allow(tb.now(), name, callerKey(c)); !ok {
		e := Errorf(CodeRateLimited, name, "rate limit for tool %s reached; retry in %.1fs", name, wait.Seconds())
		e.RetryAfterS = wait.Seconds()
		return Result{}, e
	}
	if err := tb.schemas.validate(t, args); err != nil {
		return Result{}, err
	}
	rec.Decision = "allow"
	res, err = p.Call(ctx, c, name, args)
	if err != nil {
		return Result{}, err
	}
	if t.Untrusted {
		res.Untrusted = true
	}
	if res.Untrusted && tb.cfg.Labeler != nil {
		if err := tb.cfg.Labeler.ReadUntrusted(ctx, c, name); err != nil {
			return Result{}, Wrap(CodeInternal, name, err, "label the caller after untrusted output of %s: %v", name, err)
		}
	}
	return res, nil
}

// allowedByList reports whether a manifest tools list names the tool
// (exact names, the same grant policy sees as Agent.tools).
func allowedByList(list []string, name string) bool { return slices.Contains(list, name) }

func callerKey(c Caller) string {
	if c.Agent != "" {
		return "agent:" + c.Agent
	}
	return "principal:" + c.Principal
}

func hashHex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// IsRefusal reports whether err is a refusal before the tool ran (as
// opposed to a failure of the tool itself).
func IsRefusal(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case CodeToolFailed, CodeInternal, CodeUnavailable:
		return false
	}
	return true
}
