package sandboxhttp_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
)

// killInit kills a process-tier sandbox's init from the host, as the OOM
// killer would: its pid is in the sandbox's network namespace path.
func killInit(t *testing.T, s *testServer, id string) {
	t.Helper()
	sb, err := s.manager.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := sb.NetNSPath()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(ns, "/proc/"), "/ns/net"))
	if err != nil {
		t.Fatalf("netns path %q", ns)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// TestSandboxFailedClass: once a sandbox's init is dead, its description
// says state "failed" with the reason, every call that needs it (exec in the
// foreground and background, processes, signals, every file route, pause)
// answers 409 problem+json of kind sandbox-failed, an exec streaming when it
// died ends with that problem, and delete still works.
func TestSandboxFailedClass(t *testing.T) {
	s := startServer(t)
	c := s.client
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sb, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if sb.State != api.SandboxStateRunning || sb.Failure != "" {
		t.Fatalf("new sandbox: state %q failure %q", sb.State, sb.Failure)
	}
	// An exec that is streaming when the sandbox dies ends with the problem.
	st, err := c.ExecStream(ctx, sb.ID, api.ExecRequest{Cmd: "sh", Args: []string{"-c", "echo up; sleep 30"}})
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := st.Next(); err != nil || ev.Data != "up\n" {
		t.Fatalf("first event %+v %v", ev, err)
	}
	killInit(t, s, sb.ID)
	var last api.ExecEvent
	for {
		ev, err := st.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		last = ev
	}
	st.Close()
	if last.Type != api.ExecEventError || last.Problem == nil || last.Problem.Kind() != api.KindSandboxFailed {
		t.Fatalf("last event of an exec whose sandbox died: %+v", last)
	}

	got, err := c.Sandbox(ctx, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != api.SandboxStateFailed || !strings.Contains(got.Failure, "init") {
		t.Fatalf("failed sandbox described as state %q failure %q", got.State, got.Failure)
	}
	list, err := c.Sandboxes(ctx)
	if err != nil || len(list) != 1 || list[0].State != api.SandboxStateFailed || list[0].Failure != got.Failure {
		t.Fatalf("list: %+v %v", list, err)
	}
	id := "/v1/sandboxes/" + sb.ID
	for _, tc := range []struct{ method, path, body string }{
		{"POST", id + "/exec", `{"cmd":"true"}`},
		{"POST", id + "/exec", `{"cmd":"sleep","args":["1"],"background":true}`},
		{"GET", id + "/processes", ""},
		{"POST", id + "/processes/2/signal", `{"signal":"TERM"}`},
		{"PUT", id + "/files?path=a.txt", "x"},
		{"GET", id + "/files?path=a.txt", ""},
		{"DELETE", id + "/files?path=a.txt", ""},
		{"GET", id + "/files/list", ""},
		{"GET", id + "/files/stat?path=/tmp", ""},
		{"POST", id + "/files/mkdir?path=d", ""},
		{"POST", id + "/pause", ""},
	} {
		req, _ := http.NewRequest(tc.method, s.URL+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var p api.Problem
		if err := json.Unmarshal(b, &p); err != nil || resp.Header.Get("Content-Type") != api.ProblemContentType ||
			resp.StatusCode != http.StatusConflict || p.Kind() != api.KindSandboxFailed || !strings.Contains(p.Detail, got.Failure) {
			t.Errorf("%s %s on a failed sandbox: %d %s", tc.method, tc.path, resp.StatusCode, b)
		}
	}
	if err := c.DeleteSandbox(ctx, sb.ID); err != nil {
		t.Fatalf("delete a failed sandbox: %v", err)
	}
	if _, err := c.Sandbox(ctx, sb.ID); !api.IsKind(err, api.KindNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}
