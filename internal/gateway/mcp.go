package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"
)

// peekMCP reads up to limit bytes of a JSON-RPC request body to learn its
// method and, for tools/call, the tool name; the body is put back so the
// handler reads it whole. Bodies larger than limit, batches, and anything
// that is not a JSON object are not classified (empty results).
func peekMCP(r *http.Request, limit int) (method, tool string) {
	if limit <= 0 || r.Body == nil || r.Body == http.NoBody || r.ContentLength > int64(limit) {
		return "", ""
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return "", ""
		}
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	r.Body = readCloser{io.MultiReader(bytes.NewReader(data), r.Body), r.Body}
	if err != nil || len(data) > limit {
		return "", ""
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return "", ""
	}
	var msg struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	if json.Unmarshal(data, &msg) != nil {
		return "", ""
	}
	if !printable(msg.Method, 128) {
		return "", ""
	}
	if msg.Method == "tools/call" && printable(msg.Params.Name, 192) {
		tool = msg.Params.Name
	}
	return msg.Method, tool
}

// printable reports a non-empty string of at most max printable ASCII
// bytes (what may go into a rate limit key and a metric-free log).
func printable(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x21 || r > 0x7e }) < 0
}

type readCloser struct {
	io.Reader
	io.Closer
}
