package policy

import (
	"context"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestDecisionMetricsBoundedClass: decisions count by the schema's
// actions; any other action string a caller sends counts as "other", so
// the series stay the schema's actions × 4 results plus "other" × 4.
func TestDecisionMetricsBoundedClass(t *testing.T) {
	actions := SchemaActions()
	for _, a := range []string{"session.call", "tool.call", "egress.fetch", "traffic.read"} {
		if !slices.Contains(actions, a) {
			t.Fatalf("SchemaActions() = %v, lacks %s", actions, a)
		}
	}
	reg := prometheus.NewRegistry()
	e, err := New(Config{Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	admin := NewUID(TypeAdmin, "root")
	res := NewUID(TypeAgent, "a")
	for _, a := range []string{"agent.read", "agent.read", "x-made-up", "y-made-up-by-tenant"} {
		if _, err := e.Decide(context.Background(), nil, Request{Principal: admin, Action: a, Resource: res}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _ = e.Decide(ctx, nil, Request{Principal: admin, Action: "agent.read", Resource: res})
	want := map[[2]string]float64{{"agent.read", "allow"}: 2, {"other", "allow"}: 2, {"agent.read", "error"}: 1}
	for k, v := range want {
		if got, _ := gathered(t, reg, "agentcloud_policy_decisions_total", "action", k[0], "result", k[1]); got != v {
			t.Errorf("%v = %v, want %v", k, got, v)
		}
	}
	if _, n := gathered(t, reg, "agentcloud_policy_decisions_total"); n != 4*(len(actions)+1) {
		t.Fatalf("%d series, want %d", n, 4*(len(actions)+1))
	}
}

// gathered returns the value of the series of family name whose labels
// are want (0 if none), and how many series the family has.
func gathered(t *testing.T, g prometheus.Gatherer, name string, want ...string) (v float64, series int) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			series++
			var got []string
			for _, l := range m.GetLabel() {
				got = append(got, l.GetName(), l.GetValue())
			}
			if slices.Equal(got, want) {
				v = m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return v, series
}
