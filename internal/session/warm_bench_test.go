package session

import (
	"context"
	"testing"

	"github.com/agentcloud/agentcloud/internal/isolate"
)

// BenchmarkWarmCall is one request to a live session (activation left
// out): what the tracing hooks, off by default, must not change.
func BenchmarkWarmCall(b *testing.B) {
	m := openManager(b, b.TempDir())
	deploy(b, m, `{"name":"warm","entry":"agent.js","limits":{"idle_seconds":3600}}`,
		`export default { async fetch(request) { return new Response("hi"); } };`)
	ctx := context.Background()
	if _, err := m.Call(ctx, "warm", "s", isolate.Request{URL: "http://x/"}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Call(ctx, "warm", "s", isolate.Request{URL: "http://x/"}); err != nil {
			b.Fatal(err)
		}
	}
}
