package session

import (
	"context"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
)

// previewJS answers "TAG N", N counting the session's requests in state.
func previewJS(tag string) string {
	return `export default { async fetch(request, env) {
  const n = ((await env.state.get("n")) || 0) + 1;
  await env.state.put("n", n);
  return new Response("` + tag + ` " + n);
} };`
}

// storeVersion stores code as a version of agent without serving it.
func storeVersion(t *testing.T, m *Manager, agent, code string) string {
	t.Helper()
	b, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(`{"name":"` + agent + `","entry":"agent.js"}`), "agent.js": []byte(code)})
	if err != nil {
		t.Fatal(err)
	}
	v, err := m.StoreVersion(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return v.Digest
}

// TestPreviewNamespaceClass: an agent's preview runs its own version with
// sessions and state of its own; production's version, sessions and state
// are untouched by setting, replacing, restarting and ending it; the
// preview is reached only through its internal name (which no agent name
// can be), and not by a principal other than the agent's owner; deleting
// the agent deletes its preview.
func TestPreviewNamespaceClass(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m := openManager(t, dir)
	deployAs(t, m, "alice", "pv", previewJS("v1"))
	v1 := mustAgent(t, m, "pv").Current
	if got := mustCall(t, m, "pv", "s", "/"); got != "v1 1" {
		t.Fatalf("production: %q", got)
	}
	if _, err := m.PreviewAgent(ctx, "pv"); !api.IsKind(err, api.KindNotFound) {
		t.Fatalf("no preview yet: %v", err)
	}
	v2 := storeVersion(t, m, "pv", previewJS("v2"))
	if err := m.SetPreview(ctx, "pv", v2, "mallory"); err != nil {
		t.Fatal(err)
	}
	name, err := m.PreviewAgent(ctx, "pv")
	if err != nil || name != "pv.preview" {
		t.Fatalf("PreviewAgent: %q %v", name, err)
	}
	for _, want := range []string{"v2 1", "v2 2"} {
		if got := mustCall(t, m, name, "s", "/"); got != want {
			t.Fatalf("preview: %q, want %q", got, want)
		}
	}
	if got := mustCall(t, m, "pv", "s", "/"); got != "v1 2" {
		t.Fatalf("production after the preview: %q", got)
	}
	if info, _, _ := m.AgentInfo(ctx, name); info.Owner != "alice" {
		t.Fatalf("the preview is owned by %q, not the agent's owner", info.Owner) // not by whoever ran it
	}
	// A new preview version replaces the live preview session's version;
	// the preview's state goes on, production's version does not move.
	v3 := storeVersion(t, m, "pv", previewJS("v3"))
	if err := m.SetPreview(ctx, "pv", v3, "alice"); err != nil {
		t.Fatal(err)
	}
	if got := mustCall(t, m, name, "s", "/"); got != "v3 3" {
		t.Fatalf("preview after a new version: %q", got)
	}
	if cur := mustAgent(t, m, "pv").Current; cur != v1 {
		t.Fatalf("production moved to %s", cur)
	}
	list, err := m.Agents(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "pv" {
		t.Fatalf("Agents lists the preview: %+v %v", list, err)
	}
	if d, ok, err := m.PreviewVersion(ctx, "pv"); err != nil || !ok || d != v3 {
		t.Fatalf("PreviewVersion: %s %v %v", d, ok, err)
	}

	// The name class: only "AGENT.preview" of a valid agent is an address.
	for _, bad := range []string{".preview", "PV.preview", "pv.Preview", "pv.previe", "pv.preview.preview", "pv..preview", "1pv.preview"} {
		if err := CheckAddr(bad, "s"); err == nil {
			t.Errorf("CheckAddr(%q) accepted", bad)
		}
		if _, err := m.PreviewAgent(ctx, bad); !api.IsKind(err, api.KindInvalidID) {
			t.Errorf("PreviewAgent(%q): %v", bad, err)
		}
	}
	if _, err := m.PreviewAgent(ctx, "nobody"); !api.IsKind(err, api.KindNotFound) {
		t.Fatalf("PreviewAgent of an agent without one: %v", err)
	}
	if err := m.SetPreview(ctx, "pv", "sha256:"+strings.Repeat("0", 64), "alice"); !api.IsKind(err, api.KindNotFound) {
		t.Fatalf("SetPreview of a version not stored: %v", err)
	}

	// Durable: a restart finds the preview and both states as they were.
	_ = m.Close(ctx)
	_ = m.cfg.Store.Close()
	m = openManager(t, dir)
	if got := mustCall(t, m, name, "s", "/"); got != "v3 4" {
		t.Fatalf("preview after a restart: %q", got)
	}
	if got := mustCall(t, m, "pv", "s", "/"); got != "v1 3" {
		t.Fatalf("production after a restart: %q", got)
	}

	// Ending the preview removes its sessions, not production's.
	if err := m.EndPreview(ctx, "pv"); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, m, name); len(left) > 0 {
		t.Fatalf("the ended preview left %v", left)
	}
	if _, err := m.PreviewAgent(ctx, "pv"); !api.IsKind(err, api.KindNotFound) {
		t.Fatalf("PreviewAgent after the end: %v", err)
	}
	if err := m.EndPreview(ctx, "pv"); !api.IsKind(err, api.KindNotFound) {
		t.Fatalf("a second EndPreview: %v", err)
	}
	if got := mustCall(t, m, "pv", "s", "/"); got != "v1 4" {
		t.Fatalf("production after the preview ended: %q", got)
	}

	// A preview of a name nobody deployed is its runner's; once another
	// principal deploys the name, the preview is not reachable through it.
	solo := storeVersion(t, m, "solo", previewJS("solo"))
	if err := m.SetPreview(ctx, "solo", solo, "alice"); err != nil {
		t.Fatal(err)
	}
	if info, ok, _ := m.AgentInfo(ctx, "solo"); ok || info.Owner != "alice" {
		t.Fatalf("AgentInfo of a previewed name: %+v %v", info, ok)
	}
	deployAs(t, m, "bob", "solo", previewJS("bob"))
	if _, err := m.PreviewAgent(ctx, "solo"); !api.IsKind(err, api.KindNotFound) {
		t.Fatalf("another owner's agent reaches the old preview: %v", err)
	}

	// Deleting the agent deletes its preview.
	if err := m.SetPreview(ctx, "pv", v2, "alice"); err != nil {
		t.Fatal(err)
	}
	mustCall(t, m, name, "s", "/")
	if err := m.DeleteAgent(ctx, "pv"); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, m, name); len(left) > 0 {
		t.Fatalf("the deleted agent's preview left %v", left)
	}
	if _, err := m.PreviewAgent(ctx, "pv"); !api.IsKind(err, api.KindNotFound) {
		t.Fatalf("PreviewAgent after the agent was deleted: %v", err)
	}
}

func mustAgent(t *testing.T, m *Manager, name string) api.Agent {
	t.Helper()
	a, err := m.Agent(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
