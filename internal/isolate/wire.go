package isolate

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The request and response metadata cross between Go and the prelude as
// NUL-separated strings: building and splitting them costs far less guest
// time than JSON or per-field property calls. HTTP forbids NUL (and CR/LF)
// in methods, URLs and header fields, so the separator is unambiguous.

var (
	errNUL    = errors.New("isolate: NUL byte in request method, URL or header")
	errMethod = errors.New("isolate: request method starts with a control byte")
)

// requestWire encodes req as "method\0url\0(name\0value\0)*" with lower-case
// header names.
func requestWire(req Request) (string, error) {
	method := req.Method
	if method == "" {
		method = "GET"
	}
	if method[0] < ' ' {
		// A leading control byte marks the driver's own calls (socket
		// events, responding to a settled handler): never a request's.
		return "", errMethod
	}
	n := len(method) + len(req.URL) + 2
	for _, h := range req.Headers {
		n += len(h[0]) + len(h[1]) + 2
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(method)
	b.WriteByte(0)
	b.WriteString(req.URL)
	b.WriteByte(0)
	for _, h := range req.Headers {
		for i := 0; i < len(h[0]); i++ {
			c := h[0][i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b.WriteByte(c)
		}
		b.WriteByte(0)
		b.WriteString(h[1])
		b.WriteByte(0)
	}
	s := b.String()
	if strings.Count(s, "\x00") != 2+2*len(req.Headers) {
		return "", errNUL
	}
	return s, nil
}

// parseResponseWire decodes "status\0statusText\0n\0(name\0value\0)*n" and,
// when textBody, the body text that follows it.
func parseResponseWire(s string, body []byte, textBody bool) (Response, error) {
	bad := func(what string) (Response, error) {
		return Response{}, fmt.Errorf("%w: bad response metadata (%s)", ErrCrashed, what)
	}
	field := func() (string, bool) {
		i := strings.IndexByte(s, 0)
		if i < 0 {
			return "", false
		}
		f := s[:i]
		s = s[i+1:]
		return f, true
	}
	st, ok1 := field()
	text, ok2 := field()
	ns, ok3 := field()
	if !ok1 || !ok2 || !ok3 {
		return bad("fields")
	}
	status, err := strconv.Atoi(st)
	if err != nil {
		return bad("status")
	}
	n, err := strconv.Atoi(ns)
	if err != nil || n < 0 || n > len(s) {
		return bad("header count")
	}
	resp := Response{Status: status, StatusText: text}
	if n > 0 {
		resp.Headers = make([][2]string, n)
	} else {
		resp.Headers = [][2]string{}
	}
	for i := range n {
		k, ok1 := field()
		v, ok2 := field()
		if !ok1 || !ok2 {
			return bad("headers")
		}
		resp.Headers[i] = [2]string{k, v}
	}
	if textBody {
		body = []byte(s)
	} else if len(s) != 0 {
		return bad("trailing bytes")
	}
	if body == nil {
		body = []byte{}
	}
	resp.Body = body
	return resp, nil
}
