package policy

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/prometheus/client_golang/prometheus"
)

// latencies records per-call durations and reports percentiles as benchmark
// metrics, since ns/op alone hides the tail.
type latencies struct{ d []time.Duration }

func (l *latencies) add(d time.Duration) { l.d = append(l.d, d) }

func (l *latencies) pct(p float64) time.Duration {
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func (l *latencies) report(b *testing.B, prefix string) {
	b.ReportMetric(float64(l.pct(0.50).Nanoseconds()), prefix+"p50-ns")
	b.ReportMetric(float64(l.pct(0.99).Nanoseconds()), prefix+"p99-ns")
}

// benchEntities builds 10,000 entities: 1,000 tools all granted to one
// agent, 20 hosts, 8,000 sessions of that agent and users for the rest.
func benchEntities() (types.EntityMap, []UID, []UID) {
	ents := types.EntityMap{}
	add := func(uid UID, attrs types.RecordMap) {
		ents[uid] = types.Entity{UID: uid, Attributes: types.NewRecord(attrs)}
	}
	tools := make([]UID, 1000)
	for i := range tools {
		tools[i] = NewUID("Tool", fmt.Sprintf("tool-%d", i))
		add(tools[i], nil)
	}
	hosts := make([]UID, 20)
	for i := range hosts {
		hosts[i] = NewUID("Host", fmt.Sprintf("h%d.example.com", i))
		add(hosts[i], nil)
	}
	agent := NewUID("Agent", "bot")
	add(agent, types.RecordMap{"owner": NewUID("User", "u0"), "tools": uidSet(tools...), "hosts": uidSet(hosts...)})
	sessions := make([]UID, 8000)
	for i := range sessions {
		sessions[i] = NewUID("Session", fmt.Sprintf("bot/s%d", i))
		add(sessions[i], types.RecordMap{"agent": agent, "allowHosts": uidSet(hosts[:5]...)})
	}
	for i := 0; len(ents) < 10000; i++ {
		add(NewUID("User", fmt.Sprintf("u%d", i)), nil)
	}
	return ents, tools, sessions
}

// BenchmarkDecide times decisions without and with the engine's metrics
// (metrics.go), so their cost on the authorization hot path shows.
func BenchmarkDecide(b *testing.B) {
	ents, tools, sessions := benchEntities()
	if len(ents) != 10000 {
		b.Fatalf("%d entities", len(ents))
	}
	for _, m := range []struct {
		name string
		reg  prometheus.Registerer
	}{{"metrics=off", nil}, {"metrics=on", prometheus.NewRegistry()}} {
		e, err := New(Config{Metrics: m.reg})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(m.name, func(b *testing.B) { benchDecide(b, e, ents, tools, sessions) })
	}
}

func benchDecide(b *testing.B, e *Engine, ents types.EntityMap, tools, sessions []UID) {
	ctx := context.Background()
	risky := Labels{Integrity: Untrusted, Confidentiality: Private}
	b.Run("tool.call", func(b *testing.B) {
		var lat latencies
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			req := Request{Principal: sessions[i%len(sessions)], Action: "tool.call", Resource: tools[(i*7)%len(tools)]}
			t0 := time.Now()
			d, err := e.Decide(ctx, ents, req)
			lat.add(time.Since(t0))
			if err != nil || !d.Allowed {
				b.Fatalf("%+v %v", d, err)
			}
			i++
		}
		lat.report(b, "")
	})
	b.Run("egress.trifecta", func(b *testing.B) {
		var lat latencies
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			req := Request{Principal: sessions[i%len(sessions)], Action: "egress.fetch", Resource: NewUID("Host", fmt.Sprintf("h%d.example.com", 5+i%15)), Labels: risky}
			t0 := time.Now()
			d, err := e.Decide(ctx, ents, req)
			lat.add(time.Since(t0))
			if err != nil || d.Allowed || !d.Approvable {
				b.Fatalf("%+v %v", d, err)
			}
			i++
		}
		lat.report(b, "")
	})
}

// TestDecideAllocationsClass bounds what one decision allocates, for each
// kind of outcome: allowed by a grant, default deny, denied by a forbid,
// denied by an approvable forbid over a matching permit. One
// cedar.Authorize per decision (forbids as permit twins) keeps these at
// about half of what two passes (forbids, then permits) allocated (20, 18
// and 21 allocations).
func TestDecideAllocationsClass(t *testing.T) {
	e, err := New(Config{Metrics: prometheus.NewRegistry()}) // the metrics allocate nothing per decision
	if err != nil {
		t.Fatal(err)
	}
	ents, tools, sessions := benchEntities()
	ctx := context.Background()
	host := NewUID("Host", "h7.example.com")
	for _, tc := range []struct {
		name    string
		req     Request
		allowed bool
		max     float64
	}{
		{"grant", Request{Principal: sessions[3], Action: "tool.call", Resource: tools[42]}, true, 12},
		{"default deny", Request{Principal: sessions[3], Action: "secret.read", Resource: NewUID("Secret", "k")}, false, 10},
		{"approvable forbid", Request{Principal: sessions[3], Action: "egress.fetch", Resource: host,
			Labels: Labels{Integrity: Untrusted, Confidentiality: Private}}, false, 14},
	} {
		d, err := e.Decide(ctx, ents, tc.req)
		if err != nil || d.Allowed != tc.allowed {
			t.Fatalf("%s: %+v %v", tc.name, d, err)
		}
		n := testing.AllocsPerRun(200, func() { _, _ = e.Decide(ctx, ents, tc.req) })
		if n > tc.max {
			t.Errorf("%s: %.0f allocations per decision, want at most %.0f", tc.name, n, tc.max)
		}
		t.Logf("%s: %.0f allocations", tc.name, n)
	}
}
