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
	"github.com/agentcloud/agentcloud/internal/sandbox/process"
)

// TestSandboxForkRouteClass: fork copies a sandbox's files into count new
// sandboxes owned like it; another tenant's ids are refused on every new
// route (fork, start), and malformed or oversized fork bodies are 4xx.
func TestSandboxForkRouteClass(t *testing.T) {
	if err := process.Available(); err != nil {
		t.Skipf("process sandbox tier unavailable: %v", err)
	}
	d, admin := startDaemon(t)
	ctx := context.Background()
	alice, bob := userClient(t, d, admin, "user:alice"), userClient(t, d, admin, "user:bob")
	asb, err := alice.CreateSandbox(ctx, api.CreateSandboxRequest{TimeoutS: 300})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.WriteFile(ctx, asb.ID, "seed.txt", strings.NewReader("seed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	forks, err := alice.ForkSandbox(ctx, asb.ID, 3)
	if err != nil || len(forks) != 3 {
		t.Fatalf("fork: %d %v", len(forks), err)
	}
	for i, f := range forks {
		if f.Owner != asb.Owner || f.ID == asb.ID {
			t.Fatalf("fork %d: %+v", i, f)
		}
		var out bytes.Buffer
		script := "cat seed.txt; echo " + f.ID + " > own.txt"
		if code, err := alice.Exec(ctx, f.ID, api.ExecRequest{Cmd: "sh", Args: []string{"-c", script}}, &out, io.Discard); err != nil || code != 0 || out.String() != "seed\n" {
			t.Fatalf("fork %d sees %q (%d %v)", i, out.String(), code, err)
		}
	}
	// The copies are copies: writes in one are not in the source.
	if _, err := alice.StatFile(ctx, asb.ID, "own.txt"); err == nil {
		t.Fatal("a fork's write reached the source")
	}
	bobTok, err := admin.CreateToken(ctx, api.TokenRequest{Subject: "user:bob", TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	do := func(tok, method, path, body string) int {
		req, _ := http.NewRequest(method, "http://"+d.Addr()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	p := "/v1/sandboxes/" + asb.ID
	for _, c := range []struct{ method, path, body string }{
		{"POST", p + "/fork", `{"count":1}`},
		{"POST", p + "/start", ``},
		{"POST", p + "/pause", ``},
		{"POST", p + "/resume", ``},
	} {
		if code := do(bobTok.Token, c.method, c.path, c.body); code != http.StatusForbidden && code != http.StatusNotFound {
			t.Errorf("bob: %s %s: %d", c.method, c.path, code)
		}
	}
	if _, err := bob.ForkSandbox(ctx, asb.ID, 1); err == nil {
		t.Fatal("bob forked alice's sandbox")
	}
	aliceTok, err := admin.CreateToken(ctx, api.TokenRequest{Subject: "user:alice", TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{`{"count":0}`, `{"count":101}`, `{"count":-1}`, `{"count":"3"}`, `{"count":1e9}`, `{`, `[]`,
		`{"count":1,"extra":true}`, `{"count":` + strings.Repeat("9", 5000) + `}`, strings.Repeat(" ", 2<<20)} {
		if code := do(aliceTok.Token, "POST", p+"/fork", body); code < 400 || code >= 500 {
			t.Errorf("fork body %.40q: %d", body, code)
		}
	}
	if code := do(aliceTok.Token, "POST", "/v1/sandboxes/no-such-sandbox/fork", `{"count":1}`); code != http.StatusNotFound && code != http.StatusForbidden {
		t.Errorf("fork of a missing sandbox: %d", code)
	}
	if list, err := alice.Sandboxes(ctx); err != nil || len(list) != 4 {
		t.Fatalf("alice has %d sandboxes (%v), want the source and 3 forks", len(list), err)
	}
	for _, f := range forks {
		if err := alice.DeleteSandbox(ctx, f.ID); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("snapshots", func(t *testing.T) { snapshotRoutes(t, alice, bob, asb.ID, aliceTok.Token, bobTok.Token, do) })
	t.Run("paused", func(t *testing.T) { pausedForkRoutes(t, alice, asb.ID, aliceTok.Token, bobTok.Token, do) })
}

// pausedForkRoutes (on the fork test's daemon): a paused fork on the
// process tier makes stopped copies with the source's files (the tier
// saves no memory); exec on one is refused until it is started; another
// tenant cannot start, resume or delete them; a malformed paused flag is
// 4xx; the copies count against the owner's caps like any sandbox.
func pausedForkRoutes(t *testing.T, alice *client.Client, sbID, aliceTok, bobTok string, do func(tok, method, path, body string) int) {
	ctx := t.Context()
	forks, err := alice.ForkSandboxWith(ctx, sbID, api.ForkSandboxRequest{Count: 2, Paused: true})
	if err != nil || len(forks) != 2 {
		t.Fatalf("paused fork: %d %v", len(forks), err)
	}
	for _, f := range forks {
		if f.State != api.SandboxStateStopped || f.Paused {
			t.Fatalf("a paused fork's copy on the process tier: %+v", f)
		}
		if _, err := alice.Exec(ctx, f.ID, api.ExecRequest{Cmd: "true"}, io.Discard, io.Discard); !api.IsKind(err, api.KindConflict) {
			t.Fatalf("exec in a stopped copy: %v", err)
		}
		for _, c := range []struct{ method, path string }{
			{"POST", "/start"}, {"POST", "/resume"}, {"DELETE", ""}, {"POST", "/fork"},
		} {
			if code := do(bobTok, c.method, "/v1/sandboxes/"+f.ID+c.path, `{"count":1,"paused":true}`); code != http.StatusForbidden && code != http.StatusNotFound {
				t.Errorf("bob: %s %s of alice's paused copy: %d", c.method, c.path, code)
			}
		}
	}
	for _, body := range []string{`{"count":1,"paused":"yes"}`, `{"count":1,"paused":1}`, `{"count":1,"paused":null,"paused":true}`, `{"count":101,"paused":true}`} {
		if code := do(aliceTok, "POST", "/v1/sandboxes/"+sbID+"/fork", body); code < 400 || code >= 500 {
			t.Errorf("fork body %q: %d", body, code)
		}
	}
	if _, err := alice.StartSandbox(ctx, forks[0].ID); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code, err := alice.Exec(ctx, forks[0].ID, api.ExecRequest{Cmd: "cat", Args: []string{"seed.txt"}}, &out, io.Discard); err != nil || code != 0 || out.String() != "seed\n" {
		t.Fatalf("started copy: %q %d %v", out.String(), code, err)
	}
	for _, f := range forks {
		if err := alice.DeleteSandbox(ctx, f.ID); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshotRoutes (TestSnapshotRoutesClass, on the fork test's daemon): a
// process-tier snapshot says it holds files only and why; a restore has
// the files and the owner; another tenant's snapshot ids are refused on
// every snapshot route and left out of its list; malformed and unknown
// ids are 4xx; a deleted snapshot is gone.
func snapshotRoutes(t *testing.T, alice, bob *client.Client, sbID, aliceTok, bobTok string, do func(tok, method, path, body string) int) {
	ctx := t.Context()
	snap, err := alice.SnapshotSandbox(ctx, sbID)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Memory || !strings.Contains(snap.Note, "CRIU") || snap.Sandbox != sbID || snap.Bytes <= 0 {
		t.Fatalf("process-tier snapshot: %+v", snap)
	}
	p := "/v1/snapshots/" + snap.ID
	for _, c := range []struct{ method, path string }{
		{"GET", p}, {"DELETE", p}, {"POST", p + "/restore"}, {"POST", "/v1/sandboxes/" + sbID + "/snapshots"},
	} {
		if code := do(bobTok, c.method, c.path, ""); code != http.StatusForbidden && code != http.StatusNotFound {
			t.Errorf("bob: %s %s: %d", c.method, c.path, code)
		}
	}
	if list, err := bob.Snapshots(ctx); err != nil || len(list) != 0 {
		t.Fatalf("bob lists %d snapshots (%v), want none", len(list), err)
	}
	for _, path := range []string{"/v1/snapshots/snap-0123456789abcdef0123", "/v1/snapshots/SNAP-X", "/v1/snapshots/" + strings.Repeat("a", 300),
		"/v1/snapshots/..%2Fetc", "/v1/snapshots/snap-%00"} {
		for _, m := range []string{"GET", "DELETE"} {
			if code := do(aliceTok, m, path, ""); code < 400 || code >= 500 {
				t.Errorf("alice: %s %.60s: %d", m, path, code)
			}
		}
	}
	r, err := alice.RestoreSnapshot(ctx, snap.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code, err := alice.Exec(ctx, r.ID, api.ExecRequest{Cmd: "cat", Args: []string{"seed.txt"}}, &out, io.Discard); err != nil || code != 0 || out.String() != "seed\n" || r.Owner == "" {
		t.Fatalf("restored sandbox %+v: %q %d %v", r, out.String(), code, err)
	}
	if list, err := alice.Snapshots(ctx); err != nil || len(list) != 1 {
		t.Fatalf("alice lists %d snapshots (%v), want 1", len(list), err)
	}
	if err := alice.DeleteSnapshot(ctx, snap.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Snapshot(ctx, snap.ID); err == nil {
		t.Fatal("a deleted snapshot is still there")
	}
	_ = alice.DeleteSandbox(ctx, r.ID)
}
