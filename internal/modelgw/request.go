package modelgw

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/strictjson"
)

// endpoint is an OpenAI-compatible operation.
type endpoint string

const (
	chatEndpoint  endpoint = "chat/completions"
	embedEndpoint endpoint = "embeddings"
)

// request is a parsed OpenAI request. Fields the gateway does not know
// are kept as they came and passed to the provider.
type request struct {
	kind        endpoint
	fields      map[string]json.RawMessage
	model       string
	stream      bool
	temperature *float64
	n           int64
	// maxTokens is max_tokens or max_completion_tokens (0: absent).
	maxTokens int64
	// promptBound is an upper bound on the prompt's tokens: every token is
	// at least one byte of the body, plus ImageTokens per image part.
	promptBound int64
}

// maxTokensLimit caps max_tokens so reservations cannot overflow.
const maxTokensLimit = 1 << 30

// parseRequest validates body as an OpenAI request of kind. Errors are
// 400/422 problems naming the field.
func parseRequest(kind endpoint, body []byte, imageTokens int64) (*request, error) {
	if len(bytes.TrimSpace(body)) > 0 {
		if err := strictjson.Check(body); err != nil {
			return nil, err
		}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		if len(bytes.TrimSpace(body)) == 0 {
			return nil, api.Errorf(api.KindInvalidJSON, "request body is empty: send a JSON object")
		}
		if err == nil || strings.Contains(err.Error(), "cannot unmarshal") {
			return nil, api.Errorf(api.KindInvalidJSON, "request body must be a JSON object")
		}
		return nil, api.Errorf(api.KindInvalidJSON, "malformed JSON: %s", err.Error())
	}
	r := &request{kind: kind, fields: fields, n: 1, promptBound: int64(len(body))}
	if err := str(fields, "model", &r.model); err != nil {
		return nil, err
	}
	if r.model == "" {
		return nil, api.FieldErrorf(api.KindValidation, "model", "model is required: a model name or alias (agentcloud models list)")
	}
	if len(r.model) > 300 {
		return nil, api.FieldErrorf(api.KindValidation, "model", "model name is longer than 300 bytes")
	}
	switch kind {
	case chatEndpoint:
		if err := r.parseChat(imageTokens); err != nil {
			return nil, err
		}
	case embedEndpoint:
		if err := r.parseEmbed(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *request) parseChat(imageTokens int64) error {
	raw, ok := r.fields["messages"]
	if !ok {
		return api.FieldErrorf(api.KindValidation, "messages", "messages is required: an array of {role, content}")
	}
	var msgs []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return api.FieldErrorf(api.KindInvalidJSON, "messages", "messages must be an array of objects")
	}
	if len(msgs) == 0 {
		return api.FieldErrorf(api.KindValidation, "messages", "messages is empty: send at least one message")
	}
	for i, m := range msgs {
		var role string
		if err := json.Unmarshal(m["role"], &role); err != nil || role == "" {
			return api.FieldErrorf(api.KindValidation, "messages", "messages[%d].role must be a non-empty string (system, user, assistant, tool)", i)
		}
	}
	r.promptBound += int64(bytes.Count(raw, []byte(`"image_url"`))) * imageTokens
	if v, ok := r.fields["stream"]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &r.stream); err != nil {
			return api.FieldErrorf(api.KindInvalidJSON, "stream", "stream must be a boolean")
		}
	}
	if v, ok := r.fields["stream_options"]; ok && string(v) != "null" {
		var o map[string]json.RawMessage
		if err := json.Unmarshal(v, &o); err != nil {
			return api.FieldErrorf(api.KindInvalidJSON, "stream_options", "stream_options must be an object")
		}
	}
	if v, ok := r.fields["temperature"]; ok && string(v) != "null" {
		var t float64
		if err := json.Unmarshal(v, &t); err != nil || t < 0 || t > 2 || math.IsNaN(t) {
			return api.FieldErrorf(api.KindValidation, "temperature", "temperature must be a number from 0 to 2")
		}
		r.temperature = &t
	}
	if v, ok := r.fields["n"]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &r.n); err != nil || r.n < 1 || r.n > 128 {
			return api.FieldErrorf(api.KindValidation, "n", "n must be an integer from 1 to 128")
		}
	}
	for _, f := range []string{"max_tokens", "max_completion_tokens"} {
		v, ok := r.fields[f]
		if !ok || string(v) == "null" {
			continue
		}
		var n int64
		if err := json.Unmarshal(v, &n); err != nil || n < 1 || n > maxTokensLimit {
			return api.FieldErrorf(api.KindValidation, f, "%s must be an integer from 1 to %d", f, maxTokensLimit)
		}
		if r.maxTokens == 0 || n < r.maxTokens {
			r.maxTokens = n
		}
	}
	return nil
}

func (r *request) parseEmbed() error {
	v, ok := r.fields["input"]
	if !ok {
		return api.FieldErrorf(api.KindValidation, "input", "input is required: a string, an array of strings, or token arrays")
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		if s == "" {
			return api.FieldErrorf(api.KindValidation, "input", "input is empty")
		}
		return nil
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(v, &arr); err != nil {
		return api.FieldErrorf(api.KindInvalidJSON, "input", "input must be a string, an array of strings, or token arrays")
	}
	if len(arr) == 0 || len(arr) > 2048 {
		return api.FieldErrorf(api.KindValidation, "input", "input must have 1 to 2048 items")
	}
	for i, item := range arr {
		var s string
		var n int64
		var toks []int64
		if json.Unmarshal(item, &s) != nil && json.Unmarshal(item, &n) != nil && json.Unmarshal(item, &toks) != nil {
			return api.FieldErrorf(api.KindInvalidJSON, "input", "input[%d] must be a string, a token or a token array", i)
		}
	}
	return nil
}

// str reads an optional string field.
func str(fields map[string]json.RawMessage, name string, dst *string) error {
	v, ok := fields[name]
	if !ok || string(v) == "null" {
		return nil
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return api.FieldErrorf(api.KindInvalidJSON, name, "%s must be a string", name)
	}
	return nil
}

// cacheable: identical requests may share an answer only when sampling is
// off (temperature 0), one choice, no stream.
func (r *request) cacheable() bool {
	return r.kind == embedEndpoint || (!r.stream && r.n == 1 && r.temperature != nil && *r.temperature == 0)
}

// completionBound is the most completion tokens the call may produce (0
// for embeddings), using def when the caller set no limit.
func (r *request) completionBound(def int64) int64 {
	if r.kind != chatEndpoint {
		return 0
	}
	m := r.maxTokens
	if m == 0 {
		m = def
	}
	return m * r.n
}

// body renders the request for one route: the upstream model name, the
// usage chunk asked for when streaming, and max_tokens when a budget needs
// the completion bounded.
func (r *request) body(rt route, capTokens int64) ([]byte, error) {
	out := make(map[string]json.RawMessage, len(r.fields)+2)
	for k, v := range r.fields {
		out[k] = v
	}
	m, _ := json.Marshal(rt.upstream)
	out["model"] = m
	if r.stream {
		opts := map[string]json.RawMessage{}
		if v, ok := r.fields["stream_options"]; ok && string(v) != "null" {
			_ = json.Unmarshal(v, &opts)
		}
		opts["include_usage"] = json.RawMessage("true")
		out["stream_options"], _ = json.Marshal(opts)
	}
	if capTokens > 0 && r.maxTokens == 0 {
		out["max_tokens"], _ = json.Marshal(capTokens)
	}
	return json.Marshal(out)
}

// canonNumbers rewrites numbers in one form (0.0 and 0, 1e2 and 100 are
// the same), keeping integers exact.
func canonNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = canonNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = canonNumbers(e)
		}
	case json.Number:
		if _, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return x
		}
		if f, err := strconv.ParseFloat(string(x), 64); err == nil {
			if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
				return json.Number(strconv.FormatInt(int64(f), 10))
			}
			return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
		}
	}
	return v
}

// cacheKey is the sha256 of the scope (who may share the answer), the
// canonical request (keys sorted at every level, numbers in one form) and
// the routes it resolved to.
func (r *request) cacheKey(scope string, routes []route) (string, error) {
	var v any
	b, err := json.Marshal(r.fields)
	if err != nil {
		return "", err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	canon, err := json.Marshal(canonNumbers(v))
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte(scope))
	h.Write([]byte{0})
	h.Write([]byte(r.kind))
	h.Write([]byte{0})
	h.Write(canon)
	for _, rt := range routes {
		h.Write([]byte{0})
		h.Write([]byte(rt.provider.Name + ":" + rt.upstream + "@" + rt.provider.BaseURL))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
