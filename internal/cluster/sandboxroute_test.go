package cluster_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/cluster"
	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// TestSandboxRoutingClass: a call for a sandbox reaching any member is
// served by the member whose name its id carries (every sandbox route,
// the caller's credentials kept, marked as forwarded); ids without a
// member's name, or naming a member nobody knows, or malformed, are
// served where they arrive (404 there); a member that cannot be reached
// is 503 with Retry-After; one that left is no longer routed to.
func TestSandboxRoutingClass(t *testing.T) {
	nodes, _ := startForwarding(t, 3)
	client := &http.Client{Timeout: 10 * time.Second}
	do := func(entry *fwdNode, method, path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, entry.public.URL+path, strings.NewReader("body"))
		req.Header.Set("Authorization", "Bearer tok")
		req.Header.Set(cluster.ForwardedHeader, "node-evil")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for _, maker := range nodes {
		id := "sb-" + sandbox.NodeTag(maker.name) + "-0123456789abcdef"
		for _, entry := range nodes {
			for _, rt := range []struct{ method, path string }{
				{"GET", "/v1/sandboxes/" + id},
				{"DELETE", "/v1/sandboxes/" + id},
				{"POST", "/v1/sandboxes/" + id + "/exec"},
				{"PUT", "/v1/sandboxes/" + id + "/files/a/b.txt"},
				{"GET", "/v1/sandboxes/" + id + "/ports/8080/x?y=1"},
			} {
				resp := do(entry, rt.method, rt.path)
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				path, _, _ := strings.Cut(rt.path, "?")
				if resp.StatusCode != 200 || resp.Header.Get("Served-By") != maker.name || string(body) != maker.name+" "+path+" body" {
					t.Fatalf("%s %s via %s: %d served by %q (%s), made on %s", rt.method, rt.path, entry.name, resp.StatusCode, resp.Header.Get("Served-By"), body, maker.name)
				}
				if saw := resp.Header.Get("Saw-Forwarded"); entry != maker && saw != entry.name || entry == maker && saw != "" {
					t.Errorf("%s via %s saw %s=%q", rt.path, entry.name, cluster.ForwardedHeader, saw)
				}
				if resp.Header.Get("Saw-Auth") != "Bearer tok" {
					t.Errorf("%s: the maker did not get the caller's credentials", rt.path)
				}
			}
		}
	}
	local := func(what string, entry *fwdNode, path string) {
		t.Helper()
		resp := do(entry, "GET", path)
		resp.Body.Close()
		if resp.Header.Get("Served-By") != entry.name {
			t.Errorf("%s (%s) served by %q, want the entry member %s", what, path, resp.Header.Get("Served-By"), entry.name)
		}
	}
	for what, path := range map[string]string{
		"the list":              "/v1/sandboxes",
		"the list, slash":       "/v1/sandboxes/",
		"an id without a node":  "/v1/sandboxes/sb-0123456789abcdef/exec",
		"an unknown member":     "/v1/sandboxes/sb-node-9-0123456789abcdef",
		"upper-case hex":        "/v1/sandboxes/sb-node-0-0123456789ABCDEF",
		"a tag that is no name": "/v1/sandboxes/sb-Node_0-0123456789abcdef",
		"a short random part":   "/v1/sandboxes/sb-node-0-0123",
		"not an id at all":      "/v1/sandboxes/..",
	} {
		local(what, nodes[1], path)
	}

	// node-2's peer link is down: 503 with Retry-After, a problem.
	nodes[2].peer.Close()
	id2 := "sb-" + sandbox.NodeTag("node-2") + "-0123456789abcdef"
	resp := do(nodes[0], "POST", "/v1/sandboxes/"+id2+"/exec")
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Content-Type") != api.ProblemContentType {
		t.Fatalf("maker unreachable: %d %q %q", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"))
	}
	// node-2 leaves: its sandboxes went with it; the entry answers.
	nodes[2].member.Close(context.Background())
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp := do(nodes[0], "GET", "/v1/sandboxes/"+id2)
		resp.Body.Close()
		if resp.Header.Get("Served-By") == "node-0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after node-2 left: %d served by %q", resp.StatusCode, resp.Header.Get("Served-By"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func FuzzSandboxOf(f *testing.F) {
	for _, s := range []string{"/v1/sandboxes/sb-1/exec", "/v1/sandboxes/", "/v1/sandboxes", "/sandboxes/x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		id, ok := cluster.SandboxOf(path)
		if ok && (id == "" || strings.Contains(id, "/") || !strings.HasPrefix(path, "/v1/sandboxes/"+id)) {
			t.Fatalf("%q -> %q", path, id)
		}
	})
}

// TestSandboxRoutingE2BClass: every other way a request names a sandbox
// reaches the member that made it: signed port URLs, E2B's control
// routes (v1 and v2 paths) and envd calls naming it in E2b-Sandbox-Id;
// E2B routes naming no sandbox (create, list, health) are served where
// they arrive, as is the header on a path outside /e2b/.
func TestSandboxRoutingE2BClass(t *testing.T) {
	nodes, _ := startForwarding(t, 3)
	client := &http.Client{Timeout: 30 * time.Second}
	do := func(entry *fwdNode, method, path, sbHeader string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, entry.public.URL+path, strings.NewReader("body"))
		if sbHeader != "" {
			req.Header.Set(cluster.SandboxHeader, sbHeader)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	maker := nodes[2]
	id := "sb-" + sandbox.NodeTag(maker.name) + "-0123456789abcdef"
	for _, entry := range nodes[:2] {
		for _, rt := range []struct{ method, path, header string }{
			{"GET", "/v1/public/sandbox-ports/" + id + "/8080/x?expires=1&signature=s", ""},
			{"GET", "/e2b/sandboxes/" + id, ""},
			{"DELETE", "/e2b/sandboxes/" + id, ""},
			{"POST", "/e2b/sandboxes/" + id + "/timeout", ""},
			{"POST", "/e2b/v2/sandboxes/" + id + "/connect", ""},
			{"POST", "/e2b/process.Process/Start", id},
			{"GET", "/e2b/files?path=/a", id},
			{"GET", "/e2b/health", id},
		} {
			resp := do(entry, rt.method, rt.path, rt.header)
			// The maker's record may age on a loaded machine (1.2 s
			// TTL): 503 with Retry-After then; ask again.
			for deadline := time.Now().Add(30 * time.Second); resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "" && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
				resp = do(entry, rt.method, rt.path, rt.header)
			}
			if resp.StatusCode != 200 || resp.Header.Get("Served-By") != maker.name {
				t.Errorf("%s %s (sandbox header %q) via %s: %d served by %q, want %s", rt.method, rt.path, rt.header, entry.name, resp.StatusCode, resp.Header.Get("Served-By"), maker.name)
			}
		}
		for _, rt := range []struct{ method, path, header string }{
			{"POST", "/e2b/sandboxes", ""},
			{"GET", "/e2b/v2/sandboxes", ""},
			{"GET", "/e2b/health", ""},
			{"GET", "/v1/agents", id},
		} {
			if resp := do(entry, rt.method, rt.path, rt.header); resp.Header.Get("Served-By") != entry.name {
				t.Errorf("%s %s (sandbox header %q) via %s: served by %q, want the entry", rt.method, rt.path, rt.header, entry.name, resp.Header.Get("Served-By"))
			}
		}
	}
}
