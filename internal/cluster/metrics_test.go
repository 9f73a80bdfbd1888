package cluster

import (
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// ownsEven owns the even partitions; odd ones have no owner.
type ownsEven struct{}

func (ownsEven) Partition(agent, session string) int        { return len(session) }
func (ownsEven) Owned(p int) (uint64, bool)                 { return 1, p%2 == 0 }
func (ownsEven) OwnerOf(p int) (node, addr string, ok bool) { return "", "", false }
func (ownsEven) Locate(func(string) bool) (node, addr string, live, found bool) {
	return "", "", false, false
}
func (ownsEven) Members() []MemberInfo { return nil }

// TestForwarderMetrics: session requests count by where the forwarder
// sent them (served here, no owner, refused on the peer side), other
// requests not at all, and the lease gauges read 0 before the member runs.
func TestForwarderMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	met, err := newMetrics(reg, &Node{})
	if err != nil {
		t.Fatal(err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	f := &Forwarder{Node: "n1", Owners: ownsEven{}, Local: ok, met: met}
	for _, path := range []string{"/v1/agents/a/sessions/s2", "/v1/agents/a/sessions/s2/x", "/v1/agents/a/sessions/s13", "/v1/status"} {
		f.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}
	for _, path := range []string{"/v1/agents/a/sessions/s2", "/v1/agents/a/sessions/s13"} {
		f.Peer().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}
	for result, want := range map[string]float64{fwdLocal: 2, fwdUnavailable: 1, fwdForwarded: 0, fwdPeerServed: 1, fwdPeerRefused: 1} {
		if got, _ := gathered(t, reg, "agentcloud_cluster_session_requests_total", "result", result); got != want {
			t.Errorf("%s = %v, want %v", result, got, want)
		}
	}
	for _, name := range []string{"agentcloud_cluster_leases_owned", "agentcloud_cluster_partitions"} {
		if v, n := gathered(t, reg, name); n != 1 || v != 0 {
			t.Fatalf("%s: %d series, value %v", name, n, v)
		}
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

// TestDashboardClusterMetrics: every agentcloud_cluster_* metric the
// Grafana dashboard (docs/grafana-dashboard.json) queries is one a node
// registers (the daemon's own dashboard test sees no cluster metrics
// outside a cluster).
func TestDashboardClusterMetrics(t *testing.T) {
	b, err := os.ReadFile("../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if _, err := newMetrics(reg, &Node{}); err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`agentcloud_cluster_[a-z0-9_]+`).FindAllString(string(b), -1)
	if len(names) == 0 {
		t.Fatal("the dashboard shows no cluster metric")
	}
	for _, n := range names {
		if _, series := gathered(t, reg, n); series == 0 {
			t.Errorf("the dashboard queries %s, which a cluster node does not export", n)
		}
	}
}
