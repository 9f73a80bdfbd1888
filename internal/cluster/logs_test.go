package cluster_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/cluster"
)

// testLogEntries is how many entries each member keeps of agent chatty.
const testLogEntries = 3

// serveTestLogs is a member's own GET /v1/agents/chatty/logs in the
// forwarding harness, as the session API answers it: entries 1..3 of
// member i (their times interleave across members), after the position
// its cursor gives this member, at most limit; followed, the entries as
// NDJSON and then nothing until the client leaves. "Bearer tok" may read,
// "Bearer bob" is refused (403), no credentials 401.
func serveTestLogs(w http.ResponseWriter, r *http.Request, name string, i int) {
	w.Header().Set("Served-By", name)
	w.Header().Set("Saw-Forwarded", r.Header.Get(cluster.ForwardedHeader))
	problem := func(status int, err error) {
		w.Header().Set("Content-Type", api.ProblemContentType)
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"type":"x","status":%d,"detail":%q}`, status, err)
	}
	switch r.Header.Get("Authorization") {
	case "Bearer tok":
	case "Bearer bob":
		problem(http.StatusForbidden, fmt.Errorf("forbidden"))
		return
	default:
		problem(http.StatusUnauthorized, fmt.Errorf("unauthenticated"))
		return
	}
	q := r.URL.Query()
	var after uint64
	if c := q.Get("cursor"); c != "" {
		cur, err := api.DecodeLogCursor("chatty", c)
		if err != nil {
			problem(http.StatusBadRequest, err)
			return
		}
		after = cur.Pos[name]
	}
	limit := 1000
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 {
		limit = n
	}
	l := api.LogList{Entries: []api.LogEntry{}, Next: after}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for seq := after + 1; seq <= testLogEntries && len(l.Entries) < limit; seq++ {
		l.Entries = append(l.Entries, api.LogEntry{Seq: seq, Time: base.Add(time.Duration(int(seq)*10+i) * time.Millisecond),
			Agent: "chatty", Session: "s", Level: "log", Text: fmt.Sprintf("%s %d", name, seq), Node: name})
		l.Next = seq
	}
	l.Cursor = api.EncodeLogCursor(api.LogCursor{Agent: "chatty", Pos: map[string]uint64{name: l.Next}})
	if follow, _ := strconv.ParseBool(q.Get("follow")); !follow {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(l)
		return
	}
	w.Header().Set("Content-Type", api.LogContentType)
	for _, e := range l.Entries {
		_ = json.NewEncoder(w).Encode(e)
	}
	http.NewResponseController(w).Flush()
	<-r.Context().Done()
}

// TestAgentLogsAcrossMembersClass: an agent's log stream read through any
// member holds every member's entries, oldest first, each naming its
// member; reading on with the answer's cursor, a few at a time and through
// a different member each time, yields every entry exactly once;
// following does too, and names a member that stops answering in the
// stream; a malformed or foreign cursor, another tenant and a caller
// without credentials are answered as the member asked answers them; a
// member that does not answer is named in a header.
func TestAgentLogsAcrossMembersClass(t *testing.T) {
	nodes, _ := startForwarding(t, 3)
	client := &http.Client{Timeout: 30 * time.Second}
	get := func(entry *fwdNode, auth, query string) (*http.Response, api.LogList) {
		t.Helper()
		req, _ := http.NewRequest("GET", entry.public.URL+"/v1/agents/chatty/logs"+query, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		req.Header.Set(cluster.ForwardedHeader, "node-evil")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var l api.LogList
		if resp.StatusCode == 200 {
			if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
				t.Fatal(err)
			}
		}
		if strings.Contains(resp.Header.Get("Saw-Forwarded"), "evil") {
			t.Fatal("a client's forwarded-by header reached a member")
		}
		return resp, l
	}
	// getAll asks until every member is live (1.2 s TTL on a loaded machine).
	getAll := func(entry *fwdNode, query string) api.LogList {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			resp, l := get(entry, "Bearer tok", query)
			if resp.StatusCode != 200 {
				t.Fatalf("logs%s via %s: %d", query, entry.name, resp.StatusCode)
			}
			if resp.Header.Get(cluster.UnreachableHeader) == "" {
				return l
			}
			if time.Now().After(deadline) {
				t.Fatalf("logs%s via %s: unreachable %s", query, entry.name, resp.Header.Get(cluster.UnreachableHeader))
			}
		}
	}
	key := func(e api.LogEntry) string { return fmt.Sprintf("%s/%d", e.Node, e.Seq) }
	var want []string
	for seq := 1; seq <= testLogEntries; seq++ {
		for _, n := range nodes {
			want = append(want, fmt.Sprintf("%s/%d", n.name, seq))
		}
	}
	for _, entry := range nodes {
		l := getAll(entry, "")
		var got []string
		for _, e := range l.Entries {
			got = append(got, key(e))
		}
		if !slices.Equal(got, want) || l.Cursor == "" {
			t.Fatalf("via %s: %v cursor %q, want %v", entry.name, got, l.Cursor, want)
		}
		// Nothing after the end.
		if l := getAll(entry, "?cursor="+url.QueryEscape(l.Cursor)); len(l.Entries) != 0 {
			t.Fatalf("via %s after the end: %+v", entry.name, l.Entries)
		}
	}
	// Pages of 2, each through the next member.
	var got []string
	cursor := ""
	for page := 0; page < 20; page++ {
		q := "?limit=2"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		l := getAll(nodes[page%len(nodes)], q)
		if len(l.Entries) == 0 {
			break
		}
		if len(l.Entries) > 2 {
			t.Fatalf("page %d: %d entries, limit 2", page, len(l.Entries))
		}
		for _, e := range l.Entries {
			got = append(got, key(e))
		}
		cursor = l.Cursor
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged: %v, want %v", got, want)
	}

	// Refusals, as the member asked answers them.
	foreign := api.EncodeLogCursor(api.LogCursor{Agent: "other", Pos: map[string]uint64{"node-0": 1}})
	for _, entry := range nodes {
		for _, c := range []struct {
			auth, query string
			status      int
		}{{"Bearer tok", "?cursor=garbage", 400}, {"Bearer tok", "?cursor=" + url.QueryEscape(foreign), 400},
			{"Bearer tok", "?follow=true&cursor=garbage", 400}, {"Bearer bob", "", 403}, {"Bearer bob", "?follow=true", 403},
			{"", "", 401}, {"", "?follow=true", 401}} {
			if resp, _ := get(entry, c.auth, c.query); resp.StatusCode != c.status || resp.Header.Get("Content-Type") != api.ProblemContentType {
				t.Errorf("%q %s via %s: %d %s, want %d", c.auth, c.query, entry.name, resp.StatusCode, resp.Header.Get("Content-Type"), c.status)
			}
		}
	}

	// Following through node-0 from node-1's second entry on.
	start := api.EncodeLogCursor(api.LogCursor{Agent: "chatty", Pos: map[string]uint64{"node-1": 1}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		resp *http.Response
		err  error
	)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		req, _ := http.NewRequestWithContext(ctx, "GET", nodes[0].public.URL+"/v1/agents/chatty/logs?follow=true&cursor="+url.QueryEscape(start), nil)
		req.Header.Set("Authorization", "Bearer tok")
		if resp, err = http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != api.LogContentType {
			t.Fatalf("follow: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if resp.Header.Get(cluster.UnreachableHeader) == "" {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("follow: unreachable %s", resp.Header.Get(cluster.UnreachableHeader))
		}
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	next := func() api.LogEntry {
		t.Helper()
		if !sc.Scan() {
			t.Fatalf("the followed stream ended: %v", sc.Err())
		}
		var e api.LogEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s: %v", sc.Bytes(), err)
		}
		return e
	}
	seen := map[string]bool{}
	var last api.LogEntry
	for range 2*testLogEntries + testLogEntries - 1 {
		last = next()
		if seen[key(last)] || last.Node == "node-1" && last.Seq == 1 || last.Cursor == "" {
			t.Fatalf("followed %+v (seen %v)", last, seen)
		}
		seen[key(last)] = true
	}
	// The last cursor resumes after everything read.
	if l := getAll(nodes[2], "?cursor="+url.QueryEscape(last.Cursor)); len(l.Entries) != 0 {
		t.Fatalf("after the followed cursor: %+v", l.Entries)
	}
	// node-2's peer link goes down: the stream says so, once, and the
	// list names it in its header.
	nodes[2].peer.Close()
	if e := next(); e.Level != api.LogLevelUnreachable || e.Node != "node-2" || e.Cursor == "" {
		t.Fatalf("after node-2 went down: %+v", e)
	}
	if resp, l := get(nodes[0], "Bearer tok", ""); resp.StatusCode != 200 || resp.Header.Get(cluster.UnreachableHeader) != "node-2" ||
		len(l.Entries) != 2*testLogEntries || !slices.Equal(l.Unreachable, []string{"node-2"}) {
		t.Fatalf("with node-2 unreachable: %d unreachable=%q %v %d entries", resp.StatusCode, resp.Header.Get(cluster.UnreachableHeader), l.Unreachable, len(l.Entries))
	}
	// A stream begun while node-2 is down names it first.
	req, _ := http.NewRequestWithContext(ctx, "GET", nodes[1].public.URL+"/v1/agents/chatty/logs?follow=true", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	sc = bufio.NewScanner(resp2.Body)
	if e := next(); resp2.Header.Get(cluster.UnreachableHeader) != "node-2" || e.Level != api.LogLevelUnreachable || e.Node != "node-2" {
		t.Fatalf("a stream begun with node-2 down: unreachable=%q, first %+v", resp2.Header.Get(cluster.UnreachableHeader), e)
	}
	for range 2 * testLogEntries {
		if e := next(); e.Node == "node-2" || e.Level != "log" {
			t.Fatalf("a stream begun with node-2 down: %+v", e)
		}
	}
}
