package clusterhttp_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/cluster"
	"github.com/agentcloud/agentcloud/internal/cluster/clusterhttp"
	"github.com/agentcloud/agentcloud/internal/httpapi"
	"github.com/agentcloud/agentcloud/internal/store"
)

// admins: the bearer token "admin" is the administrator, any other token
// a user; only the administrator may act (as the default policy has it).
type admins struct{}

func (admins) Authenticate(r *http.Request) (httpapi.Principal, error) {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && tok != "" {
		kind := "user"
		if tok == "admin" {
			kind = "admin"
		}
		return httpapi.Principal{ID: tok, Kind: kind}, nil
	}
	return httpapi.Principal{}, api.Errorf(api.KindUnauthenticated, "no token")
}

func (admins) Authorize(_ context.Context, p httpapi.Principal, action string, _ httpapi.Resource) error {
	if p.ID == "admin" {
		return nil
	}
	return api.Errorf(api.KindForbidden, "%s may not %s", p.ID, action)
}

func call(t *testing.T, srv *httptest.Server, method, path, token string) (*http.Response, api.Problem, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf strings.Builder
	_, _ = io.Copy(&buf, resp.Body)
	var p api.Problem
	_ = json.Unmarshal([]byte(buf.String()), &p)
	return resp, p, []byte(buf.String())
}

// TestClusterRoutesClass: outside a cluster both routes answer 409 naming
// the flag; before the member runs, 503 with Retry-After; once it runs,
// the status lists the member owning every partition; a user is refused.
func TestClusterRoutesClass(t *testing.T) {
	var member atomic.Pointer[cluster.Member]
	serve := func(cfg clusterhttp.Config) *httptest.Server {
		rt := httpapi.NewRouter(httpapi.Options{Auth: admins{}, Authz: admins{}, MaxBodyBytes: 1 << 16})
		clusterhttp.New(cfg).Routes(rt)
		srv := httptest.NewServer(rt)
		t.Cleanup(srv.Close)
		return srv
	}
	alone := serve(clusterhttp.Config{Node: "n1"})
	joining := serve(clusterhttp.Config{Cluster: "c", Node: "n1", Replicas: 1, Member: member.Load})
	for _, path := range []string{"GET /v1/cluster/status", "POST /v1/node/drain"} {
		method, p, _ := strings.Cut(path, " ")
		resp, prob, _ := call(t, alone, method, p, "admin")
		if resp.StatusCode != http.StatusConflict || !strings.Contains(prob.Detail, "--cluster") {
			t.Errorf("%s outside a cluster: %d %+v", path, resp.StatusCode, prob)
		}
		resp, _, _ = call(t, joining, method, p, "admin")
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s before the member runs: %d, Retry-After %q", path, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if resp, _, _ := call(t, joining, method, p, "mallory"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s by a user: %d", path, resp.StatusCode)
		}
	}

	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	kv, err := st.KV(ctx, "cluster", store.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cluster.New(cluster.Config{Node: "n1", Addr: "127.0.0.1:1", KV: kv, Partitions: 8,
		Heartbeat: 50 * time.Millisecond, TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	member.Store(m)
	var st1 api.ClusterStatus
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, _, body := call(t, joining, "GET", "/v1/cluster/status", "admin")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status: %d %s", resp.StatusCode, body)
		}
		st1 = api.ClusterStatus{}
		if err := json.Unmarshal(body, &st1); err != nil {
			t.Fatal(err)
		}
		// Partitions may be owned a moment before the member's own
		// record lists it: wait for both.
		if st1.Unowned == 0 && len(st1.Members) == 1 && st1.Members[0].Healthy || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st1.Cluster != "c" || st1.Node != "n1" || st1.Partitions != 8 || st1.Unowned != 0 ||
		len(st1.Members) != 1 || st1.Members[0].Node != "n1" || st1.Members[0].Partitions != 8 || !st1.Members[0].Healthy {
		t.Fatalf("status of a one-member cluster: %+v", st1)
	}
}
