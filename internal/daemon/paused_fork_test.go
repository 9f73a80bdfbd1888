package daemon_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/sandbox/gvisor"
)

// TestPausedForkCopyE2BClass: paused copies of a gVisor sandbox's fork
// (made through /v1) are reachable through the E2B-compatible API like
// any paused sandbox: get answers them paused, connect resumes one (its
// files there), kill deletes one, and another owner's key finds neither.
func TestPausedForkCopyE2BClass(t *testing.T) {
	if err := gvisor.Available(""); err != nil {
		t.Skipf("gvisor sandbox tier unavailable: %v", err)
	}
	if testing.Short() {
		t.Skip("starts gVisor sandboxes (slow); skipped with -short")
	}
	d, admin := startDaemon(t)
	ctx := t.Context()
	alice := userClient(t, d, admin, "user:alice")
	base := "http://" + d.Addr() + "/e2b"
	ka := map[string]string{"X-API-Key": e2bKey(t, d, admin, "user:alice")}
	kb := map[string]string{"X-API-Key": e2bKey(t, d, admin, "user:bob")}
	src, err := alice.CreateSandbox(ctx, api.CreateSandboxRequest{Tier: api.SandboxTierGVisor, TimeoutS: 300})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.WriteFile(ctx, src.ID, "seed.txt", strings.NewReader("seed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	forks, err := alice.ForkSandboxWith(ctx, src.ID, api.ForkSandboxRequest{Count: 2, Paused: true})
	if err != nil || len(forks) != 2 {
		t.Fatalf("paused fork: %d %v", len(forks), err)
	}
	for _, f := range forks {
		if f.State != api.SandboxStatePaused {
			t.Fatalf("copy %+v", f)
		}
		if a := doE2B(t, base, e2bCall{name: "bob's get", method: "GET", path: "/sandboxes/" + f.ID, headers: kb}); a.status != http.StatusNotFound {
			t.Errorf("bob gets alice's paused copy: %d %s", a.status, a.body)
		}
		a := doE2B(t, base, e2bCall{name: "get", method: "GET", path: "/sandboxes/" + f.ID, headers: ka})
		var got struct{ State string }
		if a.status != http.StatusOK || json.Unmarshal(a.body, &got) != nil || got.State != "paused" {
			t.Fatalf("E2B get of a paused copy: %d %s", a.status, a.body)
		}
	}
	if a := doE2B(t, base, e2bCall{name: "connect", method: "POST", path: "/sandboxes/" + forks[0].ID + "/connect",
		body: []byte(`{"timeout":60}`), ctype: "application/json", headers: ka}); a.status != http.StatusCreated {
		t.Fatalf("E2B connect of a paused copy: %d %s", a.status, a.body)
	}
	var out bytes.Buffer
	if code, err := alice.Exec(ctx, forks[0].ID, api.ExecRequest{Cmd: "cat", Args: []string{"seed.txt"}}, &out, io.Discard); err != nil || code != 0 || out.String() != "seed\n" {
		t.Fatalf("the connected copy: %q %d %v", out.String(), code, err)
	}
	if a := doE2B(t, base, e2bCall{name: "kill", method: "DELETE", path: "/sandboxes/" + forks[1].ID, headers: ka}); a.status != http.StatusNoContent {
		t.Fatalf("E2B kill of a paused copy: %d %s", a.status, a.body)
	}
	if _, err := alice.Sandbox(ctx, forks[1].ID); !api.IsKind(err, api.KindNotFound) && !api.IsKind(err, api.KindForbidden) {
		t.Fatalf("a killed copy: %v", err)
	}
	for _, id := range []string{forks[0].ID, src.ID} {
		if err := alice.DeleteSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}
