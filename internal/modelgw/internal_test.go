package modelgw

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

const chatBody = `{"model":"default","messages":[{"role":"user","content":"hi"}]}`

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"": 0, "0": 0, "-3": 0, "7": 7 * time.Second, "junk": 0, "99999999": 86400 * time.Second,
		now.Add(10 * time.Second).Format(http.TimeFormat): 10 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		if got := retryAfter(in, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{chatBody, `{"model":"m","input":["a",[1,2]]}`, `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}],"n":2,"max_tokens":5,"temperature":0}`,
		`{"model":"m","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"u"}]}`, `{}`, `null`, `[]`, `{"model":"m","max_completion_tokens":1e30}`} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, chat bool) {
		kind := embedEndpoint
		if chat {
			kind = chatEndpoint
		}
		r, err := parseRequest(kind, body, 2000)
		if err != nil {
			var p *api.Problem
			if !errors.As(err, &p) || p.Status < 400 || p.Status >= 500 {
				t.Fatalf("error %v is not a 4xx problem", err)
			}
			return
		}
		if r.model == "" || r.promptBound < int64(len(body)) || r.completionBound(1024) < 0 {
			t.Fatalf("accepted %q as %+v", body, r)
		}
		rt := route{upstream: "up"}
		out, err := r.body(rt, 10)
		if err != nil || !json.Valid(out) {
			t.Fatalf("body: %v", err)
		}
		if _, err := r.cacheKey("agent:a", []route{rt}); err != nil {
			t.Fatalf("cache key: %v", err)
		}
	})
}

// FuzzPipeSSE: whatever a provider streams is passed through byte for byte,
// and a usage member is found only in data lines.
func FuzzPipeSSE(f *testing.F) {
	f.Add([]byte("data: {\"choices\":[]}\n\ndata: {\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\ndata: [DONE]\n\n"))
	f.Add([]byte("event: x\r\ndata: {\"usage\":null}\r\n\r\n"))
	f.Add([]byte("no newline at the end"))
	f.Fuzz(func(t *testing.T, in []byte) {
		rec := httptest.NewRecorder()
		u, err := pipeSSE(rec, http.NewResponseController(rec), strings.NewReader(string(in)))
		if err != nil {
			t.Fatal(err)
		}
		if rec.Body.String() != string(in) {
			t.Fatalf("output differs from input")
		}
		if u != nil && !strings.Contains(string(in), "data:") {
			t.Fatalf("usage %+v found outside a data line", u)
		}
	})
}

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"120", "Wed, 21 Oct 2015 07:28:00 GMT", "-1", "1e9", ""} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, v string) {
		d := retryAfter(v, now)
		if d < 0 {
			t.Fatalf("retryAfter(%q) = %v", v, d)
		}
		if _, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && d > 24*time.Hour {
			t.Fatalf("retryAfter(%q) = %v: seconds are capped at a day", v, d)
		}
	})
}
