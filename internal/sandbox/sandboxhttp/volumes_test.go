package sandboxhttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxhttp"
	"github.com/agentcloud/agentcloud/internal/sandbox/snapshot"
	"github.com/agentcloud/agentcloud/internal/sandbox/volume"
	"github.com/agentcloud/agentcloud/internal/store"
)

// tenantAuth authenticates "alice" and "bob" by their token.
type tenantAuth struct{}

func (tenantAuth) Authenticate(r *http.Request) (httpapi.Principal, error) {
	name := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if name != "alice" && name != "bob" {
		return httpapi.Principal{}, api.Errorf(api.KindUnauthenticated, "bad token")
	}
	return httpapi.Principal{ID: "spiffe://t.test/user/" + name, Kind: "user"}, nil
}

// volumeOwnerOnly allows everything but another owner's volumes, as the
// default policy's volume-owner-only does; the rest of authorization is
// left to the daemon's tests (real Cedar: checkVolumeAuthzClass). So bob
// may restore or fork alice's things here, as a policy granting him her
// snapshots and sandboxes but not her volumes would let him.
type volumeOwnerOnly struct{}

func (volumeOwnerOnly) Authorize(_ context.Context, p httpapi.Principal, action string, res httpapi.Resource) error {
	if res.Type == sandboxhttp.TypeVolume && res.Parent != p.ID {
		return api.Errorf(api.KindForbidden, "%s may not %s Volume::%q of %s", p.ID, action, res.ID, res.Parent)
	}
	return nil
}

type volServer struct {
	url string
	m   *sandbox.Manager
	vol *volume.Store
}

func startVolumeServer(t *testing.T) *volServer {
	t.Helper()
	if err := process.Available(); err != nil {
		t.Skipf("process sandbox tier unavailable: %v", err)
	}
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	vols, err := volume.Open(filepath.Join(dir, "volumes"), volume.Limits{MaxBytes: 4 << 20, MaxPerOwner: 3})
	if err != nil {
		t.Fatal(err)
	}
	tier, err := process.New(process.Config{DataDir: dir, CgroupPool: 2})
	if err != nil {
		t.Fatal(err)
	}
	m, err := sandbox.NewManager(sandbox.ManagerConfig{Tiers: []sandbox.Tier{tier}, Dir: filepath.Join(dir, "sandboxes")})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := snapshot.Open(t.Context(), snapshot.Config{Manager: m, Store: st, Dir: filepath.Join(dir, "snapshots")})
	if err != nil {
		t.Fatal(err)
	}
	rt := httpapi.NewRouter(httpapi.Options{Auth: tenantAuth{}, Authz: volumeOwnerOnly{}, MaxBodyBytes: 1 << 20})
	sandboxhttp.New(sandboxhttp.Config{Manager: m, Tiers: []sandbox.Tier{tier}, Volumes: vols, Snapshots: snaps, Authorizer: volumeOwnerOnly{},
		BeforeCreate: func(r *http.Request, spec *sandbox.Spec) error {
			p, _ := httpapi.PrincipalFrom(r.Context())
			sandbox.Own(spec, p.ID, "", "")
			return nil
		}}).Routes(rt)
	if err := httpapi.CheckOpenAPI(rt, rt.OpenAPI("t", "v")); err != nil {
		t.Fatal(err)
	}
	s := serve(t, rt, func() {
		_ = m.Close()
		_ = tier.Close()
		st.Close()
	})
	return &volServer{url: s.URL, m: m, vol: vols}
}

// call sends body (a string is sent as is, anything else as JSON) as who
// and decodes a JSON answer into out (if not nil). It returns the status
// and the problem type, if any.
func (s *volServer) call(t *testing.T, who, method, path string, body any, out any) (int, string) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, s.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+who)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var p struct {
		Type string `json:"type"`
	}
	if resp.StatusCode >= 400 {
		_ = json.Unmarshal(raw, &p)
		return resp.StatusCode, p.Type
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return resp.StatusCode, ""
}

func (s *volServer) exec(t *testing.T, who, id, script string) (string, int) {
	t.Helper()
	req, _ := json.Marshal(api.ExecRequest{Cmd: "sh", Args: []string{"-c", script}})
	r, _ := http.NewRequest("POST", s.url+"/v1/sandboxes/"+id+"/exec", bytes.NewReader(req))
	r.Header.Set("Authorization", "Bearer "+who)
	r.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out strings.Builder
	code := -1
	dec := json.NewDecoder(resp.Body)
	for {
		var ev api.ExecEvent
		if err := dec.Decode(&ev); err != nil {
			break
		}
		out.WriteString(ev.Data)
		if ev.Type == "exit" && ev.ExitCode != nil {
			code = *ev.ExitCode
		}
	}
	return out.String(), code
}

// TestVolumeRoutesClass: the volume API and mounts through it, hostile:
// another tenant's volume names (not visible, not deletable, not
// mountable), bad names, sizes and bodies, path traversal and mounts over
// /proc or the workspace, the count and byte quotas (a volume over its
// quota pauses its sandbox and cannot be mounted), delete refused while
// mounted, two sandboxes sharing one volume.
func TestVolumeRoutesClass(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sandboxes")
	}
	s := startVolumeServer(t)
	var v api.Volume
	if code, typ := s.call(t, "alice", "POST", "/v1/volumes", api.CreateVolumeRequest{Name: "data", SizeMB: 1}, &v); code != 201 {
		t.Fatalf("create: %d %s", code, typ)
	}
	if v.Name != "data" || v.LimitBytes != 1<<20 || v.Owner != "spiffe://t.test/user/alice" {
		t.Errorf("created %+v", v)
	}
	for _, c := range []struct {
		name, method, path string
		body               any
		code               int
		typ                api.Kind
	}{
		{"duplicate", "POST", "/v1/volumes", api.CreateVolumeRequest{Name: "data"}, 409, api.KindConflict},
		{"bad name", "POST", "/v1/volumes", api.CreateVolumeRequest{Name: "../x"}, 400, api.KindInvalidID},
		{"empty name", "POST", "/v1/volumes", api.CreateVolumeRequest{}, 400, api.KindInvalidID},
		{"long name", "POST", "/v1/volumes", api.CreateVolumeRequest{Name: strings.Repeat("a", 64)}, 400, api.KindInvalidID},
		{"negative size", "POST", "/v1/volumes", api.CreateVolumeRequest{Name: "n", SizeMB: -1}, 422, api.KindValidation},
		{"size over max", "POST", "/v1/volumes", api.CreateVolumeRequest{Name: "n", SizeMB: 5}, 422, api.KindValidation},
		{"malformed body", "POST", "/v1/volumes", `{"name":`, 400, api.KindInvalidJSON},
		{"unknown field", "POST", "/v1/volumes", `{"name":"n","owner":"bob"}`, 400, api.KindInvalidJSON},
		{"oversized body", "POST", "/v1/volumes", `{"name":"` + strings.Repeat("a", 2<<20) + `"}`, 413, api.KindTooLarge},
		{"bad path id", "GET", "/v1/volumes/A..B", nil, 400, api.KindInvalidID},
		{"bob reads alice's", "GET", "/v1/volumes/data", nil, 404, api.KindNotFound},
		{"bob deletes alice's", "DELETE", "/v1/volumes/data", nil, 404, api.KindNotFound},
		{"bob mounts alice's", "POST", "/v1/sandboxes", api.CreateSandboxRequest{Volumes: []api.SandboxVolume{{Name: "data", Path: "/mnt/x"}}}, 404, api.KindNotFound},
	} {
		who := "alice"
		if strings.HasPrefix(c.name, "bob") {
			who = "bob"
		}
		code, typ := s.call(t, who, c.method, c.path, c.body, nil)
		if code != c.code || typ != string(c.typ) && !strings.HasSuffix(typ, "/"+string(c.typ)) {
			t.Errorf("%s: %d %s, want %d %s", c.name, code, typ, c.code, c.typ)
		}
	}
	var list api.VolumeList
	if s.call(t, "bob", "GET", "/v1/volumes", nil, &list); len(list.Volumes) != 0 {
		t.Errorf("bob lists %+v", list.Volumes)
	}
	// Mount paths: traversal, the workspace itself, /proc, /tmp, the same
	// volume twice.
	for _, vs := range [][]api.SandboxVolume{
		{{Name: "data", Path: "/workspace/../proc"}},
		{{Name: "data", Path: "/workspace"}},
		{{Name: "data", Path: "/proc"}},
		{{Name: "data", Path: "/tmp/x"}},
		{{Name: "data", Path: "relative"}},
		{{Name: "data", Path: "/mnt/a"}, {Name: "data", Path: "/mnt/b"}},
	} {
		code, typ := s.call(t, "alice", "POST", "/v1/sandboxes", api.CreateSandboxRequest{Volumes: vs}, nil)
		if code != 422 || !strings.HasSuffix(typ, string(api.KindValidation)) {
			t.Errorf("mount %+v: %d %s, want 422", vs, code, typ)
		}
	}

	// Two sandboxes share it: one writes, the other reads read-only.
	var rw, ro api.Sandbox
	if code, typ := s.call(t, "alice", "POST", "/v1/sandboxes", api.CreateSandboxRequest{Volumes: []api.SandboxVolume{{Name: "data", Path: "/workspace/data"}}}, &rw); code != 201 {
		t.Fatalf("create rw: %d %s", code, typ)
	}
	if code, typ := s.call(t, "alice", "POST", "/v1/sandboxes", api.CreateSandboxRequest{Volumes: []api.SandboxVolume{{Name: "data", Path: "/mnt/data", ReadOnly: true}}}, &ro); code != 201 {
		t.Fatalf("create ro: %d %s", code, typ)
	}
	if len(ro.Volumes) != 1 || !ro.Volumes[0].ReadOnly || ro.Volumes[0].Path != "/mnt/data" {
		t.Errorf("ro sandbox describes %+v", ro.Volumes)
	}
	if out, code := s.exec(t, "alice", rw.ID, "echo shared > /workspace/data/f"); code != 0 {
		t.Fatalf("write: %q %d", out, code)
	}
	if out, code := s.exec(t, "alice", ro.ID, "cat /mnt/data/f; echo x > /mnt/data/g"); code == 0 || !strings.Contains(out, "shared\n") || !strings.Contains(out, "Read-only") {
		t.Errorf("ro sandbox: %q %d", out, code)
	}
	if code, _ := s.call(t, "alice", "GET", "/v1/volumes/data", nil, &v); code != 200 || len(v.MountedBy) != 2 || v.UsedBytes <= 0 {
		t.Errorf("show: %d %+v", code, v)
	}
	if code, typ := s.call(t, "alice", "DELETE", "/v1/volumes/data", nil, nil); code != 409 {
		t.Errorf("delete while mounted: %d %s", code, typ)
	}

	// Over its byte quota: the quota check pauses the sandbox, and a new
	// sandbox cannot mount it.
	if out, code := s.exec(t, "alice", rw.ID, "head -c 2097152 /dev/urandom > /workspace/data/big"); code != 0 {
		t.Fatalf("fill: %q %d", out, code)
	}
	if paused := s.m.CheckQuotas(t.Context()); len(paused) != 2 {
		t.Errorf("quota check paused %v, want both sandboxes", paused)
	}
	var got api.Sandbox
	if s.call(t, "alice", "GET", "/v1/sandboxes/"+rw.ID, nil, &got); got.State != api.SandboxStatePaused || !strings.Contains(got.Reason, "volume data") {
		t.Errorf("over quota: %s %q", got.State, got.Reason)
	}
	if code, typ := s.call(t, "alice", "POST", "/v1/sandboxes", api.CreateSandboxRequest{Volumes: []api.SandboxVolume{{Name: "data", Path: "/mnt/data"}}}, nil); code != 507 {
		t.Errorf("mount over quota: %d %s", code, typ)
	}
	for _, id := range []string{rw.ID, ro.ID} {
		if code, typ := s.call(t, "alice", "DELETE", "/v1/sandboxes/"+id, nil, nil); code != 204 {
			t.Fatalf("delete sandbox: %d %s", code, typ)
		}
	}
	if code, typ := s.call(t, "alice", "DELETE", "/v1/volumes/data", nil, nil); code != 204 {
		t.Errorf("delete after unmount: %d %s", code, typ)
	}
	// The count quota.
	for i, n := range []string{"a", "b", "c", "d"} {
		code, _ := s.call(t, "alice", "POST", "/v1/volumes", api.CreateVolumeRequest{Name: n}, nil)
		if want := map[bool]int{true: 201, false: 507}[i < 3]; code != want {
			t.Errorf("volume %d: %d, want %d", i+1, code, want)
		}
	}
}
