package pipeline

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/ledger"
)

// previewServing returns what the agent's preview session answers.
func (e *env) previewServing(t testing.TB, agent string) string {
	t.Helper()
	name, err := e.sessions.PreviewAgent(context.Background(), agent)
	if err != nil {
		return "error: " + err.Error()
	}
	resp, err := e.sessions.Call(context.Background(), name, "prod", isolate.Request{Method: "GET", URL: "http://agents.local/"})
	if err != nil {
		return "error: " + err.Error()
	}
	return string(resp.Body)
}

// TestPreviewRunClass: a preview run validates, builds, tests and gates a
// version like a release and records it in the ledger as a preview
// (change marked preview, no provenance), then serves it to preview
// sessions only: production keeps its version through a preview, a
// preview that waits for review (a new egress host), and one that is
// rejected. A preview holds its own claim (it neither waits for nor blocks
// a release in progress); submitting the preview that serves is a
// conflict; a node without previews refuses one.
func TestPreviewRunClass(t *testing.T) {
	ctx := context.Background()
	e := openEnv(t, t.TempDir(), func(e *env, c *Config) { c.Previews = e.sessions })
	e.start(t)
	submit := func(version string, egress []string, by api.PipelinePrincipal, preview bool) api.PipelineRun {
		t.Helper()
		run, err := e.runner.Submit(ctx, Submission{Bundle: helloBundle(t, "pv", version, egress, nil), Principal: by, Preview: preview})
		if err != nil {
			t.Fatal(err)
		}
		return e.wait(t, run.ID)
	}
	if run := submit("v1", nil, alice, false); run.State != api.RunPassed {
		t.Fatalf("release v1: %s %s", run.State, run.Error)
	}
	run := submit("v2", nil, alice, true)
	if run.State != api.RunPassed || run.Kind != api.RunKindPreview {
		t.Fatalf("preview v2: %s %q %s", run.State, run.Kind, run.Error)
	}
	if got := strings.Join(keysOf(stageStates(run)), ","); got != "build,policy,preview,record,review,test,validate" {
		t.Fatalf("preview stages: %s", got)
	}
	if e.serving(t, "pv") != "hello v1" || e.previewServing(t, "pv") != "hello v2" {
		t.Fatalf("production %q, preview %q", e.serving(t, "pv"), e.previewServing(t, "pv"))
	}
	if _, ok := run.Ledger[EntryProvenance]; ok || run.Provenance != "" {
		t.Fatalf("a preview was signed: %+v", run.Ledger)
	}
	h, err := ledger.ParseHash(run.Ledger[EntryChange].Hash)
	if err != nil {
		t.Fatal(err)
	}
	trail, err := e.ledger.Why(ctx, h)
	if err != nil || len(trail.Records) == 0 || trail.Records[0].Entry.Change == nil || !trail.Records[0].Entry.Change.Preview {
		t.Fatalf("the ledger's change entry is not a preview: %+v %v", trail, err)
	}

	// The same preview again is a conflict; a new capability waits for
	// review, with production and the old preview serving; a rejection
	// leaves both.
	if _, err := e.runner.Submit(ctx, Submission{Bundle: helloBundle(t, "pv", "v2", nil, nil), Principal: alice, Preview: true}); !isKind(err, api.KindConflict) {
		t.Fatalf("the serving preview again: %v", err)
	}
	waiting := submit("v3", []string{"api.example.com"}, alice, true)
	if waiting.State != api.RunWaiting {
		t.Fatalf("a preview adding a host: %s %s", waiting.State, waiting.Error)
	}
	// A release is not blocked by the waiting preview.
	if run := submit("v4", nil, alice, false); run.State != api.RunPassed {
		t.Fatalf("a release beside a waiting preview: %s %s", run.State, run.Error)
	}
	if e.serving(t, "pv") != "hello v4" || e.previewServing(t, "pv") != "hello v2" {
		t.Fatalf("production %q, preview %q", e.serving(t, "pv"), e.previewServing(t, "pv"))
	}
	if _, err := e.runner.Approve(ctx, waiting.ID, alice, ""); !isKind(err, api.KindForbidden) {
		t.Fatalf("the author approving a preview: %v", err)
	}
	if _, err := e.runner.Reject(ctx, waiting.ID, bob, "no"); err != nil {
		t.Fatal(err)
	}
	if run := e.wait(t, waiting.ID); run.State != api.RunFailed {
		t.Fatalf("rejected preview: %s", run.State)
	}
	if e.serving(t, "pv") != "hello v4" || e.previewServing(t, "pv") != "hello v2" {
		t.Fatalf("after the rejection: production %q, preview %q", e.serving(t, "pv"), e.previewServing(t, "pv"))
	}

	// A node without previews refuses one.
	e2 := openEnv(t, t.TempDir())
	e2.start(t)
	if _, err := e2.runner.Submit(ctx, Submission{Bundle: helloBundle(t, "pv", "v1", nil, nil), Principal: alice, Preview: true}); !isKind(err, api.KindUnavailable) {
		t.Fatalf("a preview on a node without previews: %v", err)
	}
}

func keysOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
