// Package strictjson is the one JSON decoder for every input agentcloud
// accepts from outside: API request bodies, tool arguments (REST and MCP),
// model-gateway requests. It refuses what encoding/json lets through
// silently: a key given twice in one object (encoding/json keeps the last,
// so {"tier":"process","tier":"gvisor"} once made a gVisor sandbox), a
// top-level null (which decodes into a struct as "no change" and once
// emptied the policy set), unknown fields, trailing data, and nesting
// deeper than MaxDepth. Every refusal is an api.KindInvalidJSON problem
// (400) naming the offending field as a path such as `tools[2].name`.
//
// It owns decoding only; size limits stay with the caller (the router's
// body limit, the toolbox's argument cap).
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/agentcloud/agentcloud/api"
)

// MaxDepth is the deepest nesting of objects and arrays accepted.
const MaxDepth = 64

// Check validates data as one JSON value: well formed, no duplicate keys
// in any object, nesting at most MaxDepth, nothing after the value.
func Check(data []byte) error {
	if quickCheck(data) {
		return nil
	}
	return walk(data)
}

// walk is Check token by token: slower, but it names what is wrong.
func walk(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]struct{}
		key    string // current key (objects) for the path
		index  int    // current index (arrays)
		expect bool   // object: the next string token is a key
	}
	var stack []*frame
	path := func() string {
		var b strings.Builder
		for i, f := range stack {
			if f.object {
				if i > 0 {
					b.WriteByte('.')
				}
				b.WriteString(f.key)
			} else {
				b.WriteString("[" + strconv.Itoa(f.index) + "]")
			}
		}
		return b.String()
	}
	// valueDone advances the enclosing container after a complete value.
	valueDone := func() {
		if len(stack) == 0 {
			return
		}
		f := stack[len(stack)-1]
		if f.object {
			f.expect = true
		} else {
			f.index++
		}
	}
	started := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if !started {
				return api.Errorf(api.KindInvalidJSON, "body is empty: send a JSON value")
			}
			if len(stack) > 0 {
				return api.Errorf(api.KindInvalidJSON, "body ends in the middle of the JSON value")
			}
			break
		}
		if err != nil {
			return syntaxProblem(err, dec.InputOffset())
		}
		if started && len(stack) == 0 {
			return api.Errorf(api.KindInvalidJSON, "data after the JSON value at byte %d", dec.InputOffset())
		}
		started = true
		top := (*frame)(nil)
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expect {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				valueDone()
				continue
			}
			key, _ := tok.(string)
			if _, dup := top.keys[key]; dup {
				top.key = key
				p := path()
				return api.FieldErrorf(api.KindInvalidJSON, p, "duplicate key %q in one object (at %s): give each key once", shorten(key), shorten(p))
			}
			top.keys[key] = struct{}{}
			top.key, top.expect = key, false
			continue
		}
		switch d := tok.(type) {
		case json.Delim:
			switch d {
			case '{', '[':
				if len(stack) >= MaxDepth {
					return api.FieldErrorf(api.KindInvalidJSON, path(), "JSON nests deeper than %d levels", MaxDepth)
				}
				stack = append(stack, &frame{object: d == '{', keys: map[string]struct{}{}, expect: d == '{'})
			case ']':
				stack = stack[:len(stack)-1]
				valueDone()
			}
		default:
			valueDone()
		}
	}
	return nil
}

// Decode checks data with Check, then decodes it into v: a top-level null
// is refused, unknown fields are refused, and type errors name the field.
func Decode(data []byte, v any) error {
	if err := Check(data); err != nil {
		return err
	}
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return api.Errorf(api.KindInvalidJSON, "body is null: send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeProblem(err)
	}
	return nil
}

// DecodeReader reads all of r (the caller bounds its size) and decodes it
// with Decode. A read error that reports a size limit passes through.
func DecodeReader(r io.Reader, v any) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return Decode(data, v)
}

func shorten(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func syntaxProblem(err error, off int64) error {
	var se *json.SyntaxError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return api.Errorf(api.KindInvalidJSON, "body ends in the middle of the JSON value")
	case errors.As(err, &se):
		return api.Errorf(api.KindInvalidJSON, "malformed JSON at byte %d: %s", se.Offset, se.Error())
	default:
		return api.Errorf(api.KindInvalidJSON, "malformed JSON at byte %d: %s", off, err.Error())
	}
}

func decodeProblem(err error) error {
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return api.Errorf(api.KindInvalidJSON, "body must be %s, not JSON %s", typeName(te.Type.Kind().String()), te.Value)
		}
		return api.FieldErrorf(api.KindInvalidJSON, field, "field %q must be %s, not JSON %s", field, typeName(te.Type.Kind().String()), te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return api.FieldErrorf(api.KindInvalidJSON, name, "unknown field %q: check the field name against /openapi.json", shorten(name))
	default:
		return api.Errorf(api.KindInvalidJSON, "invalid JSON body: %s", err.Error())
	}
}

func typeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	default:
		if strings.HasPrefix(kind, "int") || strings.HasPrefix(kind, "uint") || strings.HasPrefix(kind, "float") {
			return "a number"
		}
		return kind
	}
}
