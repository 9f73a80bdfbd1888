package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/jsonschema-go/jsonschema"
	yaml "go.yaml.in/yaml/v4"
)

// MaxDocumentBytes bounds an OpenAPI document.
const MaxDocumentBytes = 4 << 20

// Operation is how an OpenAPI tool is called: the HTTP method, the server
// URL and path template, and where each argument goes.
type Operation struct {
	Method string `json:"method"`
	Server string `json:"server"` // absolute base URL, no trailing slash
	Path   string `json:"path"`   // template with {name} placeholders
	// Params maps an argument name to its location and wire name.
	Params []Param `json:"params,omitempty"`
	// Body is the argument holding the JSON request body ("" for none).
	Body string `json:"body,omitempty"`
}

// Param is one OpenAPI parameter of an operation.
type Param struct {
	Arg  string `json:"arg"`  // argument name in the tool's input schema
	In   string `json:"in"`   // path | query | header
	Name string `json:"name"` // name on the wire
}

func (o *Operation) equal(p *Operation) bool {
	if o == nil || p == nil {
		return o == p
	}
	return o.Method == p.Method && o.Server == p.Server && o.Path == p.Path && o.Body == p.Body && slices.Equal(o.Params, p.Params)
}

func (o *Operation) String() string {
	if o == nil {
		return "none"
	}
	return o.Method + " " + o.Server + o.Path
}

// DocumentError is an OpenAPI document that does not parse or is not a
// valid OpenAPI 3.0/3.1 document. Location is "line L, column C" when the
// syntax is at fault, or the document path of the invalid element.
type DocumentError struct {
	Source   string // file name or URL, if known
	Location string
	Err      error
}

func (e *DocumentError) Error() string {
	src := e.Source
	if src == "" {
		src = "OpenAPI document"
	}
	if e.Location != "" {
		return fmt.Sprintf("%s: %s: %v", src, e.Location, e.Err)
	}
	return fmt.Sprintf("%s: %v", src, e.Err)
}

func (e *DocumentError) Unwrap() error { return e.Err }

var yamlLineRE = regexp.MustCompile(`line (\d+)(?:, column (\d+))?`)

// parseSyntax decodes data as JSON (when it starts with '{') or YAML and
// reports a syntax error with its line and column.
func parseSyntax(source string, data []byte) error {
	trim := bytes.TrimSpace(data)
	if len(trim) == 0 {
		return &DocumentError{Source: source, Err: errors.New("document is empty")}
	}
	if trim[0] == '{' {
		var v any
		err := json.Unmarshal(data, &v)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return &DocumentError{Source: source, Location: lineCol(data, se.Offset-1), Err: fmt.Errorf("invalid JSON: %w", err)}
		}
		if err != nil {
			return &DocumentError{Source: source, Err: fmt.Errorf("invalid JSON: %w", err)}
		}
		if _, ok := v.(map[string]any); !ok {
			return &DocumentError{Source: source, Location: "line 1, column 1", Err: errors.New("document is not a JSON object")}
		}
		return nil
	}
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		loc := ""
		if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
			loc = "line " + m[1]
			if m[2] != "" {
				loc += ", column " + m[2]
			}
		}
		return &DocumentError{Source: source, Location: loc, Err: fmt.Errorf("invalid YAML: %w", err)}
	}
	if _, ok := v.(map[string]any); !ok {
		return &DocumentError{Source: source, Location: "line 1, column 1", Err: errors.New("document is not a mapping (want an OpenAPI object)")}
	}
	return nil
}

func lineCol(data []byte, off int64) string {
	off = min(max(off, 0), int64(len(data)))
	line, col := 1, 1
	for _, c := range data[:off] {
		if c == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return fmt.Sprintf("line %d, column %d", line, col)
}

// ParseOpenAPI parses and validates an OpenAPI 3.0 or 3.1 document (JSON or
// YAML) and returns one tool definition per operation, sorted by name.
// External references are not followed. baseURL, if set, overrides the
// document's first server; a relative server URL is resolved against
// docURL (where the document was fetched from, if anywhere).
func ParseOpenAPI(ctx context.Context, source string, data []byte, docURL, baseURL string) ([]Definition, error) {
	if len(data) > MaxDocumentBytes {
		return nil, &DocumentError{Source: source, Err: fmt.Errorf("document is %d bytes, over the %d-byte limit", len(data), MaxDocumentBytes)}
	}
	if err := parseSyntax(source, data); err != nil {
		return nil, err
	}
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, &DocumentError{Source: source, Err: fmt.Errorf("not a loadable OpenAPI document: %w", err)}
	}
	if v := doc.OpenAPI; !strings.HasPrefix(v, "3.0") && !strings.HasPrefix(v, "3.1") {
		return nil, &DocumentError{Source: source, Location: "field openapi", Err: fmt.Errorf("version %q is not supported (want 3.0.x or 3.1.x)", v)}
	}
	if err := doc.Validate(ctx, openapi3.DisableExamplesValidation(), openapi3.DisableSchemaDefaultsValidation()); err != nil {
		return nil, &DocumentError{Source: source, Err: fmt.Errorf("invalid OpenAPI document: %w", err)}
	}
	server, err := serverURL(doc, docURL, baseURL)
	if err != nil {
		return nil, &DocumentError{Source: source, Location: "field servers", Err: err}
	}
	conv := &converter{v30: !doc.IsOpenAPI31OrLater()}
	defs := conv.ref2defs(doc)
	var out []Definition
	seen := map[string]string{}
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		ops := item.Operations()
		methods := make([]string, 0, len(ops))
		for m := range ops {
			methods = append(methods, m)
		}
		sort.Strings(methods)
		for _, method := range methods {
			op := ops[method]
			d, err := conv.operationTool(method, path, server, item, op, defs)
			if err != nil {
				return nil, &DocumentError{Source: source, Location: "paths." + path + "." + strings.ToLower(method), Err: err}
			}
			if prev, dup := seen[d.Name]; dup {
				return nil, &DocumentError{Source: source, Location: "paths." + path + "." + strings.ToLower(method),
					Err: fmt.Errorf("tool name %q is also the name of %s", d.Name, prev)}
			}
			seen[d.Name] = method + " " + path
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil, &DocumentError{Source: source, Location: "field paths", Err: errors.New("the document has no operations")}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// serverURL picks the base URL calls go to.
func serverURL(doc *openapi3.T, docURL, baseURL string) (string, error) {
	raw := baseURL
	if raw == "" && len(doc.Servers) > 0 && doc.Servers[0] != nil {
		s := doc.Servers[0]
		raw = s.URL
		for _, name := range sortedKeys(s.Variables) {
			if v := s.Variables[name]; v != nil {
				raw = strings.ReplaceAll(raw, "{"+name+"}", v.Default)
			}
		}
	}
	if raw == "" {
		return "", errors.New("the document names no server; give a base URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("server URL %q: %w", raw, err)
	}
	if !u.IsAbs() {
		if docURL == "" {
			return "", fmt.Errorf("server URL %q is relative and the document was not fetched from a URL; give a base URL", raw)
		}
		base, err := url.Parse(docURL)
		if err != nil {
			return "", fmt.Errorf("document URL %q: %w", docURL, err)
		}
		u = base.ResolveReference(u)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("server URL %q: scheme must be http or https", u.String())
	}
	if u.Host == "" || u.User != nil {
		return "", fmt.Errorf("server URL %q: want http(s)://host[:port][/path] without user info", u.String())
	}
	u.RawQuery, u.Fragment = "", ""
	return strings.TrimSuffix(u.String(), "/"), nil
}

var (
	nonName     = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)
	underscores = regexp.MustCompile(`__+`)
)

// toolName is the operationId, or method_path with the path's
// non-name characters turned into underscores.
func toolName(method, path string, op *openapi3.Operation) string {
	clean := func(s string) string {
		return strings.Trim(underscores.ReplaceAllString(nonName.ReplaceAllString(s, "_"), "_"), "_")
	}
	n := clean(op.OperationID)
	if n == "" {
		n = clean(strings.ToLower(method) + "_" + path)
	}
	if len(n) > 120 {
		n = n[:120]
	}
	return n
}

// operationTool builds one tool: path, query and header parameters become
// properties of an object schema, and the JSON request body the "body"
// property.
func (c *converter) operationTool(method, path, server string, item *openapi3.PathItem, op *openapi3.Operation, defs map[string]any) (Definition, error) {
	props := map[string]any{}
	var required []string
	o := &Operation{Method: method, Server: server, Path: path}
	params := slices.Clone(item.Parameters)
	for _, p := range op.Parameters { // operation parameters override path-item ones
		if p == nil || p.Value == nil {
			continue
		}
		params = slices.DeleteFunc(params, func(q *openapi3.ParameterRef) bool {
			return q != nil && q.Value != nil && q.Value.In == p.Value.In && q.Value.Name == p.Value.Name
		})
		params = append(params, p)
	}
	for _, pr := range params {
		if pr == nil || pr.Value == nil {
			continue
		}
		p := pr.Value
		switch p.In {
		case openapi3.ParameterInPath, openapi3.ParameterInQuery, openapi3.ParameterInHeader:
		default:
			if p.Required {
				return Definition{}, fmt.Errorf("required %s parameter %q is not supported", p.In, p.Name)
			}
			continue
		}
		arg := p.Name
		if _, clash := props[arg]; clash || arg == "body" {
			arg = p.In + "_" + p.Name
		}
		var schema map[string]any
		if p.Schema != nil {
			s, err := c.schemaJSON(p.Schema)
			if err != nil {
				return Definition{}, fmt.Errorf("parameter %q: %w", p.Name, err)
			}
			schema = s
		} else {
			schema = map[string]any{"type": "string"}
		}
		if p.Description != "" {
			if _, has := schema["description"]; !has {
				schema["description"] = p.Description
			}
		}
		props[arg] = schema
		if p.Required || p.In == openapi3.ParameterInPath {
			required = append(required, arg)
		}
		o.Params = append(o.Params, Param{Arg: arg, In: p.In, Name: p.Name})
	}
	if rb := op.RequestBody; rb != nil && rb.Value != nil {
		mt := jsonMedia(rb.Value.Content)
		if mt == nil {
			if rb.Value.Required {
				return Definition{}, errors.New("the request body has no JSON media type; only application/json bodies are supported")
			}
		} else {
			schema := map[string]any{}
			if mt.Schema != nil {
				s, err := c.schemaJSON(mt.Schema)
				if err != nil {
					return Definition{}, fmt.Errorf("request body: %w", err)
				}
				schema = s
			}
			if rb.Value.Description != "" {
				if _, has := schema["description"]; !has {
					schema["description"] = rb.Value.Description
				}
			}
			props["body"] = schema
			o.Body = "body"
			if rb.Value.Required {
				required = append(required, "body")
			}
		}
	}
	in := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		sort.Strings(required)
		in["required"] = required
	}
	if used := usedDefs(props, defs); len(used) > 0 {
		in["$defs"] = used
	}
	schema, err := json.Marshal(in)
	if err != nil {
		return Definition{}, err
	}
	var js jsonschema.Schema
	if err := json.Unmarshal(schema, &js); err != nil {
		return Definition{}, fmt.Errorf("the operation's parameters and body do not make a valid JSON Schema: %w", err)
	}
	if _, err := js.Resolve(nil); err != nil {
		return Definition{}, fmt.Errorf("the operation's parameters and body do not make a valid JSON Schema: %w", err)
	}
	desc := strings.TrimSpace(strings.TrimSpace(op.Summary) + "\n\n" + strings.TrimSpace(op.Description))
	if desc == "" {
		desc = method + " " + path
	}
	sort.Slice(o.Params, func(i, j int) bool { return o.Params[i].Arg < o.Params[j].Arg })
	return Definition{Name: toolName(method, path, op), Description: desc, InputSchema: schema, Op: o}, nil
}

func jsonMedia(c openapi3.Content) *openapi3.MediaType {
	if mt := c.Get("application/json"); mt != nil {
		return mt
	}
	for _, k := range sortedKeys(c) {
		if strings.Contains(k, "json") {
			return c[k]
		}
	}
	return nil
}

const componentRef = "#/components/schemas/"

// converter renders OpenAPI schemas as JSON Schema (2020-12).
type converter struct {
	v30 bool // an OpenAPI 3.0 document: rewrite its schema dialect
}

// schemaJSON renders a schema as JSON Schema, with references to component
// schemas pointing into the tool schema's own $defs.
func (c *converter) schemaJSON(s *openapi3.SchemaRef) (map[string]any, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	b = bytes.ReplaceAll(b, []byte(`"`+componentRef), []byte(`"#/$defs/`))
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return map[string]any{}, nil // a boolean or null schema accepts anything
	}
	if c.v30 {
		from30(m)
	}
	return m, nil
}

// from30 rewrites OpenAPI 3.0 schema keywords that mean something else in
// JSON Schema: boolean exclusiveMinimum/exclusiveMaximum, and nullable.
func from30(v any) {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range [][2]string{{"exclusiveMaximum", "maximum"}, {"exclusiveMinimum", "minimum"}} {
			if ex, ok := x[k[0]].(bool); ok {
				delete(x, k[0])
				if bound, has := x[k[1]]; ex && has {
					x[k[0]] = bound
					delete(x, k[1])
				}
			}
		}
		if n, ok := x["nullable"].(bool); ok {
			delete(x, "nullable")
			if t, isStr := x["type"].(string); n && isStr {
				x["type"] = []any{t, "null"}
			}
		}
		for _, e := range x {
			from30(e)
		}
	case []any:
		for _, e := range x {
			from30(e)
		}
	}
}

// ref2defs renders every component schema once, for $defs.
func (c *converter) ref2defs(doc *openapi3.T) map[string]any {
	out := map[string]any{}
	if doc.Components == nil {
		return out
	}
	for name, s := range doc.Components.Schemas {
		if m, err := c.schemaJSON(s); err == nil {
			out[name] = m
		}
	}
	return out
}

// usedDefs returns the component schemas v refers to, transitively.
func usedDefs(v any, defs map[string]any) map[string]any {
	used := map[string]any{}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if r, ok := x["$ref"].(string); ok {
				if name, ok := strings.CutPrefix(r, "#/$defs/"); ok {
					if _, done := used[name]; !done {
						if d, ok := defs[name]; ok {
							used[name] = d
							walk(d)
						}
					}
				}
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return used
}

// documentProblem turns a DocumentError into a 4xx problem naming the field.
func documentProblem(field string, err error) error {
	var de *DocumentError
	if errors.As(err, &de) {
		return api.FieldErrorf(api.KindValidation, field, "%s", de.Error())
	}
	return err
}
