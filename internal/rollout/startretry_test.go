package rollout

import (
	"context"
	"sync"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/ledger"
	"github.com/agentcloud/agentcloud/internal/store"
)

// rewriteKV is the controller's real KV with another member's rewrite of
// key (the same value, a new revision: its ledger bookkeeping) injected
// just before each of this member's next n compare-and-set writes of it.
type rewriteKV struct {
	store.KV
	key string

	mu sync.Mutex
	n  int
}

func (k *rewriteKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	k.mu.Lock()
	inject := key == k.key && k.n > 0
	if inject {
		k.n--
	}
	k.mu.Unlock()
	if inject {
		e, err := k.KV.Get(ctx, key)
		if err != nil {
			return 0, err
		}
		if _, err := k.KV.Put(ctx, key, e.Value); err != nil {
			return 0, err
		}
	}
	return k.KV.Update(ctx, key, value, rev)
}

// TestStartRetriesForeignRewriteClass: when another member rewrites the
// agent's rollout record between a start's read and its write, the start
// tries again from a fresh read and succeeds; after three such losses it
// answers with a conflict. Either way the ledger holds one change entry
// for the start, not one per attempt.
func TestStartRetriesForeignRewriteClass(t *testing.T) {
	ctx := context.Background()
	e := open(t, t.TempDir(), true, defaultThresholds, 0)
	e.deploy(t, "v1")
	v2 := e.add(t, "v2", "")
	st, err := e.c.Start(ctx, Start{Agent: "shop", Version: v2, Steps: []bundle.RolloutStep{{Percent: 100}}})
	if err != nil {
		t.Fatal(err)
	}
	if cur, err := e.c.read(ctx, "shop"); err != nil || cur.rev == 0 || st.Phase.Active() {
		t.Fatalf("the first rollout did not end (%+v, %v): the record the test rewrites is not there", st, err)
	}
	kv := &rewriteKV{KV: e.c.kv, key: store.Key("shop")}
	e.c.kv = kv
	changes := func(version string) int {
		n := 0
		for i := range e.l.Size() {
			r, err := e.l.Entry(ctx, i)
			if err != nil {
				t.Fatal(err)
			}
			if r.Entry.Type == ledger.TypeChange && r.Entry.Change.BundleDigest == ledger.Digest(version) {
				n++
			}
		}
		return n
	}

	v3 := e.add(t, "v3", "")
	kv.n = 1
	st, err = e.c.Start(ctx, Start{Agent: "shop", Version: v3, Steps: threeSteps})
	if err != nil {
		t.Fatalf("a start that lost one write to another member's rewrite: %v", err)
	}
	if st.Canary != v3 || !st.Phase.Active() {
		t.Fatalf("started %+v, want v3 rolling out", st)
	}
	if kv.n != 0 {
		t.Fatal("no rewrite was injected: the test checks nothing")
	}
	if n := changes(v3); n != 1 {
		t.Fatalf("%d change entries for one start, want 1", n)
	}
	if _, err := e.c.Rollback(ctx, "shop", "", "test"); err != nil {
		t.Fatal(err)
	}

	v4 := e.add(t, "v4", "")
	kv.n = 3
	_, err = e.c.Start(ctx, Start{Agent: "shop", Version: v4, Steps: threeSteps})
	wantProblem(t, err, api.KindConflict, "")
	if n := changes(v4); n != 1 {
		t.Fatalf("%d change entries after three lost attempts, want 1", n)
	}
}
