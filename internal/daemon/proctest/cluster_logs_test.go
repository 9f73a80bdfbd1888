package proctest_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
)

// clusterLogs reads agent's whole log stream through c until no member is
// missing from it (a loaded machine may let a member's record age).
func clusterLogs(t *testing.T, c *client.Client, agent string, q client.LogQuery) *api.LogList {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		l, err := c.Logs(ctx, agent, q)
		if err != nil {
			t.Fatalf("logs of %s via %s: %v", agent, c.Server(), err)
		}
		if len(l.Unreachable) == 0 {
			return l
		}
		if ctx.Err() != nil {
			t.Fatalf("logs of %s via %s: members %v do not answer", agent, c.Server(), l.Unreachable)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func logKey(e api.LogEntry) string { return fmt.Sprintf("%s/%d", e.Node, e.Seq) }

// checkClusterLogs (part of TestClusterShared/CallAgentClass, on its cluster):
// agent relay's log stream, read through any member, holds the lines of
// its sessions on every member (sessions[i] runs on member i); read on a
// few at a time with the cursor, through a different member each time, it
// yields the same entries once each; followed through one member it
// brings new lines of sessions on the others; another tenant and a
// malformed cursor are refused on every member (clusterLogsNameDeadMember
// kills a member after it).
func checkClusterLogs(t *testing.T, nodes []*clusterNode, carol []*client.Client, bob *client.Client, sessions []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	defer func() { t.Logf("cluster log checks took %v", time.Since(start).Round(time.Millisecond)) }()
	full := clusterLogs(t, carol[0], "relay", client.LogQuery{})
	var want []string
	nodesSeen := map[string]bool{}
	for _, e := range full.Entries {
		want = append(want, logKey(e))
		nodesSeen[e.Node] = true
	}
	for _, nd := range nodes {
		if !nodesSeen[nd.name] {
			t.Fatalf("relay's logs lack member %s: %v", nd.name, want)
		}
	}
	for i := range nodes {
		var got []string
		for _, e := range clusterLogs(t, carol[i], "relay", client.LogQuery{}).Entries {
			got = append(got, logKey(e))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("relay's logs via %s: %v, via n0: %v", nodes[i].name, got, want)
		}
	}
	var paged []string
	q := client.LogQuery{Limit: 3}
	for page := 0; len(paged) <= len(want); page++ {
		l := clusterLogs(t, carol[page%len(nodes)], "relay", q)
		if len(l.Entries) == 0 {
			break
		}
		for _, e := range l.Entries {
			paged = append(paged, logKey(e))
		}
		q.Cursor = l.Cursor
	}
	if !slices.Equal(paged, want) {
		t.Fatalf("relay's logs in pages of 3: %v, want %v", paged, want)
	}
	for i, nd := range nodes {
		if _, err := bob.Logs(ctx, "relay", client.LogQuery{}); !api.IsKind(err, api.KindForbidden) && !api.IsKind(err, api.KindNotFound) {
			t.Errorf("bob reads carol's logs: %v", err)
		}
		if _, err := carol[i].Logs(ctx, "relay", client.LogQuery{Cursor: "c1.forged"}); !api.IsKind(err, api.KindInvalidQuery) {
			t.Errorf("a forged cursor via %s: %v", nd.name, err)
		}
		other := api.EncodeLogCursor(api.LogCursor{Agent: "arelay", Pos: map[string]uint64{"n0": 1}})
		if _, err := carol[i].Logs(ctx, "relay", client.LogQuery{Cursor: other}); !api.IsKind(err, api.KindInvalidQuery) {
			t.Errorf("another agent's cursor via %s: %v", nd.name, err)
		}
	}

	// Follow through n0 from the end; new lines come from n1 and n2.
	got := make(chan api.LogEntry, 16)
	fctx, fcancel := context.WithCancel(ctx)
	defer fcancel()
	go func() {
		_ = carol[0].FollowLogs(fctx, "relay", client.LogQuery{Cursor: full.Cursor}, func(e api.LogEntry) error {
			got <- e
			return nil
		})
	}()
	for _, id := range sessions[1:] {
		if code, body, _, err := relayCall(ctx, carol[0], "relay", id, "GET", ""); err != nil || code != 200 {
			t.Fatalf("GET relay/%s: %d %s %v", id, code, body, err)
		}
	}
	from := map[string]bool{}
	for len(from) < 2 {
		select {
		case e := <-got:
			if e.Level != "log" || e.Text != "here" || e.Cursor == "" {
				t.Fatalf("followed %+v", e)
			}
			from[e.Node] = true
		case <-ctx.Done():
			t.Fatalf("the followed stream brought lines of %v, want n1 and n2", from)
		}
	}
	if !from["n1"] || !from["n2"] {
		t.Fatalf("followed lines of %v, want n1 and n2", from)
	}
}

// clusterLogsNameDeadMember (the last check on TestClusterShared's
// cluster): agent relay's log stream, followed through n0, and its list
// name n2 once n2 dies (kill -9).
func clusterLogsNameDeadMember(t *testing.T, nodes []*clusterNode) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	carol := memberUserClient(t, nodes, 0, "user:carol")
	full := clusterLogs(t, carol, "relay", client.LogQuery{})
	got := make(chan api.LogEntry, 16)
	fctx, fcancel := context.WithCancel(ctx)
	defer fcancel()
	go func() {
		_ = carol.FollowLogs(fctx, "relay", client.LogQuery{Cursor: full.Cursor}, func(e api.LogEntry) error {
			select {
			case got <- e:
			case <-fctx.Done():
			}
			return nil
		})
	}()
	nodes[2].kill9(t)
	for named := false; !named; {
		select {
		case e := <-got:
			named = e.Level == api.LogLevelUnreachable && e.Node == "n2"
		case <-ctx.Done():
			t.Fatal("the followed stream did not name n2 after it died")
		}
	}
	for {
		l, err := carol.Logs(ctx, "relay", client.LogQuery{})
		if err == nil && slices.Contains(l.Unreachable, "n2") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the list after n2 died: %+v %v", l, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
