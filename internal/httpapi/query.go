package httpapi

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/agentcloud/agentcloud/api"
)

// QueryParam is one query parameter a route reads. The router documents it
// in /openapi.json and checks every request against the route's list before
// the handler runs: a parameter the route does not declare, one given more
// than once, a value that is not of the declared type, a missing required
// one or a query string that does not parse is a 400
// invalid-query-parameter problem naming the parameter. So a handler that
// reads a parameter it did not declare never sees it, and a new route
// cannot forget to document one.
type QueryParam struct {
	Name string
	// Type is QueryString (the default), QueryInteger or QueryBoolean.
	Type        string
	Description string
	Required    bool
	// Repeated: the parameter may be given several times (a list, in
	// order, e.g. ?run=a&run=b); each value is checked against Type.
	Repeated bool
}

// Query parameter types (JSON Schema names).
const (
	QueryString  = "string"
	QueryInteger = "integer"
	QueryBoolean = "boolean"
)

// maxQueryBytes bounds the query string a route with declared parameters
// accepts (the server's header limit bounds the rest).
const maxQueryBytes = 8 << 10

func (q QueryParam) typ() string {
	if q.Type == "" {
		return QueryString
	}
	return q.Type
}

// checkQuery validates r's query string against the route's declaration.
func checkQuery(r *http.Request, spec Route) error {
	if spec.AnyQuery {
		return nil
	}
	raw := r.URL.RawQuery
	if len(raw) > maxQueryBytes {
		return api.FieldErrorf(api.KindInvalidQuery, "query", "query string of %d bytes is longer than %d", len(raw), maxQueryBytes)
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return api.FieldErrorf(api.KindInvalidQuery, "query", "malformed query string: %v", err)
	}
	names := make([]string, 0, len(vals))
	for name := range vals {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		i := slices.IndexFunc(spec.Query, func(q QueryParam) bool { return q.Name == name })
		if i < 0 {
			return api.FieldErrorf(api.KindInvalidQuery, name, "%s %s takes no query parameter %q; %s",
				r.Method, spec.Path, short(name), takes(spec.Query))
		}
		vs := vals[name]
		q := spec.Query[i]
		if len(vs) > 1 && !q.Repeated {
			return api.FieldErrorf(api.KindInvalidQuery, name, "query parameter %s is given %d times; give it once", name, len(vs))
		}
		for _, v := range vs {
			switch q.typ() {
			case QueryInteger:
				if _, err := strconv.ParseInt(v, 10, 64); err != nil {
					return api.FieldErrorf(api.KindInvalidQuery, name, "query parameter %s=%q: want a whole number", name, short(v))
				}
			case QueryBoolean:
				if _, err := strconv.ParseBool(v); err != nil {
					return api.FieldErrorf(api.KindInvalidQuery, name, "query parameter %s=%q: want true or false", name, short(v))
				}
			}
		}
	}
	for _, q := range spec.Query {
		if q.Required && !vals.Has(q.Name) {
			return api.FieldErrorf(api.KindInvalidQuery, q.Name, "missing query parameter %s: %s", q.Name, q.Description)
		}
	}
	return nil
}

func takes(qs []QueryParam) string {
	if len(qs) == 0 {
		return "it takes none (see /openapi.json)"
	}
	names := make([]string, len(qs))
	for i, q := range qs {
		names[i] = q.Name
	}
	return "it takes " + strings.Join(names, ", ") + " (see /openapi.json)"
}

// short quotes at most 64 bytes of a caller's text in an error.
func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
