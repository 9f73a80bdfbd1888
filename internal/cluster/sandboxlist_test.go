package cluster_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/cluster"
	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// serveTestList is a member's own GET /v1/sandboxes in the forwarding
// harness: one sandbox of the member for "Bearer tok", none for another
// tenant ("Bearer bob"), 401 without credentials; the ETag names this
// list only.
func serveTestList(w http.ResponseWriter, r *http.Request, name string, i int) {
	w.Header().Set("Served-By", name)
	w.Header().Set("Saw-Forwarded", r.Header.Get(cluster.ForwardedHeader))
	w.Header().Set("ETag", `"`+name+`"`)
	w.Header().Set("Content-Type", "application/json")
	switch r.Header.Get("Authorization") {
	case "Bearer tok":
		if r.Header.Get("If-None-Match") == `"`+name+`"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		created := time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC)
		_ = json.NewEncoder(w).Encode(api.SandboxList{Sandboxes: []api.Sandbox{
			{ID: "sb-" + sandbox.NodeTag(name) + "-0123456789abcdef", Created: created, Metadata: map[string]string{"q": r.URL.RawQuery}}}})
	case "Bearer bob":
		_, _ = w.Write([]byte(`{"sandboxes":[]}`))
	default:
		w.Header().Set("Content-Type", api.ProblemContentType)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"type":"x","status":401}`))
	}
}

// TestSandboxListAcrossMembersClass: GET /v1/sandboxes on any member lists
// the caller's sandboxes of every member (each id names its member), in
// creation order, with the query passed on; another tenant's list and a
// refused caller are answered as each member answers them; a conditional
// request never gets a member's 304 for the merged list; a member that
// does not answer is named in a header, not silently left out.
func TestSandboxListAcrossMembersClass(t *testing.T) {
	nodes, _ := startForwarding(t, 3)
	client := &http.Client{Timeout: 30 * time.Second}
	list := func(entry *fwdNode, auth string, hdr map[string]string) (*http.Response, api.SandboxList) {
		t.Helper()
		req, _ := http.NewRequest("GET", entry.public.URL+"/v1/sandboxes?metadata=a%3Db", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		req.Header.Set(cluster.ForwardedHeader, "node-evil")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var l api.SandboxList
		if resp.StatusCode == 200 {
			if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
				t.Fatal(err)
			}
		}
		return resp, l
	}
	var want []string
	for _, n := range nodes {
		want = append(want, "sb-"+sandbox.NodeTag(n.name)+"-0123456789abcdef")
	}
	for _, entry := range nodes {
		for _, hdr := range []map[string]string{nil, {"If-None-Match": `"` + entry.name + `"`}} {
			resp, l := list(entry, "Bearer tok", hdr)
			// A member whose record aged on a loaded machine (1.2 s
			// TTL) is left out and named; ask until all are live.
			for deadline := time.Now().Add(30 * time.Second); resp.Header.Get(cluster.UnreachableHeader) != "" && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
				resp, l = list(entry, "Bearer tok", hdr)
			}
			var got []string
			for _, s := range l.Sandboxes {
				got = append(got, s.ID)
				if s.Metadata["q"] != "metadata=a%3Db" {
					t.Errorf("via %s: %s listed for query %q", entry.name, s.ID, s.Metadata["q"])
				}
			}
			if resp.StatusCode != 200 || !slices.Equal(got, want) || resp.Header.Get(cluster.UnreachableHeader) != "" || resp.Header.Get("ETag") != "" {
				t.Fatalf("list via %s (%v): %d %v unreachable=%q etag=%q", entry.name, hdr, resp.StatusCode, got, resp.Header.Get(cluster.UnreachableHeader), resp.Header.Get("ETag"))
			}
		}
		if resp, l := list(entry, "Bearer bob", nil); resp.StatusCode != 200 || len(l.Sandboxes) != 0 {
			t.Fatalf("another tenant's list via %s: %d %+v", entry.name, resp.StatusCode, l)
		}
		if resp, _ := list(entry, "", nil); resp.StatusCode != 401 || resp.Header.Get("Content-Type") != api.ProblemContentType {
			t.Fatalf("no credentials via %s: %d", entry.name, resp.StatusCode)
		}
	}
	// node-2's peer link is down: the list says so.
	nodes[2].peer.Close()
	resp, l := list(nodes[0], "Bearer tok", nil)
	if resp.StatusCode != 200 || len(l.Sandboxes) != 2 || resp.Header.Get(cluster.UnreachableHeader) != "node-2" {
		t.Fatalf("with node-2 unreachable: %d %d sandboxes, unreachable=%q", resp.StatusCode, len(l.Sandboxes), resp.Header.Get(cluster.UnreachableHeader))
	}
	if strings.Contains(resp.Header.Get("Saw-Forwarded"), "evil") {
		t.Fatal("a client's forwarded-by header reached a member")
	}
}
