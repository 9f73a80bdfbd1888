package toolbox

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/google/jsonschema-go/jsonschema"
)

// maxSchemaCache bounds the compiled schemas kept; past it the cache starts
// over (schemas come from upstreams, so their number is not ours to fix).
const maxSchemaCache = 4096

// schemaCache holds compiled input schemas keyed by their text.
type schemaCache struct {
	mu sync.RWMutex // protects m
	m  map[string]*jsonschema.Resolved
}

func (c *schemaCache) resolved(raw json.RawMessage) (*jsonschema.Resolved, error) {
	key := string(raw)
	c.mu.RLock()
	r, ok := c.m[key]
	c.mu.RUnlock()
	if ok {
		return r, nil
	}
	var s jsonschema.Schema
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("parse input schema: %w", err)
	}
	r, err := s.Resolve(nil)
	if err != nil {
		return nil, fmt.Errorf("resolve input schema: %w", err)
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxSchemaCache {
		c.m = map[string]*jsonschema.Resolved{}
	}
	c.m[key] = r
	c.mu.Unlock()
	return r, nil
}

// validate checks that args is a JSON object matching t's input schema.
func (c *schemaCache) validate(t Tool, args json.RawMessage) error {
	var v any
	if err := json.Unmarshal(args, &v); err != nil {
		return Wrap(CodeInvalidArgs, t.Name, err, "arguments of %s are not valid JSON: %v", t.Name, err)
	}
	if _, ok := v.(map[string]any); !ok {
		return Errorf(CodeInvalidArgs, t.Name, "arguments of %s must be a JSON object, e.g. {}", t.Name)
	}
	if len(t.InputSchema) == 0 {
		return nil
	}
	r, err := c.resolved(t.InputSchema)
	if err != nil {
		return Wrap(CodeUnavailable, t.Name, err, "tool %s has an input schema that cannot be used: %v", t.Name, err)
	}
	if err := r.Validate(v); err != nil {
		msg := strings.TrimPrefix(err.Error(), "validating root: ")
		e := Wrap(CodeInvalidArgs, t.Name, err, "arguments do not match the input schema of %s: %s", t.Name, msg)
		e.Fields = []FieldError{{Field: fieldOf(msg), Detail: msg}}
		return e
	}
	return nil
}

// fieldOf extracts the first property named in a validation message
// ("validating /properties/language: ..." → "language"), or "" for the
// arguments object as a whole.
func fieldOf(msg string) string {
	i := strings.Index(msg, "/properties/")
	if i < 0 {
		if j := strings.Index(msg, "required: missing properties: ["); j >= 0 {
			rest := msg[j+len("required: missing properties: ["):]
			if k := strings.IndexAny(rest, "] "); k > 0 {
				return strings.Trim(rest[:k], `"`)
			}
		}
		return ""
	}
	rest := msg[i+len("/properties/"):]
	if k := strings.IndexAny(rest, "/: "); k >= 0 {
		rest = rest[:k]
	}
	return rest
}
