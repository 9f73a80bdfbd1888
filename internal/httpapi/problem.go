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
	"strconv"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/strictjson"
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
	if cp.RetryAfterSeconds > 0 && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", strconv.Itoa(cp.RetryAfterSeconds))
	}
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

// DecodeJSON reads the request body into v with the one strict decoder
// (internal/strictjson): the content type must be JSON (or absent);
// duplicate keys, a null body, unknown fields, trailing data and wrong types
// are 4xx problems that name the field; a body over the router's limit is 413.
func DecodeJSON(r *http.Request, v any) error {
	data, err := ReadJSON(r)
	if err != nil {
		return err
	}
	return strictjson.Decode(data, v)
}

// ReadJSON reads a request body that should be JSON, for handlers that
// parse it themselves: a content type other than JSON (or none) is 415 and a
// body over the router's limit 413, both as problems. The bytes are not
// checked.
func ReadJSON(r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, api.Errorf(api.KindUnsupportedMedia, "content type %q is not supported: send application/json", ct)
		}
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		if p := tooLarge(err); p != nil {
			return nil, p
		}
		return nil, api.Errorf(api.KindBadRequest, "read request body: %v", err)
	}
	return data, nil
}

func tooLarge(err error) *api.Problem {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return api.Errorf(api.KindTooLarge, "request body is larger than the limit of %d bytes", mbe.Limit)
	}
	return nil
}
