package session

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
)

func deployAs(t testing.TB, m *Manager, owner, name, code string) {
	t.Helper()
	b, err := bundle.FromFiles(map[string][]byte{"agent.json": []byte(`{"name":"` + name + `","entry":"agent.js","limits":{"cpu_ms":20000,"wall_ms":60000}}`), "agent.js": []byte(code)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Deploy(context.Background(), Principal{ID: owner, Kind: "user"}, b); err != nil {
		t.Fatal(err)
	}
}

func readLogs(t testing.TB, m *Manager, agent, sess string) api.LogList {
	t.Helper()
	l, _, err := m.Logs(context.Background(), agent, sess, 0, MaxLogRead)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

const loggerJS = `
export default { async fetch(request) {
  const u = new URL(request.url);
  const n = Number(u.searchParams.get("n") || "1");
  const size = Number(u.searchParams.get("size") || "10");
  const ch = u.searchParams.get("ch") || "x";
  if (u.pathname === "/throw") throw new Error("boom " + ch);
  if (u.pathname === "/spin") { while (true) {} }
  for (let i = 0; i < n; i++) console.log(ch.repeat(size));
  return new Response("ok");
} };`

// TestLogStreamBoundsClass: an agent's log stream keeps console output and
// request errors of its sessions; whatever agents log — a tight loop, huge
// lines, many agents of one tenant — the streams stay inside their byte
// and line limits, a line is cut at its limit on a UTF-8 boundary, and
// one tenant's noise never evicts another tenant's lines.
func TestLogStreamBoundsClass(t *testing.T) {
	lim := LogLimits{AgentLines: 50, AgentBytes: 16 << 10, TenantBytes: 40 << 10, TotalBytes: 64 << 10, LineBytes: 1 << 10}
	m := openManager(t, t.TempDir(), func(c *testConfig) { c.Logs = lim })
	deployAs(t, m, "spiffe://test/user/mallory", "noisy", loggerJS)
	deployAs(t, m, "spiffe://test/user/mallory", "noisy2", loggerJS)
	deployAs(t, m, "spiffe://test/user/mallory", "noisy3", loggerJS)
	deployAs(t, m, "spiffe://test/user/alice", "quiet", loggerJS)

	mustCall(t, m, "quiet", "q1", "/?n=1&size=1&ch=q")
	if _, _, err := call(t, m, "quiet", "q1", "GET", "/throw?ch=q", ""); err == nil {
		t.Fatal("throw: no error")
	}
	l := readLogs(t, m, "quiet", "")
	if len(l.Entries) != 2 || l.Entries[0].Level != "log" || l.Entries[0].Text != "q" || l.Entries[0].Session != "q1" ||
		l.Entries[1].Level != "exception" || !strings.Contains(l.Entries[1].Text, "boom q") {
		t.Fatalf("quiet's log: %+v", l.Entries)
	}

	cases := []struct{ name, agent, path string }{
		{"tight loop", "noisy", "/?n=20000&size=10"},
		{"big lines", "noisy", "/?n=200&size=4000"},
		{"huge line", "noisy", "/?n=1&size=4000000"},
		{"second agent of the tenant", "noisy2", "/?n=2000&size=900"},
		{"third agent of the tenant", "noisy3", "/?n=2000&size=900"},
		{"multi-byte", "noisy", "/?n=1&size=3000&ch=%C3%A9"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mustCall(t, m, c.agent, "s1", c.path)
			if u := m.logs.usage(); u > lim.TotalBytes {
				t.Errorf("streams hold %d bytes, over the %d total", u, lim.TotalBytes)
			}
			m.logs.mu.Lock()
			var tenant int64
			for _, r := range m.logs.rings {
				if len(r.entries) > lim.AgentLines || r.bytes > lim.AgentBytes {
					t.Errorf("agent %s holds %d entries, %d bytes", r.agent, len(r.entries), r.bytes)
				}
				if r.tenant.owner == "spiffe://test/user/mallory" {
					tenant += r.bytes
				}
			}
			m.logs.mu.Unlock()
			if tenant > lim.TenantBytes {
				t.Errorf("tenant holds %d bytes, over %d", tenant, lim.TenantBytes)
			}
			l := readLogs(t, m, c.agent, "")
			if len(l.Entries) == 0 {
				t.Fatal("no entries")
			}
			for _, e := range l.Entries {
				if len(e.Text) > lim.LineBytes || !utf8.ValidString(e.Text) {
					t.Fatalf("entry of %d bytes (valid UTF-8: %v)", len(e.Text), utf8.ValidString(e.Text))
				}
			}
			if q := readLogs(t, m, "quiet", ""); len(q.Entries) != 2 || q.Missed != 0 {
				t.Fatalf("quiet's log after %s: %d entries, %d missed", c.name, len(q.Entries), q.Missed)
			}
		})
	}
	last := readLogs(t, m, "noisy", "").Entries
	if e := last[len(last)-1]; e.Truncated != 3000*2-lim.LineBytes || e.Text != strings.Repeat("é", lim.LineBytes/2) {
		t.Errorf("multi-byte line: %d bytes kept, %d cut", len(e.Text), e.Truncated)
	}
	// The loop's own errors are entries too: a request stopped for CPU.
	deploy(t, m, `{"name":"spinner","entry":"agent.js","limits":{"cpu_ms":100}}`, loggerJS)
	if _, _, err := call(t, m, "spinner", "s2", "GET", "/spin", ""); err == nil {
		t.Fatal("spin: no error")
	}
	l = readLogs(t, m, "spinner", "s2")
	if len(l.Entries) != 1 || l.Entries[0].Level != "exception" || !strings.Contains(l.Entries[0].Text, "session-timeout") {
		t.Fatalf("spinner/s2: %+v", l.Entries)
	}
}

// TestLogReadClass: reads continue from a cursor, count what the bounded
// stream dropped before they saw it, filter by session, wake followers on
// the next entry, and refuse bad agents, sessions and unknown agents.
func TestLogReadClass(t *testing.T) {
	m := openManager(t, t.TempDir(), func(c *testConfig) { c.Logs = LogLimits{AgentLines: 10} })
	deployAs(t, m, "spiffe://test/user/alice", "talk", loggerJS)
	mustCall(t, m, "talk", "a", "/?n=4&ch=a")
	mustCall(t, m, "talk", "b", "/?n=3&ch=b")
	l := readLogs(t, m, "talk", "b")
	if len(l.Entries) == 0 {
		t.Fatal("no entries")
	}
	b := l.Entries[0].Seq - 5 // the stream numbers from b+1 (the node's start)
	if len(l.Entries) != 3 || l.Next != b+7 {
		t.Fatalf("session b: %+v", l)
	}
	l, wake, err := m.Logs(context.Background(), "talk", "", b+7, 5)
	if err != nil || len(l.Entries) != 0 || l.Next != b+7 {
		t.Fatalf("at the end: %+v %v", l, err)
	}
	mustCall(t, m, "talk", "a", "/?n=10&ch=c")
	select {
	case <-wake:
	default:
		t.Fatal("follower not woken")
	}
	l, _, _ = m.Logs(context.Background(), "talk", "", b+7, MaxLogRead)
	if l.Missed != 0 || len(l.Entries) != 10 || l.Entries[0].Seq != b+8 {
		t.Fatalf("after 7: missed %d, %d entries", l.Missed, len(l.Entries))
	}
	l, _, _ = m.Logs(context.Background(), "talk", "", b+2, 3)
	if l.Missed != 5 || len(l.Entries) != 3 || l.Entries[0].Seq != b+8 || l.Next != b+10 {
		t.Fatalf("after 2: %+v", l)
	}
	// A cursor past the end (a position the stream never gave) starts at
	// the end.
	if l, _, _ = m.Logs(context.Background(), "talk", "", 1<<62, 5); len(l.Entries) != 0 || l.Next != b+17 {
		t.Fatalf("cursor past the end: %+v", l)
	}
	for _, c := range []struct{ agent, sess string }{
		{"Bad_Agent", ""}, {"talk", "a/b"}, {"talk", strings.Repeat("s", 1000)}, {"", ""}, {"talk", "~scratch-x"},
	} {
		if _, _, err := m.Logs(context.Background(), c.agent, c.sess, 0, 1); !api.IsKind(err, api.KindBadRequest) && !api.IsKind(err, api.KindInvalidID) {
			t.Errorf("Logs(%q, %q): %v", c.agent, c.sess, err)
		}
	}
	if _, _, err := m.Logs(context.Background(), "nobody", "", 0, 1); !api.IsKind(err, api.KindNotFound) {
		t.Errorf("unknown agent: %v", err)
	}
}

// TestLogBufferFairness: past the node's total, the tenant holding the most
// loses lines first; many writers and readers at once keep every limit
// (run with -race).
func TestLogBufferFairness(t *testing.T) {
	b := newLogBuffer(LogLimits{AgentLines: 1000, AgentBytes: 1 << 20, TenantBytes: 1 << 20, TotalBytes: 200 << 10}, 0)
	line := strings.Repeat("z", 500)
	b.add("victim", "bob", api.LogEntry{Session: "s", Text: "keep me"})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				b.add(fmt.Sprintf("noisy%d", w%4), "mallory", api.LogEntry{Session: "s", Text: line})
				if i%100 == 0 {
					b.read("noisy0", "mallory", "", 0, 10)
				}
			}
		}()
	}
	wg.Wait()
	if u := b.usage(); u > 200<<10 {
		t.Fatalf("usage %d over the total", u)
	}
	if l, _ := b.read("victim", "bob", "", 0, 10); len(l.Entries) != 1 || l.Entries[0].Text != "keep me" {
		t.Fatalf("victim's line evicted by another tenant: %+v", l)
	}
	b.drop("noisy0")
	b.drop("noisy1")
	if l, _ := b.read("victim", "bob", "", 0, 10); len(l.Entries) != 1 {
		t.Fatal("drop touched another agent")
	}
}

// TestLogSeqAcrossRestartClass: a cursor (a Seq per member) taken before
// the node restarted, or before the agent was deleted and made anew, reads
// the new stream from its start; it skipped every line since the restart
// when a restarted node numbered from 1 again. A position the stream never
// gave (ahead of it) still starts at its end, and evictions in the new run
// are still counted as missed.
func TestLogSeqAcrossRestartClass(t *testing.T) {
	e := func(text string) api.LogEntry { return api.LogEntry{Session: "s", Text: text} }
	texts := func(l api.LogList) string {
		var out []string
		for _, e := range l.Entries {
			out = append(out, e.Text)
		}
		return strings.Join(out, ",")
	}
	before := newLogBuffer(LogLimits{}, 1_000_000)
	for i := range 50 {
		before.add("a", "o", e(fmt.Sprint("old", i)))
	}
	l, _ := before.read("a", "o", "", 0, 1000)
	cursor := l.Next // the reader has read everything of the old run
	if cursor != 1_000_050 {
		t.Fatalf("old run ends at %d", cursor)
	}

	// The node restarts a second later: 3 lines of the new run.
	after := newLogBuffer(LogLimits{AgentLines: 5}, 2_000_000)
	for _, s := range []string{"new0", "new1", "new2"} {
		after.add("a", "o", e(s))
	}
	if l, _ := after.read("a", "o", "", cursor, 1000); texts(l) != "new0,new1,new2" || l.Missed != 0 {
		t.Fatalf("old cursor on the new run: %q missed %d, want every new line", texts(l), l.Missed)
	}
	// Evictions in the new run are counted for an old cursor.
	for i := range 5 {
		after.add("a", "o", e(fmt.Sprint("more", i)))
	}
	if l, _ := after.read("a", "o", "", cursor, 1000); l.Missed != 3 || texts(l) != "more0,more1,more2,more3,more4" {
		t.Fatalf("old cursor after evictions: %q missed %d, want the 5 kept and 3 missed", texts(l), l.Missed)
	}
	// A position ahead of the stream: its end.
	if l, _ := after.read("a", "o", "", 9_000_000, 1000); len(l.Entries) != 0 || l.Next != 2_000_008 {
		t.Fatalf("a cursor ahead of the stream: %+v", l)
	}
	// The agent deleted and made anew on the same node: a cursor of the
	// old stream reads the new one from its start.
	l, _ = after.read("a", "o", "", 0, 1000)
	old := l.Next
	after.drop("a")
	after.add("a", "o", e("reborn"))
	if l, _ := after.read("a", "o", "", old, 1000); texts(l) != "reborn" {
		t.Fatalf("cursor of the deleted agent's stream on the new one: %q", texts(l))
	}
	// Another agent's stream made later also numbers above every Seq.
	after.add("b", "o", e("b0"))
	if l, _ := after.read("b", "o", "", 0, 1); len(l.Entries) != 1 || l.Entries[0].Seq <= old {
		t.Fatalf("a new stream numbers from %+v, want above %d", l.Entries, old)
	}
}

func BenchmarkLogAdd(b *testing.B) {
	buf := newLogBuffer(LogLimits{}, 0)
	e := api.LogEntry{Session: "s", Text: strings.Repeat("x", 80)}
	for b.Loop() {
		buf.add("a", "o", e)
	}
}
