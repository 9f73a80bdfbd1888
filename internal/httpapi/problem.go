// Package httpapi holds the HTTP conventions every agentcloud endpoint uses:
// a Router that records each route for the OpenAPI document, problem+json
// errors, strict JSON decoding, and the middleware chain (request IDs, panic
// recovery, body limits, access logs, metrics, authentication). It knows no
// product concepts; handlers come from the packages that own them, wired by
// internal/daemon.
package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"github.com/agentcloud/agentcloud/api"
)

// WriteProblem answers with err as problem+json. Errors that are not
// *api.Problem are logged and answered as an opaque 500.
func WriteProblem(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	p := api.AsProblem(err)
	if p.Kind() == api.KindInternal && log != nil {
		log.ErrorContext(r.Context(), "internal error", "err", err, "method", r.Method, "path", r.URL.Path)
	}
	cp := *p
	cp.RequestID = RequestID(r.Context())
	if cp.Instance == "" {
		cp.Instance = r.URL.Path
	}
	w.Header().Set("Content-Type", api.ProblemContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if cp.Status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" { // a handler's own challenge wins
		w.Header().Set("WWW-Authenticate", `Bearer realm="agentcloud"`)
	}
	w.WriteHeader(cp.Status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(&cp)
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// DecodeJSON reads the request body into v strictly: the content type must be
// JSON (or absent), unknown fields, trailing data and wrong types are 4xx
// problems that name the field.
func DecodeJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return api.Errorf(api.KindUnsupportedMedia, "content type %q is not supported: send application/json", ct)
		}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonProblem(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		if p := tooLarge(err); p != nil {
			return p
		}
		return api.Errorf(api.KindInvalidJSON, "request body has data after the JSON value")
	}
	return nil
}

func tooLarge(err error) *api.Problem {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return api.Errorf(api.KindTooLarge, "request body is larger than the limit of %d bytes", mbe.Limit)
	}
	return nil
}

func jsonProblem(err error) error {
	if p := tooLarge(err); p != nil {
		return p
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return api.Errorf(api.KindInvalidJSON, "request body is empty: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return api.Errorf(api.KindInvalidJSON, "request body ends in the middle of the JSON value")
	case errors.As(err, &se):
		return api.Errorf(api.KindInvalidJSON, "malformed JSON at byte %d: %s", se.Offset, se.Error())
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return api.Errorf(api.KindInvalidJSON, "request body must be %s, not JSON %s", jsonTypeName(te.Type.Kind().String()), te.Value)
		}
		return api.FieldErrorf(api.KindInvalidJSON, field, "field %q must be %s, not JSON %s", field, jsonTypeName(te.Type.Kind().String()), te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return api.FieldErrorf(api.KindInvalidJSON, name, "unknown field %q: check the field name against /openapi.json", name)
	default:
		return api.Errorf(api.KindInvalidJSON, "invalid JSON body: %s", err.Error())
	}
}

func jsonTypeName(kind string) string {
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
