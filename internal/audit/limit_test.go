package audit_test

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/store"
)

var clipCases = []struct{ in, want string }{
	{"alice", "alice"},
	{"", ""},
	{"a\nb\rc\x00d", `a\nb\rc\x00d`},
	{"back\\slash", `back\\slash`},
	{"bidi\u202eevil", `bidi\u202eevil`},
	{"line\u2028sep", `line\u2028sep`},
	{"bad\xffutf8", `bad\xffutf8`},
	{"ünïcödé ok", "ünïcödé ok"},
	{"\x1b[31mred", `\x1b[31mred`},
	{strings.Repeat("x", 40), strings.Repeat("x", 16) + "…[24 more bytes]"},
	{strings.Repeat("é", 20), strings.Repeat("é", 8) + "…[24 more bytes]"},
}

func TestClip(t *testing.T) {
	for _, tc := range clipCases {
		if got := audit.Clip(tc.in, 16); got != tc.want {
			t.Errorf("Clip(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzClip(f *testing.F) {
	for _, tc := range clipCases {
		f.Add(tc.in, 16)
	}
	f.Fuzz(func(t *testing.T, s string, limit int) {
		if limit < 0 || limit > 1<<16 {
			return
		}
		got := audit.Clip(s, limit)
		if !utf8.ValidString(got) {
			t.Fatalf("Clip(%q) = %q: invalid UTF-8", s, got)
		}
		for _, r := range got {
			if !unicode.IsPrint(r) && r != ' ' {
				t.Fatalf("Clip(%q) = %q: unprintable %U", s, got, r)
			}
		}
		if len(got) > limit+len("…[ more bytes]")+20 {
			t.Fatalf("Clip(%d bytes, %d) is %d bytes", len(s), limit, len(got))
		}
		if len(s) <= limit && !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || r == '\\' }) && utf8.ValidString(s) && got != s {
			t.Fatalf("Clip changed a short printable string: %q -> %q", s, got)
		}
	})
}

// TestLimiterClass: per key at most burst records per window, over all
// keys at most the global budget, at most maxKeys keys tracked; what is
// held back comes out as one summary per key and window, from Allow on
// the key's next record or from Sweep.
func TestLimiterClass(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := audit.NewLimiter(3, 5, 3, time.Minute)
	allowed := func(key string, at time.Time, n int) int {
		got := 0
		for range n {
			if ok, _ := l.Allow(key, at); ok {
				got++
			}
		}
		return got
	}
	if n := allowed("1.2.3.4", t0, 100); n != 3 {
		t.Fatalf("one source, 100 failures: %d recorded, want 3", n)
	}
	if n := allowed("5.6.7.8", t0.Add(time.Second), 100); n != 2 {
		t.Fatalf("second source: %d recorded, want the 2 left of the global budget", n)
	}
	// The next record of 1.2.3.4 after its window carries the summary.
	ok, sum := l.Allow("1.2.3.4", t0.Add(time.Minute))
	if !ok || sum == nil || sum.Key != "1.2.3.4" || sum.Suppressed != 97 || !sum.From.Equal(t0) {
		t.Fatalf("summary on the next window: %v %+v", ok, sum)
	}
	// Sweep reports the rest once and forgets ended windows.
	sums := l.Sweep(t0.Add(time.Minute + time.Second))
	if len(sums) != 1 || sums[0].Key != "5.6.7.8" || sums[0].Suppressed != 98 {
		t.Fatalf("sweep: %+v", sums)
	}
	if again := l.Sweep(t0.Add(time.Hour)); len(again) != 0 {
		t.Fatalf("second sweep: %+v", again)
	}
	// Many sources: beyond maxKeys they share one key and one budget.
	l = audit.NewLimiter(2, 1000, 3, time.Minute)
	total := 0
	for i := range 50 {
		total += allowed(strings.Repeat("k", i+1), t0, 10)
	}
	if total != 3*2+2 { // three tracked keys, then the overflow key
		t.Fatalf("50 sources: %d recorded, want 8", total)
	}
	sums = l.Sweep(t0.Add(time.Minute))
	var suppressed int
	for _, s := range sums {
		suppressed += s.Suppressed
	}
	if suppressed != 500-8 || sums[0].Key != audit.OverflowKey && sums[len(sums)-1].Key != audit.OverflowKey {
		t.Fatalf("overflow summaries: %+v", sums)
	}
}

// TestAuditRetentionClass: the stream keeps at most MaxBytes (oldest
// dropped first), also when an existing stream is reopened with a limit,
// and reading from the start skips what was dropped.
func TestAuditRetentionClass(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, store.Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := audit.Open(ctx, st, nil, audit.Retention{})
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("p", 1000)
	for i := range 300 {
		_ = l.Record(ctx, api.AuditEvent{Type: audit.TypeAuth, Outcome: "failure", Reason: pad, Detail: map[string]any{"i": i}})
	}
	recs, before, err := l.Size(ctx)
	if err != nil || recs != 300 || before < 300_000 {
		t.Fatalf("unbounded: %d records %d bytes %v", recs, before, err)
	}
	l.Close()
	const limit = 64 << 10
	l, err = audit.Open(ctx, st, nil, audit.Retention{MaxBytes: limit, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 300 {
		_ = l.Record(ctx, api.AuditEvent{Type: audit.TypeAuth, Outcome: "failure", Reason: pad, Detail: map[string]any{"i": 300 + i}})
	}
	recs, after, err := l.Size(ctx)
	if err != nil || after > limit || recs == 0 {
		t.Fatalf("with max_bytes %d: %d records %d bytes %v", limit, recs, after, err)
	}
	evs, _, err := l.List(ctx, audit.Filter{Limit: 1000})
	if err != nil || uint64(len(evs)) != recs || evs[len(evs)-1].Detail["i"] != float64(599) {
		t.Fatalf("list after retention: %d events (want %d) %v", len(evs), recs, err)
	}
	evs, _, err = l.List(ctx, audit.Filter{Type: audit.TypeAuth, Limit: 5})
	if err != nil || len(evs) != 5 || evs[0].Seq < 300 {
		t.Fatalf("filtered list after retention: %+v %v", evs, err)
	}
}
