package modelgw_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/modelgw/openaitest"
)

// BenchmarkGatewayOverhead measures chat completions over loopback HTTP:
// straight to the fake provider (direct), through the gateway to it
// (uncached: parse, resolve, usage record, key substitution, proxying),
// and answered from the gateway's cache (cached). It reports the p50 and
// p99 of each in microseconds.
func BenchmarkGatewayOverhead(b *testing.B) {
	e := newEnv(b, nil)
	llm := openaitest.New(b, "llm")
	e.provider(llm, 1, "", "default")
	direct := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	b.Cleanup(direct.CloseIdleConnections)
	cases := []struct {
		name, url, body string
		auth            string
	}{
		{"direct", llm.BaseURL() + "/chat/completions", `{"model":"default","messages":[{"role":"user","content":"hi"}]}`, "Bearer key-llm"},
		{"uncached", e.srv.URL + "/v1/chat/completions", `{"model":"default","messages":[{"role":"user","content":"hi"}]}`, ""},
		{"cached", e.srv.URL + "/v1/chat/completions", `{"model":"default","temperature":0,"messages":[{"role":"user","content":"hi"}]}`, ""},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				req, _ := http.NewRequest("POST", tc.url, strings.NewReader(tc.body))
				req.Header.Set("Content-Type", "application/json")
				if tc.auth != "" {
					req.Header.Set("Authorization", tc.auth)
				}
				start := time.Now()
				resp, err := direct.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(start))
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50_us")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99_us")
		})
	}
}
