package session

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/store"
)

const writerJS = `export default { async fetch(request, env) {
  const u = new URL(request.url), n = Number(u.searchParams.get("n") || 0), k = Number(u.searchParams.get("k") || 1);
  const ch = u.searchParams.get("c") || "a";
  if (u.pathname === "/keys") return Response.json(Array.from((await env.state.list()).keys()));
  if (u.searchParams.has("alarm")) await env.state.setAlarm(Date.now() + 3600000);
  for (let i = 0; i < k; i++) await env.state.put("v" + i, ch.repeat(n));
  return new Response("wrote " + k);
} };`

// TestStateCommitSizeClass checks a request's state writes against the
// store's record size: writes that together (in the one write-ahead record
// that commits them atomically) exceed it are a 413 problem that is also
// store.ErrTooLarge, and nothing of the request is committed (no state, no
// alarm, no pending record); writes under it commit, whatever their bytes
// (JSON escaping does not inflate the record); the session keeps serving.
func TestStateCommitSizeClass(t *testing.T) {
	m := openManager(t, t.TempDir())
	if n := m.cfg.Store.MaxRecordBytes(); n != 1<<20 {
		t.Fatalf("store record size %d, want NATS's default 1 MiB", n)
	}
	deploy(t, m, `{"name":"writer","entry":"agent.js","limits":{"memory_mib":64,"cpu_ms":30000,"wall_ms":60000,"idle_seconds":3600}}`, writerJS)
	ctx := context.Background()
	call := func(id, q string) (string, error) {
		resp, err := m.Call(ctx, "writer", id, isolate.Request{URL: "http://x/w?" + q})
		return string(resp.Body), err
	}
	keys := func(id string) string {
		resp, err := m.Call(ctx, "writer", id, isolate.Request{URL: "http://x/keys"})
		if err != nil {
			t.Fatal(err)
		}
		return string(resp.Body)
	}
	for i, tc := range []struct {
		q    string
		fits bool
	}{
		{"n=400000&k=2", true},          // 800 KB in one record
		{"n=300000&k=3&c=%3C", true},    // 900 KB of "<", which JSON could escape sixfold
		{"n=1000000&k=1", true},         // one value, no record
		{"n=600000&k=3", false},         // 1.8 MB
		{"n=600000&k=2&alarm=1", false}, // 1.2 MB and an alarm
		{"n=100000&k=11", false},        // many small writes
	} {
		id := fmt.Sprintf("s%d", i)
		body, err := call(id, tc.q)
		if tc.fits {
			if err != nil || !strings.HasPrefix(body, "wrote") {
				t.Errorf("%s: %q %v, want committed", tc.q, body, err)
			}
			continue
		}
		p := api.AsProblem(err)
		if err == nil || p.Kind() != api.KindTooLarge || p.Status != 413 || !errors.Is(err, store.ErrTooLarge) {
			t.Errorf("%s: %q %v, want a 413 problem that is store.ErrTooLarge", tc.q, body, err)
		}
		if got := keys(id); got != "[]" {
			t.Errorf("%s: refused request left state %s", tc.q, got)
		}
		if info, err := m.Session(ctx, "writer", id); err != nil || info.Alarm != nil {
			t.Errorf("%s: refused request left an alarm: %+v %v", tc.q, info.Alarm, err)
		}
		// The session still commits what fits.
		if body, err := call(id, "n=10&k=2"); err != nil || body != "wrote 2" {
			t.Errorf("%s: then a small commit: %q %v", tc.q, body, err)
		}
	}
	// One value over the limit is refused when it is put, an error the
	// agent could catch (here it does not: agent-error, never a 500).
	if _, err := call("one", "n=1048000&k=1&c=%C3%A9"); !api.IsKind(err, api.KindAgentError) || !strings.Contains(err.Error(), "limit") {
		t.Errorf("one value over 1 MiB once UTF-8: %v, want an agent-error naming the limit", err)
	}
	if got := keys("one"); got != "[]" {
		t.Errorf("a refused value was committed: %s", got)
	}
	if pending, err := m.txns.Keys(ctx, ""); err != nil || len(pending) != 0 {
		t.Errorf("write-ahead records left behind: %q %v", pending, err)
	}
}
