package builtin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/session"
	"github.com/agentcloud/agentcloud/internal/toolbox"
)

// maxFetchBody caps the response body http_fetch returns.
const maxFetchBody = 1 << 20

// headerMap flattens response headers (first value of each, sorted keys in
// JSON by encoding/json).
func headerMap(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		if len(v) > 0 {
			out[k] = v[0]
		}
	}
	return out
}

func (p *Provider) httpFetch(ctx context.Context, c toolbox.Caller, args json.RawMessage) (toolbox.Result, error) {
	const name = "http_fetch"
	var a struct {
		URL     string            `json:"url"`
		Method  string            `json:"method"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	}
	if err := decode(name, args, &a); err != nil {
		return toolbox.Result{}, err
	}
	if p.d.Fetch == nil {
		return toolbox.Result{}, toolbox.Errorf(toolbox.CodeUnavailable, name, "the egress proxy is not available on this node")
	}
	u, err := url.Parse(a.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		e := toolbox.Errorf(toolbox.CodeInvalidArgs, name, "url %q is not an absolute http or https URL", clipS(a.URL, 200))
		e.Fields = []toolbox.FieldError{{Field: "url", Detail: "use e.g. https://api.example.com/path"}}
		return toolbox.Result{}, e
	}
	if a.Method == "" {
		a.Method = http.MethodGet
	}
	var body io.Reader
	if a.Body != "" {
		body = strings.NewReader(a.Body)
	}
	req, err := http.NewRequestWithContext(ctx, a.Method, u.String(), body)
	if err != nil {
		return toolbox.Result{}, toolbox.Wrap(toolbox.CodeInvalidArgs, name, err, "build request: %v", err)
	}
	for k, v := range a.Headers {
		req.Header.Set(k, v)
	}
	resp, err := p.d.Fetch.Fetch(ctx, c, req)
	if err != nil {
		return toolbox.Result{}, platformErr(name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxFetchBody+1))
	if err != nil {
		return toolbox.Result{}, toolbox.Wrap(toolbox.CodeToolFailed, name, err, "read response from %s: %v", u.Host, err)
	}
	out := struct {
		Status    int               `json:"status"`
		Headers   map[string]string `json:"headers"`
		Body      string            `json:"body"`
		Base64    bool              `json:"base64,omitempty"`
		Truncated bool              `json:"truncated,omitempty"`
	}{Status: resp.StatusCode, Headers: headerMap(resp.Header)}
	if len(b) > maxFetchBody {
		b, out.Truncated = b[:maxFetchBody], true
	}
	if utf8.Valid(b) {
		out.Body = string(b)
	} else {
		enc, _ := json.Marshal(b) // base64 as a JSON string
		out.Body, out.Base64 = strings.Trim(string(enc), `"`), true
	}
	res, err := structured(out)
	res.Untrusted = true
	return res, err
}

func (p *Provider) deployAgent(ctx context.Context, c toolbox.Caller, args json.RawMessage) (toolbox.Result, error) {
	const name = "deploy_agent"
	var a struct {
		Files map[string]string `json:"files"`
	}
	if err := decode(name, args, &a); err != nil {
		return toolbox.Result{}, err
	}
	if p.d.Agents == nil {
		return toolbox.Result{}, toolbox.Errorf(toolbox.CodeUnavailable, name, "agents are not available on this node")
	}
	files := make(map[string][]byte, len(a.Files))
	for k, v := range a.Files {
		files[k] = []byte(v)
	}
	b, err := bundle.FromFiles(files)
	if err != nil {
		var me *bundle.ManifestError
		e := toolbox.Wrap(toolbox.CodeInvalidArgs, name, err, "invalid bundle: %v", err)
		if errors.As(err, &me) {
			for _, fe := range me.Problems {
				e.Fields = append(e.Fields, toolbox.FieldError{Field: "files[agent.json]." + fe.Field, Detail: fe.Problem + "; " + fe.Fix})
			}
		}
		return toolbox.Result{}, e
	}
	if p.d.Authorize != nil {
		if err := p.d.Authorize(ctx, c, session.ActionAgentDeploy, Resource{Type: "Agent", ID: b.Manifest.Name}); err != nil {
			return toolbox.Result{}, platformErr(name, err)
		}
	}
	var by session.Principal
	if p.d.Principal != nil {
		by = p.d.Principal(c)
	}
	v, err := p.d.Agents.Deploy(ctx, by, b)
	if err != nil {
		return toolbox.Result{}, platformErr(name, err)
	}
	return structured(v)
}

func (p *Provider) callAgent(ctx context.Context, c toolbox.Caller, args json.RawMessage) (toolbox.Result, error) {
	const name = "call_agent"
	var a struct {
		Agent   string            `json:"agent"`
		Session string            `json:"session"`
		Method  string            `json:"method"`
		Path    string            `json:"path"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	}
	if err := decode(name, args, &a); err != nil {
		return toolbox.Result{}, err
	}
	if p.d.Agents == nil {
		return toolbox.Result{}, toolbox.Errorf(toolbox.CodeUnavailable, name, "agents are not available on this node")
	}
	if err := session.CheckAddr(a.Agent, a.Session); err != nil {
		p := api.AsProblem(err)
		e := toolbox.Errorf(toolbox.CodeInvalidArgs, name, "%s", p.Detail)
		e.Fields = []toolbox.FieldError{{Field: p.Field, Detail: p.Detail}}
		return toolbox.Result{}, e
	}
	if a.Agent == c.Agent && a.Session == c.Session {
		return toolbox.Result{}, toolbox.Errorf(toolbox.CodeInvalidArgs, name, "a session cannot call itself (it would wait for its own request to finish); use another session id")
	}
	if a.Method == "" {
		a.Method = http.MethodGet
	}
	if a.Path == "" || a.Path[0] != '/' {
		a.Path = "/" + a.Path
	}
	if _, err := url.ParseRequestURI(a.Path); err != nil {
		e := toolbox.Wrap(toolbox.CodeInvalidArgs, name, err, "path %q is not a valid request path: %v", clipS(a.Path, 200), err)
		e.Fields = []toolbox.FieldError{{Field: "path", Detail: "e.g. /items?limit=2"}}
		return toolbox.Result{}, e
	}
	if p.d.Authorize != nil {
		if err := p.d.Authorize(ctx, c, session.ActionSessionCall, Resource{Type: "Session", ID: a.Session, Parent: a.Agent}); err != nil {
			return toolbox.Result{}, platformErr(name, err)
		}
	}
	if p.d.ActAs != nil {
		// The call is the tool caller's, not whoever is calling the
		// caller: labels follow it from this principal (session.Flow).
		ctx = p.d.ActAs(ctx, c)
	}
	req := isolate.Request{Method: a.Method, URL: "http://" + a.Agent + ".agents.internal" + a.Path, Body: []byte(a.Body)}
	keys := make([]string, 0, len(a.Headers))
	for k := range a.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		req.Headers = append(req.Headers, [2]string{k, a.Headers[k]})
	}
	resp, err := p.d.Agents.Call(ctx, a.Agent, a.Session, req)
	if err != nil {
		return toolbox.Result{}, platformErr(name, err)
	}
	h := make(map[string]string, len(resp.Headers))
	for _, kv := range resp.Headers {
		h[http.CanonicalHeaderKey(kv[0])] = kv[1]
	}
	out := map[string]any{"status": resp.Status, "headers": h, "body": strings.ToValidUTF8(string(resp.Body), "\uFFFD")}
	res, err := structured(out)
	res.IsError = resp.Status >= 500
	return res, err
}

func (p *Provider) listAgents(ctx context.Context, c toolbox.Caller, _ json.RawMessage) (toolbox.Result, error) {
	const name = "list_agents"
	if p.d.Agents == nil {
		return toolbox.Result{}, toolbox.Errorf(toolbox.CodeUnavailable, name, "agents are not available on this node")
	}
	list, err := p.d.Agents.Agents(ctx)
	if err != nil {
		return toolbox.Result{}, platformErr(name, err)
	}
	kept := []api.Agent{}
	fctx := session.Filtering(ctx)
	for _, a := range list {
		if p.d.Authorize == nil || p.d.Authorize(fctx, c, session.ActionAgentRead, Resource{Type: "Agent", ID: a.Name}) == nil {
			kept = append(kept, a)
		}
	}
	return structured(api.AgentList{Agents: kept})
}

func clipS(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s…", s[:n])
}
