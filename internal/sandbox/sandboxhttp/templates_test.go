package sandboxhttp_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/image"
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxhttp"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxtest"
)

func startTemplateServer(t *testing.T) *testServer {
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
	st, err := image.Open(filepath.Join(dir, "templates"), image.Limits{MaxBytes: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	tier, err := process.New(process.Config{DataDir: dir, CgroupPool: 2, Images: st})
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
	rt := httpapi.NewRouter(httpapi.Options{Auth: tokenAuth{}, MaxBodyBytes: 256 << 20})
	sandboxhttp.New(sandboxhttp.Config{Manager: m, Tiers: []sandbox.Tier{tier}, Images: st}).Routes(rt)
	if err := httpapi.CheckOpenAPI(rt, rt.OpenAPI("t", "v")); err != nil {
		t.Fatal(err)
	}
	s := serve(t, rt, func() {
		_ = m.Close()
		_ = tier.Close()
	})
	s.manager = m
	return s
}

// The template routes: a directory uploaded as a layer becomes a template
// sandboxes run on; delete is refused while a sandbox uses it; bad
// requests and hostile archives are 4xx problem+json with stable kinds.
func TestTemplateRoutesClass(t *testing.T) {
	s := startTemplateServer(t)
	ctx := t.Context()
	rootfs := t.TempDir()
	sandboxtest.MiniRootfs(t, rootfs)
	tpl, err := s.client.CreateTemplateFromDir(ctx, "mini", rootfs, client.Build{})
	if err != nil {
		t.Fatal(err)
	}
	if tpl.Name != "mini" || tpl.Source != "tar" || len(tpl.Layers) != 1 || tpl.Bytes == 0 {
		t.Fatalf("created %+v", tpl)
	}
	list, err := s.client.Templates(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "host" || list[1].Name != "mini" {
		t.Fatalf("list %+v %v", list, err)
	}
	sb, err := s.client.CreateSandbox(ctx, api.CreateSandboxRequest{Template: "mini"})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code, err := s.client.Exec(ctx, sb.ID, api.ExecRequest{Cmd: "/bin/sh", Args: []string{"-c", "cat /etc/os-release; echo x > /tmp/f && cat /tmp/f"}}, &out, &out)
	if err != nil || code != 0 || !strings.Contains(out.String(), "agentcloud-test-image") {
		t.Fatalf("exec in the image: %d %q %v", code, out.String(), err)
	}
	if err := s.client.DeleteTemplate(ctx, "mini"); !api.IsKind(err, api.KindConflict) {
		t.Fatalf("delete in use: %v", err)
	}

	var hostile bytes.Buffer
	tw := tar.NewWriter(&hostile)
	tw.WriteHeader(&tar.Header{Name: "../../escape", Typeflag: tar.TypeReg, Mode: 0o644})
	tw.Close()
	var dev bytes.Buffer
	tw = tar.NewWriter(&dev)
	tw.WriteHeader(&tar.Header{Name: "dev/mem", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 1})
	tw.Close()
	cases := []struct {
		name, method, path, body string
		kind                     api.Kind
	}{
		{"no name", "POST", "/v1/templates?source=tar", "", api.KindInvalidQuery},
		{"bad name", "POST", "/v1/templates?name=Bad_Name&source=tar", "", api.KindInvalidID},
		{"long name", "POST", "/v1/templates?name=" + strings.Repeat("a", 64) + "&source=tar", "", api.KindInvalidID},
		{"reserved name", "POST", "/v1/templates?name=host&source=tar", "", api.KindValidation},
		{"bad source", "POST", "/v1/templates?name=x&source=zip", "", api.KindValidation},
		{"duplicate", "POST", "/v1/templates?name=mini&source=tar", hostile.String(), api.KindConflict},
		{"traversal", "POST", "/v1/templates?name=x&source=tar", hostile.String(), api.KindInvalidImage},
		{"device", "POST", "/v1/templates?name=x&source=tar", dev.String(), api.KindInvalidImage},
		{"garbage layer", "POST", "/v1/templates?name=x&source=tar", "not a tar at all, just words", api.KindInvalidImage},
		{"garbage oci", "POST", "/v1/templates?name=x&source=oci", "not a tar at all, just words", api.KindInvalidImage},
		{"empty oci", "POST", "/v1/templates?name=x&source=oci", "", api.KindInvalidImage},
		{"delete unknown", "DELETE", "/v1/templates/nope", "", api.KindNotFound},
		{"delete bad id", "DELETE", "/v1/templates/Bad_Name", "", api.KindInvalidID},
		{"sandbox of unknown template", "POST", "/v1/sandboxes", `{"template":"nope"}`, api.KindValidation},
		{"empty build step", "POST", "/v1/templates?name=x&source=tar&run=true&run=", "", api.KindValidation},
		{"too many build steps", "POST", "/v1/templates?name=x&source=tar" + strings.Repeat("&run=true", image.MaxSteps+1), "", api.KindValidation},
		{"long build step", "POST", "/v1/templates?name=x&source=tar&run=" + strings.Repeat("x", image.MaxStepBytes+1), "", api.KindValidation},
		{"NUL in build step", "POST", "/v1/templates?name=x&source=tar&run=a%00b", "", api.KindValidation},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, s.URL+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+testToken)
			if tc.method == "POST" && strings.HasPrefix(tc.path, "/v1/templates") {
				req.Header.Set("Content-Type", "application/x-tar")
			} else if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var p api.Problem
			if err := json.Unmarshal(b, &p); err != nil || resp.Header.Get("Content-Type") != api.ProblemContentType {
				t.Fatalf("status %d, not problem+json: %s", resp.StatusCode, b)
			}
			if p.Kind() != tc.kind || resp.StatusCode != tc.kind.Status() || p.Detail == "" {
				t.Fatalf("want %s (%d), got %d %s", tc.kind, tc.kind.Status(), resp.StatusCode, b)
			}
		})
	}
	if list, _ := s.client.Templates(ctx); len(list) != 2 {
		t.Fatalf("refused creates left templates: %+v", list)
	}
	if err := s.client.DeleteSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.client.DeleteTemplate(ctx, "mini"); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.client.Templates(ctx); len(list) != 1 {
		t.Fatalf("after delete: %+v", list)
	}
}

// Build steps through the API: the steps' writes (a file under /usr, a
// removed base file) are in the new template and a sandbox of it runs as
// uid 1000; the first failing step answers 422 template-build-failed
// naming it, with its output, and leaves no template and no sandbox; a
// sandbox create cannot ask for build mode.
func TestTemplateBuildRoute(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sandboxes")
	}
	s := startTemplateServer(t)
	ctx := t.Context()
	rootfs := t.TempDir()
	sandboxtest.MiniRootfs(t, rootfs)
	if err := os.MkdirAll(filepath.Join(rootfs, "usr"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc", "drop"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tpl, err := s.client.CreateTemplateFromDir(ctx, "built", rootfs, client.Steps("echo hi > /usr/added", "rm /etc/drop"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tpl.Layers) != 2 {
		t.Fatalf("built %+v", tpl)
	}
	// "build": true in a create request is not a field of the API: the
	// sandbox (if the request is taken at all) runs as the sandbox user.
	resp, err := s.client.Raw(ctx, "POST", "/v1/sandboxes", strings.NewReader(`{"template":"built","build":true,"Build":true}`), "application/json")
	if err == nil {
		var sb api.Sandbox
		_ = json.NewDecoder(resp.Body).Decode(&sb)
		resp.Body.Close()
		var out bytes.Buffer
		code, err := s.client.Exec(ctx, sb.ID, api.ExecRequest{Cmd: "/bin/sh", Args: []string{"-c", "cat /usr/added; test -e /etc/drop || echo gone; id -u; touch /usr/x 2>/dev/null || echo denied"}}, &out, &out)
		if err != nil || code != 0 || out.String() != "hi\ngone\n1000\ndenied\n" {
			t.Fatalf("sandbox on the built template: %d %q %v", code, out.String(), err)
		}
		if err := s.client.DeleteSandbox(ctx, sb.ID); err != nil {
			t.Fatal(err)
		}
	} else if !api.IsKind(err, api.KindInvalidJSON) && !api.IsKind(err, api.KindValidation) {
		t.Fatalf("create with build: %v", err)
	}

	_, err = s.client.CreateTemplateFromDir(ctx, "bad", rootfs, client.Steps("true", "echo broken >&2; exit 3"))
	var p *api.Problem
	if !errors.As(err, &p) || p.Kind() != api.KindBuildFailed || p.Status != 422 || p.Field != "run[1]" || !strings.Contains(p.Detail, "broken") || !strings.Contains(p.Detail, "code 3") {
		t.Fatalf("failing step: %v", err)
	}
	if list, _ := s.client.Templates(ctx); len(list) != 2 {
		t.Fatalf("templates after a failed build: %+v", list)
	}
	if n := len(s.manager.List()); n != 0 {
		t.Fatalf("%d sandboxes left", n)
	}

	// A build's egress list and tier: refused before anything is made when
	// there are no steps to use them, when a pattern does not parse, past
	// the limit a sandbox create has, or for a tier the node does not run.
	many := make([]string, 65)
	for i := range many {
		many[i] = fmt.Sprintf("h%d.example.com", i)
	}
	for _, c := range []struct {
		b     client.Build
		field string
	}{
		{client.Build{Egress: []string{"pypi.org"}}, "egress"},
		{client.Build{Run: []string{"true"}, Egress: []string{"pypi.org", "bad host"}}, "egress[1]"},
		{client.Build{Run: []string{"true"}, Egress: []string{"a.example.com,b.example.com"}}, "egress[0]"},
		{client.Build{Run: []string{"true"}, Egress: []string{""}}, "egress[0]"},
		{client.Build{Run: []string{"true"}, Egress: many}, "egress"},
		{client.Build{Tier: "process"}, "tier"},
		{client.Build{Run: []string{"true"}, Tier: "vm"}, "tier"},
		{client.Build{Run: []string{"true"}, Tier: "gvisor"}, "tier"}, // not on this server
	} {
		_, err := s.client.CreateTemplateFromDir(ctx, "egress", rootfs, c.b)
		if !errors.As(err, &p) || p.Status != 422 || p.Kind() != api.KindValidation || p.Field != c.field {
			t.Fatalf("build %+v: want 422 on %s, got %v", c.b, c.field, err)
		}
	}
	if list, _ := s.client.Templates(ctx); len(list) != 2 {
		t.Fatalf("templates after refused builds: %+v", list)
	}
}
