package cluster_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
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

// serveTestE2BList is a member's own E2B listing in the forwarding
// harness, as e2bhttp answers it: three sandboxes of the member for
// "Bearer tok" in id order after nextToken, at most limit (1 to 100, else
// 400), X-Next-Token when more follow, X-Total-Running; none for "Bearer
// bob"; 401 without credentials.
func serveTestE2BList(w http.ResponseWriter, r *http.Request, name string) {
	w.Header().Set("Served-By", name)
	w.Header().Set("ETag", `"`+name+`"`)
	w.Header().Set("Content-Type", "application/json")
	q := r.URL.Query()
	limit := 100
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100 {
			w.Header().Set("Content-Type", api.ProblemContentType)
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"type":"x","status":400}`))
			return
		}
		limit = n
	}
	switch r.Header.Get("Authorization") {
	case "Bearer tok":
		var out []map[string]string
		next := ""
		for k := range 3 {
			id := fmt.Sprintf("sb-%s-%016x", sandbox.NodeTag(name), k)
			if id <= q.Get("nextToken") {
				continue
			}
			if len(out) == limit {
				next = out[len(out)-1]["sandboxID"]
				break
			}
			out = append(out, map[string]string{"sandboxID": id, "state": "running", "templateID": "base"})
		}
		if next != "" {
			w.Header().Set("X-Next-Token", next)
		}
		w.Header().Set("X-Total-Running", "3")
		_ = json.NewEncoder(w).Encode(out)
	case "Bearer bob":
		w.Header().Set("X-Total-Running", "0")
		_, _ = w.Write([]byte(`[]`))
	default:
		w.Header().Set("Content-Type", api.ProblemContentType)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"type":"x","status":401}`))
	}
}

// TestE2BListAcrossMembersClass: E2B's sandbox listings (v1 and v2) on any
// member list the caller's sandboxes of every member in id order, the
// sandboxes' own fields passed through, X-Total-Running added up; paging
// with limit and nextToken through different members yields each sandbox
// once; another tenant, a refused caller and a malformed limit are
// answered as the member asked answers them; a member that does not
// answer is named in a header.
func TestE2BListAcrossMembersClass(t *testing.T) {
	nodes, _ := startForwarding(t, 3)
	client := &http.Client{Timeout: 30 * time.Second}
	settled := true
	list := func(entry *fwdNode, path, auth, query string) (*http.Response, []map[string]string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			req, _ := http.NewRequest("GET", entry.public.URL+path+query, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var l []map[string]string
			if resp.StatusCode == 200 {
				if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
					t.Fatal(err)
				}
			}
			resp.Body.Close()
			// A member whose record aged on a loaded machine (1.2 s
			// TTL) is left out and named; ask until all are live.
			if !settled || resp.Header.Get(cluster.UnreachableHeader) == "" || time.Now().After(deadline) {
				return resp, l
			}
		}
	}
	var want []string
	for _, n := range nodes {
		for k := range 3 {
			want = append(want, fmt.Sprintf("sb-%s-%016x", sandbox.NodeTag(n.name), k))
		}
	}
	slices.Sort(want)
	ids := func(l []map[string]string) []string {
		var out []string
		for _, s := range l {
			out = append(out, s["sandboxID"])
			if s["templateID"] != "base" {
				t.Errorf("%s lost its fields: %v", s["sandboxID"], s)
			}
		}
		return out
	}
	for _, entry := range nodes {
		for _, path := range []string{"/e2b/sandboxes", "/e2b/v2/sandboxes"} {
			resp, l := list(entry, path, "Bearer tok", "")
			if resp.StatusCode != 200 || !slices.Equal(ids(l), want) || resp.Header.Get("X-Total-Running") != "9" ||
				resp.Header.Get("X-Next-Token") != "" || resp.Header.Get(cluster.UnreachableHeader) != "" || resp.Header.Get("ETag") != "" {
				t.Fatalf("%s via %s: %d %v running=%s next=%q unreachable=%q", path, entry.name, resp.StatusCode, ids(l),
					resp.Header.Get("X-Total-Running"), resp.Header.Get("X-Next-Token"), resp.Header.Get(cluster.UnreachableHeader))
			}
			if resp, l := list(entry, path, "Bearer bob", ""); resp.StatusCode != 200 || len(l) != 0 || resp.Header.Get("X-Total-Running") != "0" {
				t.Fatalf("another tenant's %s via %s: %d %v", path, entry.name, resp.StatusCode, l)
			}
			if resp, _ := list(entry, path, "", ""); resp.StatusCode != 401 || resp.Header.Get("Content-Type") != api.ProblemContentType {
				t.Fatalf("no credentials, %s via %s: %d", path, entry.name, resp.StatusCode)
			}
			for _, q := range []string{"?limit=0", "?limit=x", "?limit=101"} {
				if resp, _ := list(entry, path, "Bearer tok", q); resp.StatusCode != 400 {
					t.Fatalf("%s%s via %s: %d", path, q, entry.name, resp.StatusCode)
				}
			}
		}
	}
	// Pages of 2, each through the next member.
	var paged []string
	token := ""
	for page := 0; page < 20; page++ {
		q := "?limit=2"
		if token != "" {
			q += "&nextToken=" + token
		}
		resp, l := list(nodes[page%len(nodes)], "/e2b/v2/sandboxes", "Bearer tok", q)
		if resp.StatusCode != 200 || len(l) > 2 {
			t.Fatalf("page %d: %d %v", page, resp.StatusCode, ids(l))
		}
		paged = append(paged, ids(l)...)
		token = resp.Header.Get("X-Next-Token")
		if token == "" {
			break
		}
	}
	if !slices.Equal(paged, want) {
		t.Fatalf("paged: %v, want %v", paged, want)
	}
	nodes[1].peer.Close()
	settled = false
	resp, l := list(nodes[0], "/e2b/sandboxes", "Bearer tok", "")
	if resp.StatusCode != 200 || len(l) != 6 || resp.Header.Get(cluster.UnreachableHeader) != "node-1" {
		t.Fatalf("with node-1 unreachable: %d %v unreachable=%q", resp.StatusCode, ids(l), resp.Header.Get(cluster.UnreachableHeader))
	}
}
