package daemon_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/cli"
	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/daemon"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxtest"
)

// TestTemplateRoutesAuthzClass: on a real daemon, an administrator makes
// an image template with the CLI (--from-dir) and runs a sandbox on it; a
// plain user may list templates but gets 403 creating or deleting one
// (Cedar template.manage); delete is 409 while a sandbox uses the
// template, and the CLI removes it afterwards. Build steps reach only the
// hosts their --egress names (checkBuildEgressClass, same daemon).
func TestTemplateRoutesAuthzClass(t *testing.T) {
	cfg := config.Default()
	cfg.MaxBodyBytes = 64 << 20 // the build egress check uploads curl and its libraries (~18 MiB)
	d, admin := startDaemonWith(t, cfg, &daemon.EgressTestHooks{Resolver: loopResolver{}, AllowLoopback: true})
	ctx := context.Background()
	if _, err := admin.Templates(ctx); api.IsKind(err, api.KindNotFound) || api.IsKind(err, api.KindUnavailable) {
		t.Skipf("no sandboxes on this host: %v", err)
	}
	rootfs := t.TempDir()
	sandboxtest.MiniRootfs(t, rootfs)
	cliRun := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		if code := cli.Main(ctx, append([]string{"--data", d.DataDir()}, args...), &out, &errb); code != 0 {
			return out.String(), &cliErr{errb.String()}
		}
		return out.String(), nil
	}
	if out, err := cliRun("template", "create", "mini", "--from-dir", rootfs); err != nil || !strings.Contains(out, "template mini: 1 layer") {
		t.Fatalf("template create: %q %v", out, err)
	}
	if out, err := cliRun("template", "list"); err != nil || !strings.Contains(out, "mini") || !strings.Contains(out, "host") {
		t.Fatalf("template list: %q %v", out, err)
	}
	if _, err := cliRun("template", "create", "other"); err == nil || !strings.Contains(err.Error(), "--from-oci") {
		t.Fatalf("create without a source: %v", err)
	}
	sb, err := admin.CreateSandbox(ctx, api.CreateSandboxRequest{Template: "mini"})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code, err := admin.Exec(ctx, sb.ID, api.ExecRequest{Cmd: "/bin/sh", Args: []string{"-c", "cat /etc/os-release"}}, &out, &out); err != nil || code != 0 || !strings.Contains(out.String(), "agentcloud-test-image") {
		t.Fatalf("exec: %d %v %q", code, err, out.String())
	}

	bob := userClient(t, d, admin, "user:bob")
	if list, err := bob.Templates(ctx); err != nil || len(list) != 2 {
		t.Fatalf("a user lists templates: %v %v", list, err)
	}
	if _, err := bob.CreateTemplate(ctx, "bobs", "tar", strings.NewReader(""), client.Build{}); !api.IsKind(err, api.KindForbidden) {
		t.Fatalf("a user creates a template: %v", err)
	}
	if err := bob.DeleteTemplate(ctx, "mini"); !api.IsKind(err, api.KindForbidden) {
		t.Fatalf("a user deletes a template: %v", err)
	}
	if err := admin.DeleteTemplate(ctx, "mini"); !api.IsKind(err, api.KindConflict) {
		t.Fatalf("delete in use: %v", err)
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+d.Addr()+"/v1/templates?name=evil&source=tar", strings.NewReader("garbage"))
	req.Header.Set("Authorization", "Bearer "+adminToken(t, d.DataDir()))
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity || !bytes.Contains(b, []byte("invalid-image")) {
		t.Fatalf("garbage upload: %d %s", resp.StatusCode, b)
	}
	if err := admin.DeleteSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := cliRun("template", "rm", "mini"); err != nil {
		t.Fatal(err)
	}
	checkVolumeAuthzClass(t, d, admin, cliRun) // volume_test.go: same daemon
	checkBuildEgressClass(t, admin, cliRun)
}

// checkBuildEgressClass: a build step fetches through the egress proxy
// from a host its build's --egress names, and what it fetched is in the
// template; without --egress, or to another host, the proxy refuses (the
// step fails, the upstream sees nothing, no template is left); --egress
// without --run is a CLI error naming the fix.
func checkBuildEgressClass(t *testing.T, admin *client.Client, cliRun func(...string) (string, error)) {
	ctx := t.Context()
	rootfs := t.TempDir()
	sandboxtest.MiniRootfsWith(t, rootfs, append([]string{"curl"}, sandboxtest.RootfsTools...)...)
	index, evil := newRecorder(t, "wheel-bytes"), newRecorder(t, "evil")
	fetch := func(r *recorder, host string) string {
		return "curl -sSf -o /usr/fetched " + r.url(host)
	}
	if out, err := cliRun("template", "create", "fetched", "--from-dir", rootfs,
		"--run", fetch(index, "index.test"), "--egress", index.pattern("index.test")); err != nil || !strings.Contains(out, "template fetched: 2 layer") {
		t.Fatalf("build with egress: %q %v", out, err)
	}
	sb, err := admin.CreateSandbox(ctx, api.CreateSandboxRequest{Template: "fetched"})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code, err := admin.Exec(ctx, sb.ID, api.ExecRequest{Cmd: "/bin/sh", Args: []string{"-c", "cat /usr/fetched"}}, &out, &out); err != nil || code != 0 || out.String() != "wheel-bytes" {
		t.Fatalf("the fetched file in the template: %d %v %q", code, err, out.String())
	}
	if err := admin.DeleteSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if n := len(index.hits()); n != 1 {
		t.Fatalf("index hits %d, want 1", n)
	}
	for _, args := range [][]string{
		{"--run", fetch(index, "index.test")},                                        // no egress: no host
		{"--run", fetch(evil, "evil.test"), "--egress", index.pattern("index.test")}, // not the listed host
	} {
		_, err := cliRun(append([]string{"template", "create", "refused", "--from-dir", rootfs}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "template-build-failed") && !strings.Contains(err.Error(), "build step 1") {
			t.Fatalf("build %q: %v", args, err)
		}
	}
	if len(evil.hits()) != 0 || len(index.hits()) != 1 {
		t.Fatalf("refused builds reached upstreams: evil %d index %d", len(evil.hits()), len(index.hits()))
	}
	if _, err := cliRun("template", "create", "noop", "--from-dir", rootfs, "--egress", "pypi.org"); err == nil || !strings.Contains(err.Error(), "give --run") {
		t.Fatalf("--egress without --run: %v", err)
	}
	list, err := admin.Templates(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("templates after refused builds: %+v %v", list, err)
	}
	if _, err := cliRun("template", "rm", "fetched"); err != nil {
		t.Fatal(err)
	}
}

type cliErr struct{ s string }

func (e *cliErr) Error() string { return e.s }
