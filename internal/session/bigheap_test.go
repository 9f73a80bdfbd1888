package session

import (
	"context"
	"testing"

	"github.com/agentcloud/agentcloud/api"
)

// TestLargeSnapshotClass checks hibernation of heaps whose snapshot is
// larger than one store record (3 MiB of random bytes compress to about
// 3 MiB): explicit hibernation, a restart (Close hibernates every session),
// a heap that shrinks back under the record size, and deletion all work,
// and the globals come back.
func TestLargeSnapshotClass(t *testing.T) {
	const code = `
let keep = [];
export default { fetch(request) {
  if (new URL(request.url).pathname === "/grow") for (let i = 0; i < 48; i++) keep.push(crypto.getRandomValues(new Uint8Array(65536)));
  let sum = 0;
  for (const b of keep) sum = (sum + b[0] + b[65535]) % 1000003;
  return new Response(keep.length + ":" + sum);
} };`
	dir := t.TempDir()
	m := openManager(t, dir)
	deploy(t, m, `{"name":"heap","entry":"agent.js","limits":{"memory_mib":64,"idle_seconds":3600}}`, code)
	ctx := context.Background()
	want := mustCall(t, m, "heap", "s", "/grow")
	if err := m.Hibernate(ctx, "heap", "s"); err != nil {
		t.Fatalf("hibernate a 3 MiB heap: %v", err)
	}
	info, err := m.Session(ctx, "heap", "s")
	if err != nil || info.State != "hibernated" || info.SnapshotBytes <= int64(m.cfg.Store.MaxRecordBytes()) {
		t.Fatalf("after hibernate: %+v %v, want a snapshot larger than a record", info, err)
	}
	if got := mustCall(t, m, "heap", "s", "/"); got != want {
		t.Fatalf("after restore: %q, want %q", got, want)
	}
	// Close hibernates it again; a new manager on the same store restores it.
	if err := m.Close(ctx); err != nil {
		t.Fatalf("close with a large heap: %v", err)
	}
	_ = m.cfg.Store.Close()
	m = openManager(t, dir)
	if got := mustCall(t, m, "heap", "s", "/"); got != want {
		t.Fatalf("after restart: %q, want %q", got, want)
	}
	// A new version restarts the globals: the next snapshot fits a record,
	// goes back to the KV, and the object goes.
	deploy(t, m, `{"name":"heap","entry":"agent.js","limits":{"memory_mib":64,"idle_seconds":3600}}`, code+"// v2\n")
	if got := mustCall(t, m, "heap", "s", "/"); got != "0:0" {
		t.Fatalf("new version: %q", got)
	}
	if err := m.Hibernate(ctx, "heap", "s"); err != nil {
		t.Fatal(err)
	}
	if info, err := m.Session(ctx, "heap", "s"); err != nil || info.SnapshotBytes > int64(m.cfg.Store.MaxRecordBytes()) {
		t.Fatalf("small heap: %+v %v", info, err)
	}
	if _, err := m.heaps.Get(ctx, heapObject(sessKey{"heap", "s"})); !isNotFound(err) {
		t.Errorf("large snapshot object kept after a small snapshot: %v", err)
	}
	if got := mustCall(t, m, "heap", "s", "/"); got != "0:0" {
		t.Fatalf("after small restore: %q", got)
	}
	// Deleting a session removes its large snapshot.
	mustCall(t, m, "heap", "d", "/grow")
	if err := m.Hibernate(ctx, "heap", "d"); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(ctx, "heap", "d"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.heaps.Get(ctx, heapObject(sessKey{"heap", "d"})); !isNotFound(err) {
		t.Errorf("large snapshot object kept after delete: %v", err)
	}
	if _, err := m.Session(ctx, "heap", "d"); !api.IsKind(err, api.KindNotFound) {
		t.Errorf("deleted session: %v", err)
	}
}
