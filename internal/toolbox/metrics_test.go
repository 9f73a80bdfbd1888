package toolbox

import (
	"fmt"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestToolLabelCapClass: the tool label is bounded whatever callers send:
// a name that is no tool is "unknown", tool names past MaxToolLabels are
// "other", and a result outside the codes of errors.go is "other".
func TestToolLabelCapClass(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 * MaxToolLabels {
		m.call(fmt.Sprintf("made-up-%d", i), false, string(CodeUnknownTool), 0)
		m.call(fmt.Sprintf("tool-%d", i), true, codeLabel(Code(fmt.Sprintf("upstream-code-%d", i))), 0)
	}
	_, n := gathered(t, reg, "agentcloud_tool_calls_total")
	if n != 1+MaxToolLabels+1 { // unknown, MaxToolLabels names, other
		t.Fatalf("%d series, want %d", n, MaxToolLabels+2)
	}
	if got, _ := gathered(t, reg, "agentcloud_tool_calls_total", "result", "other", "tool", "other"); got != 2*MaxToolLabels {
		t.Fatalf("other = %v, want %d", got, 2*MaxToolLabels)
	}
	if got, _ := gathered(t, reg, "agentcloud_tool_calls_total", "result", string(CodeUnknownTool), "tool", "unknown"); got != 3*MaxToolLabels {
		t.Fatalf("unknown = %v", got)
	}
	var nilMetrics *metrics
	nilMetrics.call("x", true, "ok", 0) // no registerer: records nothing, no panic
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
