package isolate

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"strings"
)

// maxFormParts bounds the parts one multipart body may have.
const maxFormParts = 1000

// formPart is one entry of a parsed form, as the "multipart.parse" host op
// answers it: Value for a field, Data (base64) for a file.
type formPart struct {
	Name     string `json:"name"`
	Filename string `json:"filename,omitempty"`
	Type     string `json:"type,omitempty"`
	File     bool   `json:"file,omitempty"`
	Value    string `json:"value,omitempty"`
	Data     string `json:"data,omitempty"`
}

// parseForm parses a request or response body for Body.formData(): a
// multipart/form-data body with Go's mime/multipart (limit bytes in all,
// at most maxFormParts parts), or an application/x-www-form-urlencoded one
// (left to the caller: the answer is then "urlencoded"). The answer is
// JSON; errors are TypeErrors, as formData() rejects with.
func parseForm(contentType string, body []byte, limit int) (string, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", HostErrorf("TypeError", "formData: content-type %q: %v", contentType, err)
	}
	switch mt {
	case "application/x-www-form-urlencoded":
		return `"urlencoded"`, nil
	case "multipart/form-data":
	default:
		return "", HostErrorf("TypeError", "formData: content-type %q is neither multipart/form-data nor application/x-www-form-urlencoded", mt)
	}
	boundary := params["boundary"]
	if boundary == "" {
		return "", HostErrorf("TypeError", "formData: multipart/form-data without a boundary")
	}
	r := multipart.NewReader(bytes.NewReader(body), boundary)
	parts := []formPart{}
	total := 0
	for {
		p, err := r.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", HostErrorf("TypeError", "formData: malformed multipart body: %v", err)
		}
		if len(parts) == maxFormParts {
			return "", HostErrorf("TypeError", "formData: more than %d parts", maxFormParts)
		}
		disp, dparams, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
		if err != nil || disp != "form-data" {
			return "", HostErrorf("TypeError", "formData: part %d has no form-data Content-Disposition", len(parts)+1)
		}
		name, ok := dparams["name"]
		if !ok {
			return "", HostErrorf("TypeError", "formData: part %d has no name", len(parts)+1)
		}
		data, err := io.ReadAll(io.LimitReader(p, int64(limit-total)+1))
		if err != nil {
			return "", HostErrorf("TypeError", "formData: malformed multipart body: %v", err)
		}
		if total += len(data); total > limit {
			return "", HostErrorf("TypeError", "formData: parts larger than %d bytes", limit)
		}
		fp := formPart{Name: name}
		if fn, isFile := dparams["filename"]; isFile {
			fp.File, fp.Filename, fp.Type = true, fn, p.Header.Get("Content-Type")
			if fp.Type == "" {
				fp.Type = "application/octet-stream"
			}
			fp.Data = base64.StdEncoding.EncodeToString(data)
		} else {
			fp.Value = strings.ToValidUTF8(string(data), "\uFFFD")
		}
		parts = append(parts, fp)
	}
	b, err := json.Marshal(parts)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
