package gateway

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agentcloud/agentcloud/internal/config"
	"github.com/agentcloud/agentcloud/internal/gateway/gcra"
)

// rateRule is a compiled config.RateLimit.
type rateRule struct {
	name    string
	perTool bool
	match   matchers
	lim     *gcra.Limiter
	quota   int
	window  int    // seconds
	policy  string // this rule's RateLimit-Policy member
}

// maxRateKeys bounds each rule's key table.
const maxRateKeys = 100_000

func compileRates(in []config.RateLimit) ([]rateRule, error) {
	out := make([]rateRule, 0, len(in))
	for i, r := range in {
		m, err := compileMatches(r.Match)
		if err != nil {
			return nil, fmt.Errorf("rate_limits[%d]: %w", i, err)
		}
		lim, err := gcra.New(gcra.Limit{Quota: r.Quota, Window: r.Window.D()}, maxRateKeys)
		if err != nil {
			return nil, fmt.Errorf("rate_limits[%d]: %w", i, err)
		}
		w := int(r.Window.D() / time.Second)
		out = append(out, rateRule{
			name: r.Name, perTool: r.Key == "identity+tool", match: m, lim: lim, quota: r.Quota, window: w,
			policy: fmt.Sprintf("%q;q=%d;w=%d", r.Name, r.Quota, w),
		})
	}
	return out, nil
}

// rateOutcome is the rate limits' verdict on one request.
type rateOutcome struct {
	policy, state []string
	denied        *rateRule
	retryAfter    time.Duration
}

// checkRates spends one request of every matching rule, or none if any
// refuses (what the earlier rules spent is given back).
func (g *Gateway) checkRates(a *attrs, now time.Time) rateOutcome {
	var out rateOutcome
	var spent [8]struct {
		r   *rateRule
		key string
	}
	n := 0
	for i := range g.rates {
		r := &g.rates[i]
		if r.perTool && a.tool == "" || !r.match.matches(a) {
			continue
		}
		key := a.id.ID
		if r.perTool {
			key += "\x00" + a.tool
		}
		res := r.lim.Allow(key, now)
		out.policy = append(out.policy, r.policy)
		if !res.Allowed {
			for _, s := range spent[:n] {
				s.r.lim.Undo(s.key, now, 1)
			}
			out.denied, out.retryAfter = r, res.RetryAfter
			out.state = []string{fmt.Sprintf("%q;r=0;t=%d", r.name, ceilSeconds(res.RetryAfter))}
			return out
		}
		if n < len(spent) {
			spent[n].r, spent[n].key = r, key
			n++
		}
		out.state = append(out.state, "\""+r.name+"\";r="+strconv.Itoa(res.Remaining)+";t="+strconv.Itoa(ceilSeconds(res.Reset)))
	}
	return out
}

// setHeaders writes RateLimit-Policy and RateLimit (draft-ietf-httpapi-
// ratelimit-headers: quoted policy names, q/w and r/t parameters).
func (o *rateOutcome) setHeaders(h http.Header) {
	if len(o.policy) == 0 {
		return
	}
	h.Set("RateLimit-Policy", strings.Join(o.policy, ", "))
	h.Set("RateLimit", strings.Join(o.state, ", "))
}

func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}
