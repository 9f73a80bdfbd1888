package daemon_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/client"
	"github.com/agentcloud/agentcloud/internal/config"
)

const logAgentJS = `
export default { async fetch(request) {
  const p = new URL(request.url).pathname;
  if (p === "/throw") throw new Error("kaboom");
  console.log("hello " + p);
  return new Response("ok");
} };`

func callOK(t *testing.T, c *client.Client, agent, id, path string) {
	t.Helper()
	resp, err := c.Call(context.Background(), agent, id, "GET", path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// TestAgentLogsRouteClass: GET /v1/agents/{agent}/logs serves an agent's
// console output and request errors to whoever may read its sessions
// (Cedar session.read), as a list or followed (NDJSON or server-sent
// events); another tenant reaches nothing of it, by any form of the
// route; malformed queries are 4xx problems.
func TestAgentLogsRouteClass(t *testing.T) {
	d, admin := startDaemonWith(t, config.Default(), nil)
	ctx := context.Background()
	alice, bob := userClient(t, d, admin, "user:alice"), userClient(t, d, admin, "user:bob")
	if err := deployJS(alice, `{"name":"chatty","entry":"agent.js"}`, logAgentJS); err != nil {
		t.Fatal(err)
	}
	callOK(t, alice, "chatty", "s1", "/one")
	callOK(t, alice, "chatty", "s2", "/throw")
	l, err := alice.Logs(ctx, "chatty", client.LogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 2 || l.Entries[0].Text != "hello /one" || l.Entries[1].Level != "exception" ||
		!strings.Contains(l.Entries[1].Text, "kaboom") || l.Entries[1].Session != "s2" {
		t.Fatalf("logs: %+v", l.Entries)
	}
	if l, err := alice.Logs(ctx, "chatty", client.LogQuery{Session: "s1"}); err != nil || len(l.Entries) != 1 {
		t.Fatalf("session filter: %+v %v", l, err)
	}
	// Entries name the node; the cursor continues where the answer ends.
	if l.Entries[0].Node == "" || l.Cursor == "" {
		t.Fatalf("node %q cursor %q", l.Entries[0].Node, l.Cursor)
	}
	if more, err := alice.Logs(ctx, "chatty", client.LogQuery{Cursor: l.Cursor}); err != nil || len(more.Entries) != 0 || more.Cursor != l.Cursor {
		t.Fatalf("after the cursor: %+v %v", more, err)
	}

	// Following: the kept lines, then a new one as it comes.
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	got := make(chan api.LogEntry, 10)
	done := make(chan error, 1)
	go func() {
		done <- alice.FollowLogs(fctx, "chatty", client.LogQuery{After: l.Next}, func(e api.LogEntry) error {
			got <- e
			return nil
		})
	}()
	time.Sleep(100 * time.Millisecond) // let the follower subscribe; a line before that is read from the stream anyway
	callOK(t, alice, "chatty", "s3", "/two")
	select {
	case e := <-got:
		if e.Text != "hello /two" || e.Session != "s3" || e.Seq != l.Next+1 {
			t.Fatalf("followed %+v", e)
		}
	case <-fctx.Done():
		t.Fatal("follower saw nothing")
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("follow ended: %v", err)
	}

	// Server-sent events.
	req, _ := http.NewRequest("GET", "http://"+d.Addr()+"/v1/agents/chatty/logs?follow=true", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+tokenOf(t, admin, "user:alice"))
	sctx, scancel := context.WithTimeout(ctx, time.Minute)
	defer scancel()
	resp, err := http.DefaultClient.Do(req.WithContext(sctx))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("SSE: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	first, _ := br.ReadString('\n')
	if want := fmt.Sprintf("id: %d\n", l.Entries[0].Seq); first != want {
		t.Fatalf("SSE starts %q, want %q (the first entry)", first, want)
	}
	scancel()
	resp.Body.Close()

	// Another tenant: refused by every form; unknown agents are 404.
	for _, q := range []client.LogQuery{{}, {Session: "s1"}, {After: 1}} {
		if _, err := bob.Logs(ctx, "chatty", q); !api.IsKind(err, api.KindForbidden) && !api.IsKind(err, api.KindNotFound) {
			t.Errorf("bob reads alice's logs %+v: %v", q, err)
		}
		err := bob.FollowLogs(ctx, "chatty", q, func(api.LogEntry) error { return errors.New("got a line") })
		if !api.IsKind(err, api.KindForbidden) && !api.IsKind(err, api.KindNotFound) {
			t.Errorf("bob follows alice's logs %+v: %v", q, err)
		}
	}
	if _, err := admin.Logs(ctx, "nosuchagent", client.LogQuery{}); !api.IsKind(err, api.KindNotFound) {
		t.Errorf("unknown agent: %v", err)
	}

	// Malformed queries.
	for _, raw := range []string{"after=-1", "after=x", "limit=1.5", "follow=maybe", "session=a%2Fb", "session=" + strings.Repeat("s", 300),
		"nope=1", "after=1&after=2", "after=99999999999999999999999", "cursor=garbage", "cursor=c1.e30",
		"cursor=" + api.EncodeLogCursor(api.LogCursor{Agent: "other", Pos: map[string]uint64{}}),
		"after=1&cursor=" + api.EncodeLogCursor(api.LogCursor{Agent: "chatty", Pos: map[string]uint64{}}),
		"follow=true&cursor=garbage"} {
		resp, err := admin.Raw(ctx, "GET", "/v1/agents/chatty/logs?"+raw, nil, "")
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: %d", raw, resp.StatusCode)
			continue
		}
		if p := api.AsProblem(err); p == nil || p.Status < 400 || p.Status >= 500 {
			t.Errorf("%s: %v", raw, err)
		}
	}
}

func tokenOf(t *testing.T, admin *client.Client, subject string) string {
	t.Helper()
	tok, err := admin.CreateToken(context.Background(), api.TokenRequest{Subject: subject, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}
