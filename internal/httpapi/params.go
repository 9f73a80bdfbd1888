package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/agentcloud/agentcloud/api"
)

// pathParams names the identifier kind of every path wildcard a route may
// use. A route with a wildcard not listed here does not register (Handle
// panics), and every listed wildcard is checked against its rule in
// api.IDRules after authentication and before authorization, so a handler
// and the store behind it only ever see identifiers within their limits.
var pathParams = map[string]api.IDKind{
	"agent":    api.IDAgent,
	"session":  api.IDSession,
	"sandbox":  api.IDSandbox,
	"secret":   api.IDSecret,
	"approval": api.IDApproval,
	"tool":     api.IDTool,
	"upstream": api.IDUpstream,
	"provider": api.IDProvider,
	"policy":   api.IDPolicy,
	"token":    api.IDToken,
	"version":  api.IDVersion,
	"entry":    api.IDLedgerEntry,
	"hash":     api.IDLedgerHash,
	"run":      api.IDRun,
	"template": api.IDTemplate,
	"snapshot": api.IDSnapshot,
	"volume":   api.IDVolume,
}

// Wildcards that are not identifiers: a process id, and the rest of a
// session's URL (the agent's own path, bounded by the server's URL limit).
const (
	paramPID  = "pid"
	paramPath = "path"
	paramPort = "port" // a TCP port in a sandbox, 1-65535
)

// routeParams lists the wildcards of a ServeMux pattern path and panics on
// one that has no rule: a new route cannot skip the identifier check.
func routeParams(path string) []string {
	var names []string
	for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
		name := m[1]
		if _, ok := pathParams[name]; !ok && name != paramPID && name != paramPath && name != paramPort {
			panic(fmt.Sprintf("httpapi: route %s: path wildcard {%s} has no identifier rule; name it after its kind (see pathParams)", path, name))
		}
		names = append(names, name)
	}
	return names
}

// checkRequest validates the request's path values and query parameters
// against the route, after authentication and before authorization.
func checkRequest(r *http.Request, spec Route) error {
	if err := checkParams(r, spec.params); err != nil {
		return err
	}
	return checkQuery(r, spec)
}

// checkParams validates the request's path values against their rules.
func checkParams(r *http.Request, names []string) error {
	for _, name := range names {
		v := r.PathValue(name)
		switch name {
		case paramPath:
			continue
		case paramPID:
			if n, err := strconv.Atoi(v); err != nil || n <= 0 || len(v) > 10 {
				short := v
				if len(short) > 32 {
					short = short[:32] + "…"
				}
				return api.FieldErrorf(api.KindInvalidID, name, "pid %q: want a positive process id as listed by .../processes", short)
			}
			continue
		case paramPort:
			if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 65535 || len(v) > 5 {
				return api.FieldErrorf(api.KindInvalidID, name, "port %q: want a TCP port from 1 to 65535", clip(v))
			}
			continue
		}
		if p := api.CheckID(name, pathParams[name], v); p != nil {
			return p
		}
	}
	return nil
}

// checkSegments refuses a request path with a "." or ".." segment, or an
// empty one before its end, with a 400 invalid-identifier problem: such a
// path names no identifier the routes accept (api.IDRules refuses "." and
// ".."), and the mux would otherwise clean it and redirect the request,
// method and body included, to another route.
func checkSegments(p string) error {
	for i, rest := 0, p; rest != ""; i++ {
		seg, tail, more := strings.Cut(rest, "/")
		rest = tail
		if i == 0 && seg == "" {
			continue // the leading slash
		}
		if seg == "." || seg == ".." || seg == "" && more {
			what := "a " + strconv.Quote(seg) + " segment"
			if seg == "" {
				what = "an empty segment"
			}
			return api.FieldErrorf(api.KindInvalidID, "path", "path %q has %s: identifiers in a path cannot be empty, . or ..", clip(p), what)
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// EscapedRest is the value of r's trailing {name...} wildcard as the
// client sent it, still percent-encoded. r.PathValue gives it decoded, so
// that a %2F, %3F or %23 in it would read as a /, ? or # of the path a
// handler passes on (an agent's request.url, a proxied request). The
// segments before the wildcard are identifiers (pathParams), the same
// escaped and decoded; it falls back to the decoded value when the path
// does not end with it.
func EscapedRest(r *http.Request, name string) string {
	rest := r.PathValue(name)
	if rest == "" || !strings.HasSuffix(r.URL.Path, rest) {
		return rest // none (or a route without it), or unlike the path
	}
	skip := strings.Count(strings.TrimSuffix(r.URL.Path, rest), "/")
	esc := r.URL.EscapedPath()
	for range skip {
		i := strings.IndexByte(esc, '/')
		if i < 0 {
			return rest
		}
		esc = esc[i+1:]
	}
	return esc
}
