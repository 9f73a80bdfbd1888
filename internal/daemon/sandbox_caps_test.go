package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/config"
)

// capsConfig is a daemon configuration with small sandbox caps.
func capsConfig(perOwner int) config.Config {
	cfg := config.Default()
	cfg.SandboxPoolProcess = 0
	cfg.SandboxMaxPerOwner = perOwner
	cfg.SandboxMaxCPUs = 1
	cfg.SandboxMaxMemoryMB = 256
	cfg.SandboxMaxDiskMB = 64
	cfg.SandboxMaxPids = 64
	cfg.SandboxMaxTimeout = config.Duration(10 * time.Minute)
	return cfg
}

// wantCapRefusal checks a 422 naming field whose detail names the cap's
// setting and value.
func wantCapRefusal(t *testing.T, what string, err error, field, setting, value string) {
	t.Helper()
	p := api.AsProblem(err)
	if !api.IsKind(err, api.KindValidation) || p.Status != 422 {
		t.Errorf("%s: want 422 validation-failed, got %v", what, err)
		return
	}
	for _, fe := range append([]api.FieldError{{Field: p.Field, Detail: p.Detail}}, p.Errors...) {
		if fe.Field == field && strings.Contains(fe.Detail, setting) && strings.Contains(fe.Detail, "cap of "+value) {
			return
		}
	}
	t.Errorf("%s: no error on %s naming %s and its cap %s: %+v", what, field, setting, value, p)
}

// TestSandboxUserCapsClass: a user asking for more than a cap allows, in
// any field (the attack asked for a 1 TiB memory cgroup and a 1 TiB tmpfs),
// is refused with 422 naming the field and the cap; omitted values whose
// default is over a cap get the cap; extensions are capped like creation;
// another user's sandboxes do not count against one's quota; an
// administrator has no caps.
func TestSandboxUserCapsClass(t *testing.T) {
	needSandboxes(t)
	d, admin := startDaemonWith(t, capsConfig(3), nil)
	ctx := context.Background()
	alice, bob := userClient(t, d, admin, "user:alice"), userClient(t, d, admin, "user:bob")

	for _, tc := range []struct {
		name                  string
		req                   api.CreateSandboxRequest
		field, setting, value string
	}{
		{"1 TiB of memory", api.CreateSandboxRequest{Limits: api.SandboxLimits{MemoryMB: 1 << 20}}, "limits.memory_mb", "sandbox_max_memory_mb", "256"},
		{"1 TiB of disk", api.CreateSandboxRequest{Limits: api.SandboxLimits{DiskMB: 1 << 20}}, "limits.disk_mb", "sandbox_max_disk_mb", "64"},
		{"one MiB over", api.CreateSandboxRequest{Limits: api.SandboxLimits{MemoryMB: 257}}, "limits.memory_mb", "sandbox_max_memory_mb", "256"},
		{"cpus", api.CreateSandboxRequest{Limits: api.SandboxLimits{CPUs: 1.5}}, "limits.cpus", "sandbox_max_cpus", "1"},
		{"pids", api.CreateSandboxRequest{Limits: api.SandboxLimits{Pids: 100000}}, "limits.pids", "sandbox_max_pids", "64"},
		{"a day", api.CreateSandboxRequest{TimeoutS: 86400}, "timeout_s", "sandbox_max_timeout", "600"},
		{"memory and disk", api.CreateSandboxRequest{Limits: api.SandboxLimits{MemoryMB: 4096, DiskMB: 4096}}, "limits.disk_mb", "sandbox_max_disk_mb", "64"},
	} {
		_, err := alice.CreateSandbox(ctx, tc.req)
		wantCapRefusal(t, tc.name, err, tc.field, tc.setting, tc.value)
	}
	// All at once: every field is named.
	_, err := alice.CreateSandbox(ctx, api.CreateSandboxRequest{TimeoutS: 3600,
		Limits: api.SandboxLimits{CPUs: 8, MemoryMB: 8192, DiskMB: 8192, Pids: 8192}})
	if p := api.AsProblem(err); !api.IsKind(err, api.KindValidation) || len(p.Errors) != 5 {
		t.Fatalf("five fields over their caps: %v (%+v)", err, p)
	}
	if l, err := alice.Sandboxes(ctx); err != nil || len(l) != 0 {
		t.Fatalf("refused requests left sandboxes: %+v %v", l, err)
	}

	// Omitted values whose defaults are over the caps get the caps.
	sb, err := alice.CreateSandbox(ctx, api.CreateSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if l := sb.Limits; l.MemoryMB != 256 || l.DiskMB != 64 || l.Pids != 64 || l.CPUs != 1 || sb.Expires.Sub(sb.Created) > 10*time.Minute {
		t.Fatalf("defaults not brought under the caps: %+v, lives %v", sb.Limits, sb.Expires.Sub(sb.Created))
	}
	if code, out := run(t, alice, sb.ID, "df -m /tmp | tail -1 | awk '{print $2}'"); code != 0 || strings.TrimSpace(out) != "64" {
		t.Fatalf("/tmp size inside: %d %q", code, out)
	}
	// /workspace is on disk (it survives restarts): its cap holds per file
	// as it is written (and in total by the Manager's quota check).
	if code, out := run(t, alice, sb.ID, "head -c 70000000 /dev/zero > /workspace/big; echo $?"); code != 0 || strings.TrimSpace(out) == "0" {
		t.Fatalf("a 70 MB file in a 64 MiB workspace: %d %q", code, out)
	}
	// Within the caps: granted as asked.
	small, err := alice.CreateSandbox(ctx, api.CreateSandboxRequest{TimeoutS: 60, Limits: api.SandboxLimits{MemoryMB: 128, DiskMB: 16, Pids: 32, CPUs: 0.5}})
	if err != nil || small.Limits.MemoryMB != 128 || small.Limits.DiskMB != 16 {
		t.Fatalf("within the caps: %+v %v", small, err)
	}
	// Extensions: at most the timeout cap at a time.
	_, err = alice.ExtendSandbox(ctx, sb.ID, 3600)
	wantCapRefusal(t, "extend by an hour", err, "timeout_s", "sandbox_max_timeout", "600")
	if _, err := alice.ExtendSandbox(ctx, sb.ID, 300); err != nil {
		t.Fatalf("extend within the cap: %v", err)
	}

	// The count: alice has 2; a third is fine, a fourth is refused (429),
	// while bob's own quota is untouched.
	if _, err := alice.CreateSandbox(ctx, api.CreateSandboxRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err = alice.CreateSandbox(ctx, api.CreateSandboxRequest{})
	wantKind(t, "alice's fourth sandbox", err, api.KindRateLimited, "sandbox_max_per_owner")
	if _, err := bob.CreateSandbox(ctx, api.CreateSandboxRequest{}); err != nil {
		t.Fatalf("bob while alice is at her quota: %v", err)
	}

	// The administrator: no caps, no quota.
	big, err := admin.CreateSandbox(ctx, api.CreateSandboxRequest{TimeoutS: 86400,
		Limits: api.SandboxLimits{CPUs: 2, MemoryMB: 4096, DiskMB: 1024, Pids: 4096}})
	if err != nil {
		t.Fatalf("administrator over the caps: %v", err)
	}
	if l := big.Limits; l.MemoryMB != 4096 || l.DiskMB != 1024 || l.Pids != 4096 || big.Expires.Sub(big.Created) < 23*time.Hour {
		t.Fatalf("administrator's sandbox: %+v", big)
	}
	if _, err := admin.ExtendSandbox(ctx, big.ID, 7200); err != nil {
		t.Fatalf("administrator extending its own sandbox: %v", err)
	}
	for range 4 {
		if _, err := admin.CreateSandbox(ctx, api.CreateSandboxRequest{}); err != nil {
			t.Fatalf("administrator past the per-owner quota: %v", err)
		}
	}
	// A default sandbox of the administrator keeps the defaults.
	l, _ := admin.Sandboxes(ctx)
	for _, s := range l {
		if s.Owner == "spiffe://agentcloud.local/admin/admin" && s.ID != big.ID && s.Limits.MemoryMB != 512 {
			t.Fatalf("administrator's default sandbox got %+v", s.Limits)
		}
	}
}

// TestSandboxCountCapRaceClass: many concurrent creates by one user never
// get past the per-owner quota (the count and the creation are one atomic
// step), while a second user races alongside with a quota of its own.
func TestSandboxCountCapRaceClass(t *testing.T) {
	needSandboxes(t)
	const quota, tries = 3, 12
	d, admin := startDaemonWith(t, capsConfig(quota), nil)
	ctx := context.Background()
	users := map[string]*client.Client{"alice": userClient(t, d, admin, "user:alice"), "bob": userClient(t, d, admin, "user:bob")}
	var wg sync.WaitGroup
	created := map[string]*atomic.Int32{"alice": {}, "bob": {}}
	var unexpected atomic.Value
	for name, c := range users {
		for range tries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Limits: api.SandboxLimits{MemoryMB: 64, DiskMB: 8}})
				switch {
				case err == nil:
					created[name].Add(1)
				case !api.IsKind(err, api.KindRateLimited):
					unexpected.Store(err)
				}
			}()
		}
	}
	wg.Wait()
	if err, _ := unexpected.Load().(error); err != nil {
		t.Fatalf("a create failed other than by the quota: %v", err)
	}
	for name, c := range users {
		l, err := c.Sandboxes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := created[name].Load(); n != quota || len(l) != quota {
			t.Errorf("%s: %d of %d concurrent creates succeeded, %d live; want exactly %d", name, n, tries, len(l), quota)
		}
	}
}

const runCodeAgent = `export default {
  async fetch(request, env) {
    try {
      if (new URL(request.url).pathname === "/sandbox") {
        return Response.json(await env.sandbox.run({language: "python", code: "print(1)"}));
      }
      return Response.json(await env.tools.call("run_code", {language: "python", code: "import time; time.sleep(2); print('done')"}));
    } catch (e) {
      return new Response(e.name + ": " + e.message, {status: 599});
    }
  }
};`

// TestRunCodeOwnershipClass: a run_code sandbox belongs to the caller (a
// user; for a session, its agent's owner, tied to the session): it shows in
// the owner's list while it lives and nowhere else, counts against the
// owner's quota (a caller at the quota is refused, rate_limited), and is
// gone afterwards; an administrator is not held to the quota.
func TestRunCodeOwnershipClass(t *testing.T) {
	needSandboxes(t)
	d, admin := startDaemonWith(t, capsConfig(1), nil)
	ctx := context.Background()
	alice, bob := userClient(t, d, admin, "user:alice"), userClient(t, d, admin, "user:bob")
	slow := json.RawMessage(`{"language":"python","code":"import time; time.sleep(2); print('done')"}`)

	// While alice's run_code runs, its sandbox is in her list, owned by her,
	// and not in bob's.
	type result struct {
		res *api.ToolResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := alice.CallTool(ctx, "run_code", slow)
		done <- result{r, err}
	}()
	var seen api.Sandbox
	deadline := time.Now().Add(20 * time.Second)
	for seen.ID == "" && time.Now().Before(deadline) {
		l, err := alice.Sandboxes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range l {
			if s.Metadata["tool"] == "run_code" {
				seen = s
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if seen.Owner != "spiffe://agentcloud.local/user/alice" {
		t.Fatalf("run_code sandbox in alice's list: %+v", seen)
	}
	if l, _ := bob.Sandboxes(ctx); len(l) != 0 {
		t.Fatalf("bob sees %+v", l)
	}
	// It counts: at her quota of one, a sandbox of her own is refused.
	_, err := alice.CreateSandbox(ctx, api.CreateSandboxRequest{})
	wantKind(t, "alice's sandbox while run_code runs", err, api.KindRateLimited, "sandbox_max_per_owner")
	r := <-done
	if r.err != nil || r.res.IsError || !strings.Contains(r.res.Text, "done") {
		t.Fatalf("run_code: %+v %v", r.res, r.err)
	}
	waitFor(t, func() bool { l, _ := alice.Sandboxes(ctx); return len(l) == 0 })

	// And the other way round: with a sandbox of hers live, run_code is
	// refused as rate limited, naming the quota.
	mine, err := alice.CreateSandbox(ctx, api.CreateSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = alice.CallTool(ctx, "run_code", slow)
	wantKind(t, "run_code at the quota", err, api.KindRateLimited, "sandbox_max_per_owner")
	// The administrator's run_code runs regardless of how many it has.
	for range 2 {
		if _, err := admin.CreateSandbox(ctx, api.CreateSandboxRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := admin.CallTool(ctx, "run_code", json.RawMessage(`{"language":"python","code":"print(2)"}`)); err != nil || r.IsError {
		t.Fatalf("administrator's run_code: %+v %v", r, err)
	}

	// A session's run_code (env.tools) and env.sandbox belong to the
	// agent's owner: alice, who is at her quota, so both are refused.
	man := `{"name":"coder","entry":"agent.js","tools":["run_code"],"limits":{"idle_seconds":3600}}`
	if err := deployJS(alice, man, runCodeAgent); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/tool", "/sandbox"} {
		code, body := getAgent(t, alice, "coder", "s1", path)
		if code != 599 || !strings.Contains(body, "sandbox_max_per_owner") {
			t.Fatalf("%s at the owner's quota: %d %s", path, code, body)
		}
	}
	if err := alice.DeleteSandbox(ctx, mine.ID); err != nil {
		t.Fatal(err)
	}
	go func() {
		code, body := getAgent(t, alice, "coder", "s1", "/tool")
		done <- result{&api.ToolResult{Text: fmt.Sprint(code, " ", body)}, nil}
	}()
	seen = api.Sandbox{}
	deadline = time.Now().Add(20 * time.Second)
	for seen.ID == "" && time.Now().Before(deadline) {
		l, _ := alice.Sandboxes(ctx)
		for _, s := range l {
			seen = s
		}
		time.Sleep(50 * time.Millisecond)
	}
	if seen.Owner != "spiffe://agentcloud.local/user/alice" || seen.Session != "coder/s1" || seen.Metadata["tool"] != "run_code" {
		t.Fatalf("a session's run_code sandbox: %+v", seen)
	}
	if r := <-done; !strings.HasPrefix(r.res.Text, "200 ") || !strings.Contains(r.res.Text, "done") {
		t.Fatalf("session's run_code: %s", r.res.Text)
	}
}

// getAgent GETs path from a session and returns the status and body.
func getAgent(t *testing.T, c *client.Client, agent, sess, path string) (int, string) {
	resp, err := c.Call(context.Background(), agent, sess, "GET", path, nil, nil)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
	}
}
