package daemon_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/auth"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/daemon/daemontest"
	"github.com/agentcloud/agentcloud/internal/telemetry/otlptest"
)

// tracedAgent fetches ?url=, runs a command in a sandbox and calls its
// own session s2 through the call_agent tool; ?leaf=1 just answers.
const tracedAgent = `export default {
  async fetch(request, env) {
    const u = new URL(request.url);
    if (u.searchParams.get("leaf")) { return new Response("leaf"); }
    const site = await fetch(u.searchParams.get("url"));
    const sb = await env.sandbox.run({language: "bash", code: "echo sandboxed", timeout: 30});
    let tool = "tool ok";
    try { await env.tools.call("call_agent", {agent: "traced", session: "s2", path: "/?leaf=1"}); }
    catch (e) { tool = e.name + ": " + e.message; }
    return new Response(await site.text() + "|" + sb.stdout.trim() + "|" + tool);
  }
};`

const (
	callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan  = "00f067aa0ba902b7"
)

// lockedBuffer is a log sink safe for the daemon's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startTracedDaemon starts a daemon logging JSON at debug level to logs.
func startTracedDaemon(t *testing.T, cfg config.Config, logs io.Writer) (*daemon.Daemon, *client.Client) {
	t.Helper()
	cfg.Data, cfg.Listen = t.TempDir(), "127.0.0.1:0"
	cfg.SandboxPoolGVisor = 0 // a warm gVisor sandbox per test node costs a runsc start; the tier's tests cover the pool
	d, err := daemon.New(cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { _ = d.Shutdown(context.Background()) }) })
	stoppers.Store(d, &once)
	tok, err := os.ReadFile(filepath.Join(cfg.Data, auth.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New("http://"+d.Addr(), strings.TrimSpace(string(tok)))
	if err != nil {
		t.Fatal(err)
	}
	daemontest.RegisterAdmin(t, c)
	return d, c
}

// TestTracingEndToEnd: with tracing on, one call by a trusted caller (the
// admin token) carrying a traceparent makes one trace, continued from the
// caller's, that connects the HTTP request, the session invoke and
// activation, the isolate's host calls, the egress request, the sandbox
// exec and the tool call (with the session it calls); the loopback site
// the agent fetches receives that trace's traceparent with the egress
// span as parent; log lines carry the trace id. A malformed traceparent is
// ignored (200, a new trace); an anonymous caller's valid one starts a
// new trace linked to it.
func TestTracingEndToEnd(t *testing.T) {
	rcv := otlptest.New(t)
	seen := make(chan string, 8)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("Traceparent")
		io.WriteString(w, "site")
	}))
	t.Cleanup(site.Close)
	port := site.Listener.Addr().String()[strings.LastIndex(site.Listener.Addr().String(), ":")+1:]
	cfg := config.Default()
	cfg.SandboxPoolProcess = 0
	cfg.EgressLoopbackHosts = []string{"a.test"}
	cfg.Tracing = config.TracingConfig{OTLPEndpoint: rcv.URL(), SampleRatio: 1, QueueSize: 4096}
	logs := &lockedBuffer{}
	d, admin := startTracedDaemon(t, cfg, logs)
	man := `{"name":"traced","entry":"agent.js","egress":["a.test:` + port + `"],"tools":["call_agent"],"limits":{"idle_seconds":3600}}`
	if err := deployJS(admin, man, tracedAgent); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ApplyPolicies(context.Background(), `@id("traced-calls-itself")
permit (principal is Session, action == Action::"session.call", resource);`); err != nil {
		t.Fatal(err)
	}
	call := func(traceparent string) (int, string) {
		h := http.Header{}
		if traceparent != "" {
			h.Set("Traceparent", traceparent)
		}
		resp, err := admin.Call(context.Background(), "traced", "s1", "GET", "/?url=http://a.test:"+port+"/", nil, h)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := call("00-" + callerTrace + "-" + callerSpan + "-01"); code != 200 || body != "site|sandboxed|tool ok" {
		t.Fatalf("traced call: %d %s", code, body)
	}
	atSite := <-seen
	for _, bad := range []string{"00-" + callerTrace + "-zz", "garbage", strings.Repeat("0", 55), "00-" + callerTrace + "-" + callerSpan + "-01-extra-" + strings.Repeat("x", 4000)} {
		if code, body := call(bad); code != 200 {
			t.Errorf("malformed traceparent %.40q: %d %s", bad, code, body)
		}
		if got := <-seen; strings.Contains(got, callerTrace) || len(got) != 55 {
			t.Errorf("malformed traceparent %.40q: the site got %q", bad, got)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+d.Addr()+"/healthz", nil)
	req.Header.Set("Traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	want := []string{"session.invoke", "session.activate", "isolate.host fetch", "egress.request", "isolate.host env", "sandbox.exec", "tool.call"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	spans, err := rcv.Wait(ctx, func(s []otlptest.Span) bool {
		tr := otlptest.Trace(s, callerTrace)
		for _, n := range want {
			if _, ok := otlptest.Named(tr, n); !ok {
				return false
			}
		}
		for _, sp := range s {
			if sp.Attrs["url.path"] == "/healthz" {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	trace := otlptest.Trace(spans, callerTrace)
	byID := map[string]otlptest.Span{}
	var server otlptest.Span
	for _, s := range trace {
		byID[s.SpanID] = s
		if s.ParentID == callerSpan {
			server = s
		}
	}
	if server.Kind != 2 || server.Name != "GET /agents/{agent}/sessions/{session}" || server.Attrs["http.response.status_code"] != "200" {
		t.Fatalf("the server span is not the caller's child: %+v", server)
	}
	// under reports whether s descends from a span named anc.
	under := func(s otlptest.Span, anc string) bool {
		for p, ok := byID[s.ParentID]; ok; p, ok = byID[p.ParentID] {
			if p.Name == anc {
				return true
			}
		}
		return false
	}
	for _, n := range want {
		s, _ := otlptest.Named(trace, n)
		if !under(s, server.Name) {
			t.Errorf("%s is not under the server span", n)
		}
	}
	egress, _ := otlptest.Named(trace, "egress.request")
	if !under(egress, "isolate.host fetch") || !under(egress, "session.invoke") || egress.Kind != 3 || egress.Attrs["agentcloud.egress.purpose"] != "session" {
		t.Errorf("egress span: %+v", egress)
	}
	if atSite != "00-"+callerTrace+"-"+egress.SpanID+"-01" {
		t.Errorf("the site got traceparent %q, want the egress span %s of trace %s", atSite, egress.SpanID, callerTrace)
	}
	exec, _ := otlptest.Named(trace, "sandbox.exec")
	tool, _ := otlptest.Named(trace, "tool.call")
	if !under(exec, "isolate.host env") || !under(tool, "isolate.host env") || tool.Attrs["agentcloud.tool"] != "call_agent" {
		t.Errorf("sandbox.exec %+v or tool.call %+v is not under a host call", exec, tool)
	}
	nested := 0
	for _, s := range trace {
		if s.Name == "session.invoke" && s.Attrs["agentcloud.session"] == "s2" && under(s, "tool.call") {
			nested++
		}
	}
	if nested != 1 {
		t.Errorf("%d invokes of s2 under the tool call, want 1", nested)
	}
	for _, s := range spans {
		if s.TraceID != callerTrace && s.ParentID == "" && s.Attrs["url.path"] == "/healthz" &&
			(len(s.LinkTraceIDs) != 1 || s.LinkTraceIDs[0] != callerTrace) {
			t.Errorf("anonymous caller's span %+v is not linked to the trace it claimed", s)
		}
		if s.TraceID == callerTrace && s.Attrs["url.path"] == "/healthz" {
			t.Errorf("an anonymous caller continued its trace: %+v", s)
		}
	}
	if !strings.Contains(logs.String(), `"trace_id":"`+callerTrace+`"`) {
		t.Error("no log line carries the trace id")
	}
}

// TestTracingCollectorDown: a collector that never answers does not slow
// or fail requests (the queue is bounded and drops spans).
func TestTracingCollectorDown(t *testing.T) {
	rcv := otlptest.NewHanging(t)
	cfg := config.Default()
	cfg.SandboxPoolProcess = 0
	cfg.Tracing = config.TracingConfig{OTLPEndpoint: rcv.URL(), SampleRatio: 1, QueueSize: 8}
	_, admin := startTracedDaemon(t, cfg, io.Discard)
	if err := deployJS(admin, `{"name":"echo","entry":"agent.js","limits":{"idle_seconds":3600}}`, echoAgent); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if code, body := get(t, admin, "echo", "s1", "", ""); code != 200 || body != "hi" {
			t.Fatalf("call %d: %d %s", i, code, body)
		}
	}
}
