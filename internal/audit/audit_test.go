package audit_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/store"
)

func TestRecordListInOrder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, store.Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(ctx, st, nil, audit.Retention{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		sess := "a/s1"
		if i%2 == 1 {
			sess = "a/s2"
		}
		if err := l.Record(ctx, api.AuditEvent{Type: audit.TypeEgress, Session: sess, Outcome: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	_ = l.Record(ctx, api.AuditEvent{Type: audit.TypeAuth, Outcome: "failure"})
	evs, _, err := l.List(ctx, audit.Filter{Session: "a/s2", Limit: 1000})
	if err != nil || len(evs) != 25 {
		t.Fatalf("session filter: %d %v", len(evs), err)
	}
	for i, e := range evs {
		if e.Outcome != fmt.Sprint(2*i+1) || e.Seq == 0 {
			t.Fatalf("order: event %d is %+v", i, e)
		}
	}
	auth, _, err := l.List(ctx, audit.Filter{Type: audit.TypeAuth})
	if err != nil || len(auth) != 1 {
		t.Fatalf("type filter: %+v %v", auth, err)
	}
	page, next, err := l.List(ctx, audit.Filter{Limit: 10})
	if err != nil || len(page) != 10 || next != 11 {
		t.Fatalf("page: %d next %d %v", len(page), next, err)
	}
	// Queued records are written before Close returns and survive a restart.
	_ = l.Record(ctx, api.AuditEvent{Type: audit.TypeLabel, Outcome: "last"})
	l.Close()
	st.Close()
	st, err = store.Open(ctx, store.Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err = audit.Open(ctx, st, nil, audit.Retention{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	last, _, err := l.List(ctx, audit.Filter{Type: audit.TypeLabel})
	if err != nil || len(last) != 1 || last[0].Outcome != "last" {
		t.Fatalf("after restart: %+v %v", last, err)
	}
}
