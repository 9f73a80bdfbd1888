package sandboxhttp_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
)

// TestRestoredVolumesClass: every way of making a sandbox from another
// mounts the volumes the source had, at the same paths and read-only as
// they were, after the same checks as a create: a snapshot restore and a
// fork by the owner get both volumes (files shared, the read-only one
// refusing writes); another tenant allowed the snapshot and the sandbox
// but not the volumes is refused on restore and fork with a 403 naming the
// volume, and his own volume of the same name is never mounted instead; a
// volume deleted since the snapshot makes the restore a 404 naming it.
// None of the refusals leaves a sandbox behind.
func TestRestoredVolumesClass(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sandboxes")
	}
	s := startVolumeServer(t)
	for _, who := range []string{"alice", "bob"} {
		for _, n := range []string{"data", "ref"} {
			if code, typ := s.call(t, who, "POST", "/v1/volumes", api.CreateVolumeRequest{Name: n, SizeMB: 1}, nil); code != 201 {
				t.Fatalf("%s creates %s: %d %s", who, n, code, typ)
			}
		}
	}
	mounts := []api.SandboxVolume{{Name: "data", Path: "/workspace/data"}, {Name: "ref", Path: "/mnt/ref", ReadOnly: true}}
	var src api.Sandbox
	if code, typ := s.call(t, "alice", "POST", "/v1/sandboxes", api.CreateSandboxRequest{Volumes: mounts}, &src); code != 201 {
		t.Fatalf("create: %d %s", code, typ)
	}
	if out, code := s.exec(t, "alice", src.ID, "echo alice > /workspace/data/f && echo ws > /workspace/w"); code != 0 {
		t.Fatalf("write: %q %d", out, code)
	}
	var snap api.Snapshot
	if code, typ := s.call(t, "alice", "POST", "/v1/sandboxes/"+src.ID+"/snapshots", nil, &snap); code != 201 {
		t.Fatalf("snapshot: %d %s", code, typ)
	}
	sameMounts := func(what string, got api.Sandbox) {
		t.Helper()
		if len(got.Volumes) != len(mounts) {
			t.Fatalf("%s mounts %+v, want %+v", what, got.Volumes, mounts)
		}
		for i, v := range got.Volumes {
			if v != mounts[i] {
				t.Errorf("%s mount %d: %+v, want %+v", what, i, v, mounts[i])
			}
		}
		// stdout and stderr come through separate pipes whose order is not
		// kept: the shell sends its stderr to stdout so the order is fixed.
		out, code := s.exec(t, "alice", got.ID, "exec 2>&1; cat /workspace/w /workspace/data/f; echo more >> /workspace/data/f; echo x > /mnt/ref/x")
		if code == 0 || !strings.HasPrefix(out, "ws\n") || !strings.Contains(out, "alice\n") || !strings.Contains(out, "Read-only") {
			t.Errorf("%s: %q %d, want the files, the shared volume and a read-only /mnt/ref", what, out, code)
		}
	}
	var restored api.Sandbox
	if code, typ := s.call(t, "alice", "POST", "/v1/snapshots/"+snap.ID+"/restore", nil, &restored); code != 201 {
		t.Fatalf("restore: %d %s", code, typ)
	}
	sameMounts("restored", restored)
	var forks api.SandboxList
	if code, typ := s.call(t, "alice", "POST", "/v1/sandboxes/"+src.ID+"/fork", api.ForkSandboxRequest{Count: 1}, &forks); code != 201 || len(forks.Sandboxes) != 1 {
		t.Fatalf("fork: %d %s %+v", code, typ, forks)
	}
	sameMounts("fork", forks.Sandboxes[0])

	// Bob may have alice's snapshot and sandbox (volumeOwnerOnly), not her
	// volumes: refused, naming the volume, nothing made, his own "data"
	// never mounted in her place.
	before := len(s.m.List())
	for _, c := range []struct {
		name, path string
		body       any
	}{
		{"restore", "/v1/snapshots/" + snap.ID + "/restore", nil},
		{"fork", "/v1/sandboxes/" + src.ID + "/fork", api.ForkSandboxRequest{Count: 1}},
	} {
		if detail := s.problemDetail(t, "bob", "POST", c.path, c.body, 403); !strings.Contains(detail, `"data"`) {
			t.Errorf("bob's %s of alice's: %q does not name the volume", c.name, detail)
		}
	}
	if after := len(s.m.List()); after != before {
		t.Errorf("refused restores and forks left %d sandboxes", after-before)
	}

	// A volume deleted since the snapshot: 404 naming it, nothing made.
	for _, id := range []string{restored.ID, forks.Sandboxes[0].ID, src.ID} {
		if code, typ := s.call(t, "alice", "DELETE", "/v1/sandboxes/"+id, nil, nil); code != 204 {
			t.Fatalf("delete sandbox: %d %s", code, typ)
		}
	}
	if code, typ := s.call(t, "alice", "DELETE", "/v1/volumes/ref", nil, nil); code != 204 {
		t.Fatalf("delete volume: %d %s", code, typ)
	}
	before = len(s.m.List())
	detail := s.problemDetail(t, "alice", "POST", "/v1/snapshots/"+snap.ID+"/restore", nil, 404)
	if !strings.Contains(detail, "ref") {
		t.Errorf("restore without its volume: %q does not name the volume", detail)
	}
	if after := len(s.m.List()); after != before {
		t.Errorf("a refused restore left %d sandboxes", after-before)
	}
}

// problemDetail sends body as who and returns the detail of the problem
// answered, which must have status code.
func (s *volServer) problemDetail(t *testing.T, who, method, path string, body any, code int) string {
	t.Helper()
	var rd io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, s.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+who)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p api.Problem
	_ = json.NewDecoder(resp.Body).Decode(&p)
	if resp.StatusCode != code {
		t.Errorf("%s %s as %s: %d %s %q, want %d", method, path, who, resp.StatusCode, p.Type, p.Detail, code)
	}
	return p.Detail
}
