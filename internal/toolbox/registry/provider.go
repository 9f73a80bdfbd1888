package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/toolbox"
)

// Provider is one registered upstream as a toolbox.Provider.
type Provider struct {
	r    *Registry
	name string
}

var _ toolbox.Provider = (*Provider)(nil)

// Provider returns the toolbox provider of the upstream name. It reads the
// registry on every use, so it follows refreshes, approvals and removal.
func (r *Registry) Provider(name string) *Provider { return &Provider{r: r, name: name} }

// Tools lists the upstream's tools, refreshing them first when the last
// refresh is older than the TTL. Quarantined tools are listed with their
// pinned definition (a new tool with no pin shows no upstream text) and
// the reason.
func (p *Provider) Tools(ctx context.Context) ([]toolbox.Tool, error) {
	u, err := p.r.cached(ctx, p.name)
	if err != nil {
		if api.IsKind(err, api.KindNotFound) {
			return nil, nil
		}
		return nil, err
	}
	if err := p.r.maybeRefresh(ctx, p.name, u); err != nil {
		return nil, nil // removed meanwhile: no tools
	}
	u.mu.Lock()
	e := u.entry
	u.mu.Unlock()
	out := make([]toolbox.Tool, 0, len(e.Tools))
	for _, t := range e.Tools {
		tool := toolbox.Tool{Name: p.name + "." + t.Name, Description: t.Description, InputSchema: t.InputSchema,
			Source: p.name, Untrusted: true, Hash: t.Hash}
		if t.Status == StatusQuarantined {
			tool.Quarantined, tool.QuarantineReason = true, t.Reason
		}
		if t.Hash == "" {
			tool.Description = "(new upstream tool awaiting approval)"
			tool.InputSchema = json.RawMessage(`{"type":"object"}`)
		}
		out = append(out, tool)
	}
	return out, nil
}

// Call runs one tool of the upstream. A quarantined tool is refused.
func (p *Provider) Call(ctx context.Context, _ toolbox.Caller, name string, args json.RawMessage) (toolbox.Result, error) {
	tool, ok := strings.CutPrefix(name, p.name+".")
	if !ok {
		return toolbox.Result{}, api.Errorf(api.KindNotFound, "tool %q is not a tool of upstream %s", name, p.name)
	}
	u, err := p.r.cached(ctx, p.name)
	if err != nil {
		return toolbox.Result{}, err
	}
	if err := p.r.maybeRefresh(ctx, p.name, u); err != nil {
		return toolbox.Result{}, err
	}
	u.mu.Lock()
	e := u.entry
	u.mu.Unlock()
	var pin *Pinned
	for i := range e.Tools {
		if e.Tools[i].Name == tool {
			pin = &e.Tools[i]
		}
	}
	if pin == nil {
		return toolbox.Result{}, api.Errorf(api.KindNotFound, "no tool %q: upstream %s does not serve %q", name, p.name, tool)
	}
	if pin.Status != StatusOK {
		return toolbox.Result{}, api.Errorf(api.KindConflict, "tool %s is quarantined: %s (an administrator can run: agentcloud tools approve %s %s)",
			name, pin.Reason, p.name, tool)
	}
	if err := u.allow(); err != nil {
		return toolbox.Result{}, err
	}
	switch e.Kind {
	case KindMCP:
		return p.r.mcpCall(ctx, u, tool, args)
	case KindOpenAPI:
		return p.r.openAPICall(ctx, &e, pin.Op, args)
	}
	return toolbox.Result{}, fmt.Errorf("upstream %s: unknown kind %q", p.name, e.Kind)
}

// openAPICall makes the HTTP request of one operation.
func (r *Registry) openAPICall(ctx context.Context, e *Entry, op *Operation, raw json.RawMessage) (toolbox.Result, error) {
	if op == nil {
		return toolbox.Result{}, fmt.Errorf("upstream %s: operation not recorded", e.Name)
	}
	var args map[string]json.RawMessage
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &args); err != nil {
			return toolbox.Result{}, api.Errorf(api.KindValidation, "arguments must be a JSON object: %v", err)
		}
	}
	path := op.Path
	q := url.Values{}
	h := http.Header{}
	for _, p := range op.Params {
		v, ok := args[p.Arg]
		if !ok {
			if p.In == "path" {
				return toolbox.Result{}, api.FieldErrorf(api.KindValidation, p.Arg, "missing path parameter %q", p.Arg)
			}
			continue
		}
		vals, err := paramValues(v)
		if err != nil {
			return toolbox.Result{}, api.FieldErrorf(api.KindValidation, p.Arg, "argument %q: %v", p.Arg, err)
		}
		switch p.In {
		case "path":
			path = strings.ReplaceAll(path, "{"+p.Name+"}", url.PathEscape(strings.Join(vals, ",")))
		case "query":
			for _, s := range vals {
				q.Add(p.Name, s)
			}
		case "header":
			if strings.ContainsAny(strings.Join(vals, ","), "\r\n\x00") {
				return toolbox.Result{}, api.FieldErrorf(api.KindValidation, p.Arg, "header argument %q holds a control character", p.Arg)
			}
			h.Set(p.Name, strings.Join(vals, ","))
		}
	}
	target := op.Server + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	var body io.Reader
	if b, ok := args[op.Body]; ok && op.Body != "" {
		body = bytes.NewReader(b)
		h.Set("Content-Type", "application/json")
	}
	req, err := http.NewRequestWithContext(ctx, op.Method, target, body)
	if err != nil {
		return toolbox.Result{}, api.Errorf(api.KindValidation, "building the request for %s: %v", op, err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json, */*;q=0.5")
	e.Credential.Apply(req)
	resp, err := r.cfg.Doer(ctx, r.upstreamOf(e), req)
	if err != nil {
		return callFailure(e.Name, op.Method+" "+op.Server+op.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, r.cfg.MaxResultBytes+1))
	if err != nil {
		return callFailure(e.Name, "reading the response", err)
	}
	if int64(len(b)) > r.cfg.MaxResultBytes {
		return toolbox.Result{}, api.Errorf(api.KindTooLarge, "upstream %s: response over %d bytes", e.Name, r.cfg.MaxResultBytes)
	}
	res := toolbox.Result{Text: string(b), IsError: resp.StatusCode >= 400, Untrusted: true}
	if resp.StatusCode >= 400 {
		res.Text = fmt.Sprintf("upstream answered %s: %s", resp.Status, b)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); strings.Contains(mt, "json") {
		var v any
		if json.Unmarshal(b, &v) == nil {
			if _, isObj := v.(map[string]any); isObj {
				res.Structured = v
			} else {
				res.Structured = map[string]any{"result": v}
			}
		}
	}
	return res, nil
}

// paramValues renders a JSON argument as parameter values: strings as
// they are, numbers and booleans as written, arrays as one value per item.
func paramValues(raw json.RawMessage) ([]string, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	one := func(v any) (string, error) {
		switch x := v.(type) {
		case string:
			return x, nil
		case json.Number:
			return x.String(), nil
		case bool:
			return fmt.Sprint(x), nil
		case nil:
			return "", nil
		}
		return "", fmt.Errorf("objects are not supported as parameter values")
	}
	if arr, ok := v.([]any); ok {
		out := make([]string, 0, len(arr))
		for _, e := range arr {
			s, err := one(e)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	s, err := one(v)
	if err != nil {
		return nil, err
	}
	return []string{s}, nil
}

// callFailure reports an upstream call that did not complete: refused by
// the platform (policy, approval) as a forbidden error, anything else
// (unreachable, broken stream) as a tool error the caller can read.
func callFailure(upstream, what string, err error) (toolbox.Result, error) {
	if p, ok := errors.AsType[*api.Problem](err); ok && p.Kind() == api.KindForbidden {
		return toolbox.Result{}, api.Errorf(api.KindForbidden, "upstream %s: %s refused: %s", upstream, what, p.Detail)
	}
	return toolbox.Result{Text: fmt.Sprintf("upstream %s: %s failed: %v", upstream, what, err), IsError: true, Untrusted: true}, nil
}

// forbidden returns the platform's refusal inside err, if there is one.
func forbidden(err error) (*api.Problem, bool) {
	p, ok := errors.AsType[*api.Problem](err)
	return p, ok && p.Kind() == api.KindForbidden
}
