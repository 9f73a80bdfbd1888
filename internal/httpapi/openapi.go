package httpapi

import (
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

var pathParam = regexp.MustCompile(`\{([a-zA-Z_][a-zA-Z0-9_]*)(\.\.\.)?\}`)

// OpenAPI builds the OpenAPI 3.1 document of every registered route: one
// operation per method (a route for any method is listed under each), with
// its path and query parameters, request and response schemas derived from
// the wire types, and problem+json for every 4xx and 5xx answer. It is
// deterministic (encoding/json sorts map keys), so a golden copy shows every
// wire change in review.
func (rt *Router) OpenAPI(title, version string) map[string]any {
	paths := map[string]any{}
	schemas := map[string]any{}
	schemaOf(reflect.TypeOf(api.Problem{}), schemas) // registers components/schemas/Problem
	problem := map[string]any{"$ref": "#/components/responses/Problem"}
	for _, r := range rt.Routes() {
		if r.Path == "/" {
			continue
		}
		p := pathParam.ReplaceAllString(r.Path, "{$1}")
		item, _ := paths[p].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[p] = item
		}
		methods := []string{r.Method}
		if r.Method == "" {
			methods = anyMethods
		}
		for _, m := range methods {
			op := map[string]any{
				"summary":     r.Summary,
				"operationId": operationID(m, r.Path),
			}
			if r.Tag != "" {
				op["tags"] = []string{r.Tag}
			}
			if params := parameters(r); params != nil {
				op["parameters"] = params
			}
			if r.RequestContentType != "" {
				op["requestBody"] = map[string]any{
					"required": true,
					"content":  map[string]any{r.RequestContentType: map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}},
				}
			}
			if r.Request != nil {
				op["requestBody"] = map[string]any{
					"required": true,
					"content":  map[string]any{"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(r.Request), schemas)}},
				}
			}
			status := r.Status
			if status == 0 {
				status = http.StatusOK
			}
			ok := map[string]any{"description": http.StatusText(status)}
			switch {
			case r.RawContentType != "":
				ok["content"] = map[string]any{r.RawContentType: map[string]any{"schema": map[string]any{"type": "string"}}}
			case r.Response != nil:
				ok["content"] = map[string]any{"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(r.Response), schemas)}}
			}
			op["responses"] = map[string]any{strconv.Itoa(status): ok, "4XX": problem, "5XX": problem}
			if r.Public {
				op["security"] = []any{} // overrides the document's bearer requirement
			}
			item[strings.ToLower(m)] = op
		}
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": title, "version": version,
			"description": "The agentcloud HTTP API. Errors are RFC 9457 problem details with a stable type per kind."},
		"servers":  []any{map[string]any{"url": "/", "description": "this daemon"}},
		"security": []any{map[string]any{"bearer": []string{}}},
		"paths":    paths,
		"components": map[string]any{
			"schemas": schemas,
			"responses": map[string]any{"Problem": map[string]any{
				"description": "problem details (RFC 9457)",
				"content":     map[string]any{api.ProblemContentType: map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}},
			}},
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer",
				"description": "a JWT-SVID (agentcloud token create) or the bootstrap admin token; with --tls a client X.509-SVID also authenticates"}},
		},
	}
}

// anyMethods are the methods a route registered for any method documents.
var anyMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}

// parameters lists a route's path and query parameters.
func parameters(r Route) []any {
	var params []any
	for _, m := range pathParam.FindAllStringSubmatch(r.Path, -1) {
		params = append(params, map[string]any{
			"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"},
		})
	}
	for _, q := range r.Query {
		p := map[string]any{"name": q.Name, "in": "query", "required": q.Required, "schema": map[string]any{"type": q.typ()}}
		if q.Repeated {
			p["schema"] = map[string]any{"type": "array", "items": map[string]any{"type": q.typ()}}
			p["style"], p["explode"] = "form", true
		}
		if q.Description != "" {
			p["description"] = q.Description
		}
		params = append(params, p)
	}
	return params
}

// operationID names an operation by method and path, e.g.
// get-v1-agents-by-agent-sessions; unique because method and path are.
func operationID(method, path string) string {
	s := strings.ToLower(method) + pathParam.ReplaceAllString(path, "by-$1")
	s = strings.NewReplacer("/", "-", "{", "", "}", "", ".", "").Replace(s)
	return strings.TrimSuffix(s, "-")
}

var timeType = reflect.TypeOf(time.Time{})

// schemaOf derives a JSON Schema from a Go type; named structs go to schemas
// and are referenced.
func schemaOf(t reflect.Type, schemas map[string]any) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType {
		return map[string]any{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), schemas)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), schemas)}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		name := t.Name()
		if name != "" {
			if _, done := schemas[name]; done {
				return map[string]any{"$ref": "#/components/schemas/" + name}
			}
			schemas[name] = map[string]any{} // break cycles
		}
		props := map[string]any{}
		var required []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			fname, opts, _ := strings.Cut(tag, ",")
			if fname == "" {
				fname = f.Name
			}
			props[fname] = schemaOf(f.Type, schemas)
			if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
				required = append(required, fname)
			}
		}
		s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if required != nil {
			s["required"] = required
		}
		if name == "" {
			return s
		}
		schemas[name] = s
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}
