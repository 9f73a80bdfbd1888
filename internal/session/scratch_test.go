package session

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/isolate"
)

// TestScratchSessionIsolatedClass: a scratch session runs the version it
// was given (not the current one), starts with fresh state, never touches a
// production session's state, cannot be addressed by session id, and leaves
// nothing behind; SwitchVersion is a compare-and-set on the current version.
func TestScratchSessionIsolatedClass(t *testing.T) {
	ctx := context.Background()
	m := openManager(t, t.TempDir())
	v1 := deploy(t, m, counterManifest, counterJS)
	mustCall(t, m, "counter", "prod", "/incr")

	b, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(counterManifest),
		"agent.js": []byte(strings.Replace(counterJS, "hits++;", "hits += 100;", 1))})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := m.StoreVersion(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if cur, _, _ := m.CurrentVersion(ctx, "counter"); cur != v1.Digest {
		t.Fatalf("StoreVersion made the version current: %s", cur)
	}
	tmpl, err := m.BuildVersion(ctx, "counter", v2.Digest)
	if err != nil || !strings.HasPrefix(tmpl, "sha256:") {
		t.Fatalf("BuildVersion = %q, %v", tmpl, err)
	}
	// The digest (kept from the build, not read back) is the stored bytes'.
	if stored, err := m.bundles.Get(ctx, "template-"+v2.Digest); err != nil || sha256Sum(stored) != tmpl {
		t.Fatalf("template digest %s is not the stored template's (%v)", tmpl, err)
	}
	sc, err := m.NewScratch(ctx, "counter", v2.Digest, "run-x")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		resp, err := sc.Call(ctx, isolate.Request{Method: "GET", URL: "http://session/incr"})
		if err != nil || resp.Status != 200 || !strings.Contains(string(resp.Body), `"n":`+string(rune('1'+i))) {
			t.Fatalf("scratch incr %d: %v %d %s", i, err, resp.Status, resp.Body)
		}
	}
	resp, err := sc.Call(ctx, isolate.Request{Method: "GET", URL: "http://session/"})
	if err != nil || !strings.Contains(string(resp.Body), `"global":300`) {
		t.Fatalf("scratch runs the wrong version: %s %v", resp.Body, err)
	}
	if got := mustCall(t, m, "counter", "prod", "/get"); !strings.Contains(got, `"n":1`) {
		t.Fatalf("production state changed by the scratch session: %s", got)
	}
	if _, _, err := call(t, m, "counter", scratchPrefix+"run-x", "GET", "/get", ""); err == nil {
		t.Fatal("a scratch session is addressable by id")
	}
	if err := sc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if keys, _ := m.state.Keys(ctx, "counter"); len(keys) != 1 {
		t.Fatalf("state keys after Close: %v", keys)
	}
	// A fresh scratch session of the same name starts empty.
	sc2, err := m.NewScratch(ctx, "counter", v2.Digest, "run-x")
	if err != nil {
		t.Fatal(err)
	}
	resp, _ = sc2.Call(ctx, isolate.Request{Method: "GET", URL: "http://session/incr"})
	if !strings.Contains(string(resp.Body), `"n":1`) {
		t.Fatalf("second scratch not fresh: %s", resp.Body)
	}
	_ = sc2.Close(ctx)

	if err := m.SwitchVersion(ctx, "counter", v2.Digest, "sha256:"+strings.Repeat("0", 64), ""); !errors.Is(err, ErrVersionMoved) {
		t.Fatalf("switch from a stale parent = %v", err)
	}
	if err := m.SwitchVersion(ctx, "counter", v2.Digest, v1.Digest, ""); err != nil {
		t.Fatal(err)
	}
	if err := m.SwitchVersion(ctx, "counter", v2.Digest, v1.Digest, ""); err != nil {
		t.Fatalf("repeated switch = %v", err)
	}
	if got := mustCall(t, m, "counter", "prod", "/"); !strings.Contains(got, `"global":100`) {
		t.Fatalf("after switch: %s", got)
	}
}
