package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
)

// WriteJSONConditional answers a read with v as JSON (200) carrying a
// strong ETag (a SHA-256 of the body) and Cache-Control: no-cache (keep it,
// but revalidate), or with 304 Not Modified and no body when the request's
// If-None-Match names that tag (or is "*"). Use it for GET reads whose
// body depends only on what the caller may see.
func WriteJSONConditional(w http.ResponseWriter, r *http.Request, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		WriteJSON(w, http.StatusOK, v) // cannot happen for API types; answer as before
		return
	}
	sum := sha256.Sum256(buf.Bytes())
	tag := `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
	h := w.Header()
	h.Set("ETag", tag)
	h.Set("Cache-Control", "no-cache")
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && NoneMatch(r.Header.Values("If-None-Match"), tag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// NoneMatch reports whether If-None-Match field values match the entity
// tag etag (RFC 9110 13.1.2: "*" matches any; otherwise a list of entity
// tags compared weakly, so W/"x" matches "x"). Malformed members match
// nothing; the whole field is bounded by the server's header limit.
func NoneMatch(values []string, etag string) bool {
	want := strings.TrimPrefix(etag, "W/")
	for _, v := range values {
		for _, m := range strings.Split(v, ",") {
			m = strings.TrimSpace(m)
			if m == "*" {
				return true
			}
			m = strings.TrimPrefix(m, "W/")
			if len(m) >= 2 && m[0] == '"' && m[len(m)-1] == '"' && !strings.Contains(m[1:len(m)-1], `"`) && m == want {
				return true
			}
		}
	}
	return false
}
