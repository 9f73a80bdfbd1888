package cluster

// An agent's log stream across members (logs.go). Each member keeps the
// lines of the sessions it runs and numbers them itself, so
// GET /v1/agents/A/logs reaching any member gathers every member's part:
// its own, and each other live member's over the peer link, asked with
// the caller's credentials (each member authorizes the caller as it would
// for its own stream). Where a reader stands is one position per member,
// carried in an opaque cursor (api.LogCursor). Members that do not answer
// are named (UnreachableHeader; on a followed stream also in the stream,
// api.LogLevelUnreachable), never silently left out.

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/agentcloud/agentcloud/api"
)

// maxLogRead is the most entries one gathered read answers (the session
// manager's MaxLogRead, which each member applies to its own part).
const maxLogRead = 1000

// agentLogsOf reads the stream of an agent's whole log stream,
// GET /v1/agents/A/logs (stream A) or /v1/agents/A/preview/logs (its
// preview's, stream A/preview: what its cursors are bound to), without
// session (a session's stream goes to its owner, sessionLogsOf) and
// without after (a position on one member: the member asked answers
// alone).
func agentLogsOf(r *http.Request) (stream string, ok bool) {
	rest, found := strings.CutPrefix(r.URL.Path, "/v1/agents/")
	if !found || r.Method != http.MethodGet {
		return "", false
	}
	stream, found = strings.CutSuffix(rest, "/logs")
	agent := strings.TrimSuffix(stream, "/preview")
	if !found || agent == "" || strings.Contains(agent, "/") {
		return "", false
	}
	q := r.URL.Query()
	return stream, !q.Has("session") && !q.Has("after")
}

// gather calls ask for every other member that is live, at once, and
// returns the members that were not live or whose ask failed, sorted.
func (f *Forwarder) gather(ask func(node, addr string) error) []string {
	var (
		mu          sync.Mutex
		unreachable []string
		wg          sync.WaitGroup
	)
	for _, mi := range f.Owners.Members() {
		if mi.Node == f.Node {
			continue
		}
		if !mi.Live || mi.Addr == "" {
			unreachable = append(unreachable, mi.Node)
			continue
		}
		wg.Go(func() {
			if err := ask(mi.Node, mi.Addr); err != nil {
				mu.Lock()
				unreachable = append(unreachable, mi.Node)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(unreachable)
	return unreachable
}

// logPart is one member's answer to a gathered read.
type logPart struct {
	node string
	list api.LogList
}

// serveAgentLogs answers an agent's log stream gathered from every member.
func (f *Forwarder) serveAgentLogs(w http.ResponseWriter, r *http.Request, agent string) {
	if follow, _ := strconv.ParseBool(r.URL.Query().Get("follow")); follow {
		f.followAgentLogs(w, r, agent)
		return
	}
	r.Header.Del("If-None-Match")
	local := &bufferedResponse{header: http.Header{}}
	f.Local.ServeHTTP(local, r)
	var own api.LogList
	if local.status != http.StatusOK || json.Unmarshal(local.body.Bytes(), &own) != nil {
		local.replay(w) // refused, or a malformed query or cursor: as this member answers it
		return
	}
	parts := []logPart{{node: f.Node, list: own}}
	var mu sync.Mutex
	unreachable := f.gather(func(node, addr string) error {
		b, _, err := f.peerGet(r, addr, r.URL.RequestURI())
		if err != nil {
			return err
		}
		var l api.LogList
		if err := json.Unmarshal(b, &l); err != nil {
			return err
		}
		mu.Lock()
		parts = append(parts, logPart{node: node, list: l})
		mu.Unlock()
		return nil
	})
	limit := maxLogRead
	if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n > 0 && n < limit {
		limit = n
	}
	merged := f.mergeLogs(agent, r.URL.Query().Get("cursor"), parts, limit)
	merged.Unreachable = unreachable
	body, _ := json.Marshal(merged)
	for k, vs := range local.header {
		w.Header()[k] = vs
	}
	w.Header().Del("ETag")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	if len(unreachable) > 0 {
		w.Header().Set(UnreachableHeader, strings.Join(unreachable, ","))
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(body, '\n'))
}

// mergeLogs joins the members' parts oldest first, keeps the first limit
// entries, and says where each member's reader stands after them: a member
// all of whose entries were kept stands where it said (its Next), one cut
// short after the last entry kept of it; members not heard keep the
// position the request's cursor gave them.
func (f *Forwarder) mergeLogs(agent, cursor string, parts []logPart, limit int) api.LogList {
	pos := f.knownPositions(agent, cursor)
	out := api.LogList{Entries: []api.LogEntry{}}
	for _, p := range parts {
		for i := range p.list.Entries {
			p.list.Entries[i].Node = p.node
		}
		out.Entries = append(out.Entries, p.list.Entries...)
		out.Missed += p.list.Missed
	}
	slices.SortStableFunc(out.Entries, func(a, b api.LogEntry) int {
		return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.Node, b.Node), cmp.Compare(a.Seq, b.Seq))
	})
	var cut []api.LogEntry
	if len(out.Entries) > limit {
		out.Entries, cut = out.Entries[:limit], out.Entries[limit:]
	}
	for _, p := range parts {
		pos[p.node] = p.list.Next
	}
	// A member with entries past the cut stands before its first one cut.
	for _, e := range slices.Backward(cut) {
		pos[e.Node] = e.Seq - 1
	}
	out.Next = pos[f.Node]
	out.Cursor = api.EncodeLogCursor(api.LogCursor{Agent: agent, Pos: pos})
	return out
}

// knownPositions are the request cursor's positions of the members this
// member knows (a cursor naming a member that left forgets it).
func (f *Forwarder) knownPositions(agent, cursor string) map[string]uint64 {
	pos := map[string]uint64{}
	if cursor == "" {
		return pos
	}
	c, err := api.DecodeLogCursor(agent, cursor)
	if err != nil {
		return pos // the entry member refused it already
	}
	for _, mi := range f.Owners.Members() {
		if n, ok := c.Pos[mi.Node]; ok {
			pos[mi.Node] = n
		}
	}
	if n, ok := c.Pos[f.Node]; ok {
		pos[f.Node] = n
	}
	return pos
}

// cursorQuery is r's query with cursor set to c (after and follow kept).
func cursorQuery(r *http.Request, c string) string {
	q := r.URL.Query()
	q.Set("cursor", c)
	return r.URL.Path + "?" + q.Encode()
}
