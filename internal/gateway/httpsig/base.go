package httpsig

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/dunglas/httpsfv"
)

// Message is what a signature's components are taken from: a request, or a
// response together with the request it answers.
type Message struct {
	// Request side.
	Method    string
	Scheme    string // "http" or "https"
	Authority string // host[:port] as sent
	// RawPath and RawQuery are the target as sent (percent-encoding kept);
	// RawQuery has no "?".
	RawPath  string
	RawQuery string
	// Status is set for a response (0 for a request).
	Status int
	Header http.Header
	// Request is the request of a response, for ;req components.
	Request *Message
}

// FromRequest describes a server-side request. The scheme is https when the
// connection was TLS.
func FromRequest(r *http.Request) *Message {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if host == "" && r.URL != nil {
		host = r.URL.Host
	}
	m := &Message{Method: r.Method, Scheme: scheme, Authority: host, Header: r.Header}
	if r.URL != nil {
		m.RawPath = r.URL.EscapedPath()
		m.RawQuery = r.URL.RawQuery
		if r.URL.Scheme != "" {
			m.Scheme = r.URL.Scheme
		}
	}
	return m
}

// FromResponse describes a response to req.
func FromResponse(status int, h http.Header, req *Message) *Message {
	return &Message{Status: status, Header: h, Request: req}
}

// Base builds the signature base of s over m (RFC 9421 section 2.5).
func Base(m *Message, s *Signature) ([]byte, error) {
	var b strings.Builder
	for _, c := range s.Components {
		if c.Name == "@signature-params" {
			return nil, fmt.Errorf("%w: @signature-params cannot be covered", ErrComponent)
		}
		src := m
		if c.Req {
			if m.Request == nil {
				return nil, fmt.Errorf("%w: %s: ;req is only for responses", ErrComponent, c)
			}
			src = m.Request
		}
		lines, err := componentValues(src, c)
		if err != nil {
			return nil, err
		}
		id := c.String()
		for _, v := range lines {
			if strings.ContainsAny(v, "\r\n") {
				return nil, fmt.Errorf("%w: %s contains a line break", ErrComponent, id)
			}
			b.WriteString(id)
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteByte('\n')
		}
	}
	p, err := s.Params()
	if err != nil {
		return nil, err
	}
	b.WriteString(`"@signature-params": `)
	b.WriteString(p)
	return []byte(b.String()), nil
}

// componentValues returns the value of c in m: one line, except
// @query-param, which has one line per occurrence of the parameter.
func componentValues(m *Message, c Component) ([]string, error) {
	if c.Tr {
		return nil, fmt.Errorf("%w: %s: trailers are not supported", ErrComponent, c)
	}
	if strings.HasPrefix(c.Name, "@") {
		if c.Key != "" || c.SF || c.BS {
			return nil, fmt.Errorf("%w: %s: derived components take no key, sf or bs", ErrComponent, c)
		}
		if c.QueryName != "" && c.Name != "@query-param" {
			return nil, fmt.Errorf("%w: %s: name is only for @query-param", ErrComponent, c)
		}
		return derived(m, c)
	}
	if c.QueryName != "" {
		return nil, fmt.Errorf("%w: %s: name is only for @query-param", ErrComponent, c)
	}
	v, err := fieldValue(m, c)
	if err != nil {
		return nil, err
	}
	return []string{v}, nil
}

func derived(m *Message, c Component) ([]string, error) {
	isResponse := m.Status != 0
	if isResponse && c.Name != "@status" {
		return nil, fmt.Errorf("%w: %s is a request component; a response signature needs ;req", ErrComponent, c)
	}
	one := func(s string) ([]string, error) { return []string{s}, nil }
	switch c.Name {
	case "@status":
		if !isResponse {
			return nil, fmt.Errorf("%w: @status is only for responses", ErrComponent)
		}
		return one(strconv.Itoa(m.Status))
	case "@method":
		return one(m.Method)
	case "@authority":
		return one(Authority(m.Scheme, m.Authority))
	case "@scheme":
		return one(strings.ToLower(m.Scheme))
	case "@path":
		return one(path(m))
	case "@query":
		return one("?" + m.RawQuery)
	case "@request-target":
		if m.RawQuery != "" {
			return one(path(m) + "?" + m.RawQuery)
		}
		return one(path(m))
	case "@target-uri":
		u := strings.ToLower(m.Scheme) + "://" + Authority(m.Scheme, m.Authority) + path(m)
		if m.RawQuery != "" {
			u += "?" + m.RawQuery
		}
		return one(u)
	case "@query-param":
		return queryParam(m, c)
	}
	return nil, fmt.Errorf("%w: unknown derived component %s", ErrComponent, c)
}

func path(m *Message) string {
	if m.RawPath == "" {
		return "/"
	}
	return m.RawPath
}

// Authority normalizes host[:port] for @authority: lowercase, without the
// scheme's default port.
func Authority(scheme, hostport string) string {
	hostport = strings.ToLower(hostport)
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	if port == "443" && strings.EqualFold(scheme, "https") || port == "80" && strings.EqualFold(scheme, "http") {
		if strings.Contains(host, ":") {
			return "[" + host + "]"
		}
		return host
	}
	return hostport
}

func queryParam(m *Message, c Component) ([]string, error) {
	if c.QueryName == "" {
		return nil, fmt.Errorf("%w: @query-param needs ;name", ErrComponent)
	}
	var out []string
	for _, pair := range strings.Split(m.RawQuery, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		dk, err1 := url.QueryUnescape(k)
		dv, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: the query is not form-urlencoded", ErrComponent)
		}
		if formEncode(dk) == c.QueryName {
			out = append(out, formEncode(dv))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: query parameter %q is absent", ErrComponent, c.QueryName)
	}
	return out, nil
}

// formEncode percent-encodes s as RFC 9421 section 2.2.8 asks: the
// application/x-www-form-urlencoded encode set, with spaces as %20.
func formEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '*' || c == '-' || c == '.' || c == '_' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// sfTypes lists the fields whose structured type this package knows, for
// ;sf and ;key.
var sfTypes = map[string]string{
	"signature-agent":  "dictionary",
	"signature-input":  "dictionary",
	"signature":        "dictionary",
	"content-digest":   "dictionary",
	"repr-digest":      "dictionary",
	"accept-signature": "dictionary",
	"ratelimit":        "list",
	"ratelimit-policy": "list",
	"priority":         "dictionary",
	"cache-status":     "list",
}

func fieldValue(m *Message, c Component) (string, error) {
	var lines []string
	if c.Name == "host" && m.Status == 0 {
		lines = []string{m.Authority}
	} else {
		lines = m.Header.Values(c.Name)
	}
	if len(lines) == 0 {
		return "", fmt.Errorf("%w: field %s is absent", ErrComponent, c.Name)
	}
	if c.BS {
		if c.SF || c.Key != "" {
			return "", fmt.Errorf("%w: %s: bs cannot be combined with sf or key", ErrComponent, c)
		}
		parts := make([]string, len(lines))
		for i, l := range lines {
			parts[i] = ":" + base64.StdEncoding.EncodeToString([]byte(strings.Trim(l, " \t"))) + ":"
		}
		return strings.Join(parts, ", "), nil
	}
	if c.Key != "" || c.SF {
		typ := sfTypes[c.Name]
		if c.Key != "" && typ != "dictionary" && typ != "" {
			return "", fmt.Errorf("%w: %s: ;key needs a dictionary field", ErrComponent, c)
		}
		if c.Key != "" {
			typ = "dictionary"
		}
		return structured(lines, typ, c)
	}
	parts := make([]string, len(lines))
	for i, l := range lines {
		parts[i] = strings.Trim(l, " \t")
	}
	return strings.Join(parts, ", "), nil
}

func structured(lines []string, typ string, c Component) (string, error) {
	switch typ {
	case "dictionary":
		d, err := httpsfv.UnmarshalDictionary(lines)
		if err != nil {
			return "", fmt.Errorf("%w: %s is not a structured dictionary: %w", ErrComponent, c.Name, err)
		}
		if c.Key == "" {
			return marshal(d, c)
		}
		mem, ok := d.Get(c.Key)
		if !ok {
			return "", fmt.Errorf("%w: %s has no member %q", ErrComponent, c.Name, c.Key)
		}
		switch v := mem.(type) {
		case httpsfv.Item:
			return marshal(v, c)
		case httpsfv.InnerList:
			return marshal(v, c)
		}
		return "", fmt.Errorf("%w: %s member %q has an unknown type", ErrComponent, c.Name, c.Key)
	case "list":
		l, err := httpsfv.UnmarshalList(lines)
		if err != nil {
			return "", fmt.Errorf("%w: %s is not a structured list: %w", ErrComponent, c.Name, err)
		}
		return marshal(l, c)
	}
	return "", fmt.Errorf("%w: %s: the structured type of %s is not known", ErrComponent, c, c.Name)
}

func marshal(v httpsfv.StructuredFieldValue, c Component) (string, error) {
	s, err := httpsfv.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrComponent, c, err)
	}
	return s, nil
}
