package daemon_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/daemon"
)

// checkVolumeAuthzClass runs on TestTemplateRoutesAuthzClass's daemon (one
// daemon start for both): with the real Cedar policy set, two users each
// own a volume named "data" and each sandbox sees its owner's files only;
// neither can read or delete the other's; a forbid policy on volume.mount
// refuses the mount at sandbox create (403), and the CLI lists and shows
// volumes.
func checkVolumeAuthzClass(t *testing.T, d *daemon.Daemon, admin *client.Client, cliRun func(...string) (string, error)) {
	ctx := context.Background()
	alice, bob := userClient(t, d, admin, "user:alice"), userClient(t, d, admin, "user:bob")
	for _, c := range []*client.Client{alice, bob} {
		if _, err := c.CreateVolume(ctx, "data", 1); err != nil {
			t.Fatalf("create volume: %v", err)
		}
	}
	run := func(c *client.Client, id, script string) string {
		t.Helper()
		var out bytes.Buffer
		if code, err := c.Exec(ctx, id, api.ExecRequest{Cmd: "sh", Args: []string{"-c", script}}, &out, &out); err != nil || code != 0 {
			t.Fatalf("%s: %d %v %q", script, code, err, out.String())
		}
		return out.String()
	}
	mount := []api.SandboxVolume{{Name: "data", Path: "/workspace/data"}}
	sa, err := alice.CreateSandbox(ctx, api.CreateSandboxRequest{Volumes: mount})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := bob.CreateSandbox(ctx, api.CreateSandboxRequest{Volumes: mount})
	if err != nil {
		t.Fatal(err)
	}
	run(alice, sa.ID, "echo alice > /workspace/data/who")
	checkRestoredVolumesAuthz(t, admin, alice, bob, sa.ID, run)
	// The E2B fork has no volume check to make: it refuses such a sandbox.
	if a := doE2B(t, "http://"+d.Addr()+"/e2b", e2bCall{name: "fork", method: "POST", path: "/sandboxes/" + sa.ID + "/fork",
		ctype: "application/json", body: []byte(`{}`), headers: map[string]string{"X-API-Key": e2bKey(t, d, admin, "user:alice")}}); a.status != http.StatusNotImplemented || !strings.Contains(string(a.body), "volumes") {
		t.Errorf("e2b fork of a sandbox with volumes: %d %s", a.status, a.body)
	}
	if got := run(bob, sb.ID, "ls -A /workspace/data"); got != "" {
		t.Errorf("bob's volume holds %q", got)
	}
	if v, err := bob.Volume(ctx, "data"); err != nil || v.UsedBytes != 4096 && v.UsedBytes != 0 || len(v.MountedBy) != 1 || v.MountedBy[0] != sb.ID {
		t.Errorf("bob's volume: %+v %v", v, err)
	}
	if err := bob.DeleteVolume(ctx, "data"); !api.IsKind(err, api.KindConflict) {
		t.Errorf("bob deletes his mounted volume: %v", err)
	}
	if _, err := admin.ApplyPolicies(ctx, `@id("bob-no-volume-mount") forbid (principal == User::"bob", action == Action::"volume.mount", resource);`); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.CreateSandbox(ctx, api.CreateSandboxRequest{Volumes: mount}); !api.IsKind(err, api.KindForbidden) ||
		!strings.Contains(err.Error(), "bob-no-volume-mount") {
		t.Errorf("mount under a forbid: %v", err)
	}
	if _, err := alice.CreateSandbox(ctx, api.CreateSandboxRequest{Volumes: []api.SandboxVolume{{Name: "data", Path: "/proc"}}}); !api.IsKind(err, api.KindValidation) {
		t.Errorf("mount over /proc: %v", err)
	}
	if _, err := admin.ApplyPolicies(ctx, ``); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{sa.ID, sb.ID} {
		if err := admin.DeleteSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := bob.DeleteVolume(ctx, "data"); err != nil {
		t.Errorf("bob deletes his volume: %v", err)
	}
	if v, err := alice.Volume(ctx, "data"); err != nil || v.UsedBytes == 0 {
		t.Errorf("alice's volume after bob's delete: %+v %v", v, err)
	}
	if out, err := cliRun("volume", "create", "cache", "--size-mb", "2"); err != nil || !strings.Contains(out, "volume cache: 2.0 MiB") {
		t.Errorf("volume create: %q %v", out, err)
	}
	if out, err := cliRun("volume", "list"); err != nil || !strings.Contains(out, "cache") || strings.Contains(out, "data") {
		t.Errorf("volume list (admin's own only): %q %v", out, err)
	}
	if _, err := cliRun("volume", "rm", "cache"); err != nil {
		t.Errorf("volume rm: %v", err)
	}
	if _, err := cliRun("sandbox", "create", "--volume", "nocolon"); err == nil || !strings.Contains(err.Error(), "NAME:PATH") {
		t.Errorf("bad --volume: %v", err)
	}
}

// checkRestoredVolumesAuthz (real Cedar): a restore and a fork mount the
// source's volumes only if the caller may mount them. Bob, granted
// alice's snapshots and sandboxes by a policy but not her volumes
// (volume-owner-only), is refused naming the volume, with nothing made;
// alice's restore mounts her volume again.
func checkRestoredVolumesAuthz(t *testing.T, admin, alice, bob *client.Client, src string, run func(*client.Client, string, string) string) {
	ctx := context.Background()
	snap, err := alice.SnapshotSandbox(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	// The snapshot names the volumes a restore mounts again (not their files).
	if got, err := alice.Snapshot(ctx, snap.ID); err != nil || len(snap.Volumes) != 1 || snap.Volumes[0].Name != "data" ||
		snap.Volumes[0].Path != "/workspace/data" || len(got.Volumes) != 1 || got.Volumes[0] != snap.Volumes[0] {
		t.Errorf("snapshot volumes: taken %+v, shown %+v (%v)", snap.Volumes, got, err)
	}
	if _, err := admin.ApplyPolicies(ctx, `@id("bob-has-alice-snapshots")
permit (principal == User::"bob", action in [Action::"sandbox.create", Action::"sandbox.read"], resource is Snapshot);
@id("bob-manages-sandboxes")
permit (principal == User::"bob", action, resource is Sandbox);`); err != nil {
		t.Fatal(err)
	}
	before, _ := admin.Sandboxes(ctx)
	_, err = bob.RestoreSnapshot(ctx, snap.ID)
	if !api.IsKind(err, api.KindForbidden) || !strings.Contains(err.Error(), "volume.mount Volume::data") {
		t.Errorf("bob restores alice's snapshot with her volume: %v", err)
	}
	_, err = bob.ForkSandbox(ctx, src, 1)
	if !api.IsKind(err, api.KindForbidden) || !strings.Contains(err.Error(), "volume.mount Volume::data") {
		t.Errorf("bob forks alice's sandbox with her volume: %v", err)
	}
	if after, _ := admin.Sandboxes(ctx); len(after) != len(before) {
		t.Errorf("refused restore and fork left sandboxes: %d before, %d after", len(before), len(after))
	}
	if _, err := admin.ApplyPolicies(ctx, ``); err != nil {
		t.Fatal(err)
	}
	r, err := alice.RestoreSnapshot(ctx, snap.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Volumes) != 1 || r.Volumes[0].Name != "data" || run(alice, r.ID, "cat /workspace/data/who") != "alice\n" {
		t.Errorf("alice's restore: volumes %+v", r.Volumes)
	}
	if err := alice.DeleteSandbox(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if err := alice.DeleteSnapshot(ctx, snap.ID); err != nil {
		t.Fatal(err)
	}
}
