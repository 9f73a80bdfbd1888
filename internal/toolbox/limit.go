package toolbox

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxBuckets bounds the per-caller buckets; past it they start over (a
// fresh bucket is full, so this can only ever be lenient).
const maxBuckets = 65536

// limiter holds the token buckets: one per tool, one per caller.
type limiter struct {
	tool   Rate
	caller Rate

	mu        sync.Mutex // protects overrides, tools and callers
	overrides map[string]Rate
	tools     map[string]*rate.Limiter
	callers   map[string]*rate.Limiter
}

func newLimiter(tool Rate, overrides map[string]Rate, caller Rate) *limiter {
	o := make(map[string]Rate, len(overrides))
	for k, v := range overrides {
		o[k] = v
	}
	return &limiter{tool: tool, overrides: o, caller: caller,
		tools: map[string]*rate.Limiter{}, callers: map[string]*rate.Limiter{}}
}

func bucket(m map[string]*rate.Limiter, key string, r Rate) *rate.Limiter {
	l, ok := m[key]
	if !ok {
		if len(m) >= maxBuckets {
			clear(m)
		}
		burst := max(r.Burst, 1)
		l = rate.NewLimiter(rate.Limit(r.PerSecond), burst)
		m[key] = l
	}
	return l
}

// allow takes one token from the tool's bucket and the caller's; when
// either is empty nothing is taken and wait says when to retry.
// set changes one tool's rate (a zero Rate: back to the default).
func (l *limiter) set(tool string, r Rate) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r == (Rate{}) {
		delete(l.overrides, tool)
	} else {
		l.overrides[tool] = r
	}
	delete(l.tools, tool) // a fresh bucket at the new rate
}

func (l *limiter) allow(now time.Time, tool, caller string) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	tr, has := l.overrides[tool]
	if !has {
		tr = l.tool
	}
	if tr.PerSecond <= 0 && l.caller.PerSecond <= 0 {
		return 0, true
	}
	var rs []*rate.Reservation
	for _, b := range []struct {
		m   map[string]*rate.Limiter
		key string
		r   Rate
	}{{l.tools, tool, tr}, {l.callers, caller, l.caller}} {
		if b.r.PerSecond <= 0 {
			continue
		}
		res := bucket(b.m, b.key, b.r).ReserveN(now, 1)
		if d := res.DelayFrom(now); d > 0 || !res.OK() {
			for _, r := range rs {
				r.CancelAt(now)
			}
			res.CancelAt(now)
			return max(d, time.Second/time.Duration(max(int(b.r.PerSecond), 1))), false
		}
		rs = append(rs, res)
	}
	return 0, true
}
