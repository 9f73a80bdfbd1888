package policy

import (
	"bufio"
	"bytes"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Decision results (the result label of agentcloud_policy_decisions_total).
const (
	resultAllow      = "allow"
	resultDeny       = "deny"
	resultApprovable = "approvable" // denied, but an approval would allow it
	resultError      = "error"      // no decision (context ended, bad request)
)

// metrics are the engine's Prometheus collectors; a nil *metrics (no
// registerer) records nothing. The action label is an action of the
// schema or "other", so a caller cannot grow the series; the counters are
// made once in New so a decision only looks one up (Decide is the
// authorization hot path).
type metrics struct {
	byAction map[string]*[4]prometheus.Counter // schema action → allow, deny, approvable, error
	other    *[4]prometheus.Counter
}

var results = [4]string{resultAllow, resultDeny, resultApprovable, resultError}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentcloud_policy_decisions_total",
		Help: "Cedar decisions by action (a schema action, or \"other\") and result (allow, deny, approvable, error)."},
		[]string{"action", "result"})
	if err := reg.Register(vec); err != nil {
		return nil, err
	}
	counters := func(action string) *[4]prometheus.Counter {
		var c [4]prometheus.Counter
		for i, r := range results {
			c[i] = vec.WithLabelValues(action, r)
		}
		return &c
	}
	m := &metrics{byAction: map[string]*[4]prometheus.Counter{}, other: counters("other")}
	for _, a := range SchemaActions() {
		m.byAction[a] = counters(a)
	}
	return m, nil
}

func (m *metrics) decided(action string, d Decision, err error) {
	if m == nil {
		return
	}
	c := m.byAction[action]
	if c == nil {
		c = m.other
	}
	i := 1
	switch {
	case err != nil:
		i = 3
	case d.Allowed:
		i = 0
	case d.Approvable:
		i = 2
	}
	c[i].Inc()
}

// SchemaActions lists the actions the schema declares, in its order.
func SchemaActions() []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(schemaText))
	for sc.Scan() {
		line, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "action ")
		if !ok {
			continue
		}
		line, _, _ = strings.Cut(line, "appliesTo")
		for _, f := range strings.Split(line, ",") {
			if a := strings.Trim(strings.TrimSpace(f), `"`); a != "" {
				out = append(out, a)
			}
		}
	}
	return out
}
