package daemon_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
)

// TestSessionStateKeysClass: GET .../sessions/{session}/state lists a
// session's state keys with their sizes, never values; another tenant is
// refused; bad limits and prefixes are 400 naming the parameter.
func TestSessionStateKeysClass(t *testing.T) {
	d, admin := startDaemon(t)
	ctx := context.Background()
	deployCounter(t, admin)
	for range 2 {
		res, err := admin.Call(ctx, "counter", "s1", "GET", "/", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	got, err := admin.SessionStateKeys(ctx, "counter", "s1", "", 0)
	if err != nil || len(got.Keys) != 1 || got.Keys[0] != (api.SessionStateKey{Key: "n", Bytes: 1}) {
		t.Fatalf("state keys: %+v %v", got, err)
	}
	if got, err := admin.SessionStateKeys(ctx, "counter", "s1", "x", 0); err != nil || len(got.Keys) != 0 {
		t.Fatalf("state keys with prefix x: %+v %v", got, err)
	}
	bob := userClient(t, d, admin, "user:bob")
	if _, err := bob.SessionStateKeys(ctx, "counter", "s1", "", 0); !api.IsKind(err, api.KindForbidden) && !api.IsKind(err, api.KindNotFound) {
		t.Errorf("bob lists the administrator's session state: %v", err)
	}
	base := "/v1/agents/counter/sessions/s1/state"
	for _, q := range []string{"?limit=0", "?limit=1001", "?limit=x", "?limit=1&limit=2", "?prefix=" + strings.Repeat("k", 2000), "?value=1"} {
		err := admin.Do(ctx, http.MethodGet, base+q, nil, nil)
		if !api.IsKind(err, api.KindInvalidQuery) && !api.IsKind(err, api.KindInvalidID) {
			t.Errorf("GET %s%s: %v, want a 400", base, q[:min(len(q), 30)], err)
		}
	}
}
