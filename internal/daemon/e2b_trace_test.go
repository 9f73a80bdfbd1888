package daemon_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
	"github.com/agentcloud/agentcloud/internal/telemetry/otlptest"
)

// TestTracingE2BProcessStart: a process started through the E2B process
// API runs inside a sandbox.exec span of the Start request's trace, and
// finds that span's trace context in TRACEPARENT.
func TestTracingE2BProcessStart(t *testing.T) {
	if err := process.Available(); err != nil {
		t.Skipf("process sandbox tier unavailable: %v", err)
	}
	rcv := otlptest.New(t)
	cfg := config.Default()
	cfg.SandboxPoolProcess = 0
	cfg.Tracing = config.TracingConfig{OTLPEndpoint: rcv.URL(), SampleRatio: 1, QueueSize: 4096}
	d, admin := startTracedDaemon(t, cfg, &lockedBuffer{})
	base := "http://" + d.Addr() + "/e2b"
	id, tok := e2bSandbox(t, base, e2bKey(t, d, admin, "user:e2b-tracer"))
	env := map[string]string{"X-Access-Token": tok, "E2b-Sandbox-Id": id}
	start := envelope(0, `{"process":{"cmd":"/bin/sh","args":["-c","printf %s \"$TRACEPARENT\" > /workspace/tp"]}}`)
	if a := doE2B(t, base, e2bCall{name: "start", method: "POST", path: "/process.Process/Start", ctype: "application/connect+json", body: start, headers: env}); a.status != http.StatusOK {
		t.Fatalf("start: %d %s", a.status, a.body)
	}
	a := doE2B(t, base, e2bCall{name: "download", method: "GET", path: "/files?path=/workspace/tp", headers: env})
	if a.status != http.StatusOK {
		t.Fatalf("download: %d %s", a.status, a.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Wait for the exec span and its parent (they may come in two batches).
	spans, err := rcv.Wait(ctx, func(s []otlptest.Span) bool {
		parents := map[string]bool{}
		for _, sp := range s {
			if sp.Name == "sandbox.exec" && sp.Attrs["agentcloud.sandbox"] == id {
				parents[sp.ParentID] = true
			}
		}
		for _, sp := range s {
			if parents[sp.SpanID] {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	var exec otlptest.Span
	for _, sp := range spans {
		if sp.Name == "sandbox.exec" && sp.Attrs["agentcloud.sandbox"] == id {
			exec = sp
		}
	}
	if want := "00-" + exec.TraceID + "-" + exec.SpanID + "-01"; string(a.body) != want {
		t.Errorf("the process saw TRACEPARENT %q, want its sandbox.exec span %q", a.body, want)
	}
	var parent otlptest.Span
	for _, sp := range otlptest.Trace(spans, exec.TraceID) {
		if sp.SpanID == exec.ParentID {
			parent = sp
		}
	}
	if parent.Kind != 2 || !strings.Contains(parent.Name, "Process/Start") {
		t.Errorf("sandbox.exec's parent is %+v, want the server span of the Start request", parent)
	}
}
