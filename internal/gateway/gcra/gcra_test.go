package gcra

import (
	"fmt"
	"testing"
	"time"
)

var epoch = time.Unix(1_700_000_000, 0)

func TestLimiterBurstThenSteady(t *testing.T) {
	l, err := New(Limit{Quota: 10, Window: time.Second}, 100)
	if err != nil {
		t.Fatal(err)
	}
	now := epoch
	for i := 0; i < 10; i++ {
		r := l.Allow("a", now)
		if !r.Allowed || r.Remaining != 9-i {
			t.Fatalf("burst request %d: %+v", i, r)
		}
	}
	r := l.Allow("a", now)
	if r.Allowed || r.RetryAfter != 100*time.Millisecond || r.Remaining != 0 || r.Reset != time.Second {
		t.Fatalf("11th request: %+v", r)
	}
	// Another key is independent.
	if r := l.Allow("b", now); !r.Allowed || r.Remaining != 9 {
		t.Fatalf("other key: %+v", r)
	}
	// One emission interval later exactly one more request fits.
	now = now.Add(100 * time.Millisecond)
	if r := l.Allow("a", now); !r.Allowed || r.Remaining != 0 {
		t.Fatalf("after 100ms: %+v", r)
	}
	if r := l.Allow("a", now); r.Allowed {
		t.Fatalf("second after 100ms allowed: %+v", r)
	}
	// After a whole window the whole quota is back.
	now = now.Add(time.Second)
	if r := l.Peek("a", now); !r.Allowed || r.Remaining != 9 || r.Reset != 100*time.Millisecond {
		t.Fatalf("peek after window: %+v", r)
	}
}

func TestLimiterUndoAndAllowN(t *testing.T) {
	l, _ := New(Limit{Quota: 4, Window: 4 * time.Second}, 10)
	if r := l.AllowN("k", epoch, 5); r.Allowed {
		t.Fatalf("cost above quota allowed: %+v", r)
	}
	if r := l.AllowN("k", epoch, 3); !r.Allowed || r.Remaining != 1 {
		t.Fatalf("AllowN(3): %+v", r)
	}
	l.Undo("k", epoch, 2)
	if r := l.Peek("k", epoch); r.Remaining != 2 { // 3 left, one of them peeked
		t.Fatalf("after Undo(2): %+v", r)
	}
	l.Undo("k", epoch, 5)
	if l.Len() != 0 {
		t.Fatalf("a fully refunded key should be forgotten, len %d", l.Len())
	}
}

func TestLimiterBoundedKeysClass(t *testing.T) {
	// Exhaustion: a client minting keys cannot grow the table past its bound.
	l, _ := New(Limit{Quota: 1, Window: time.Hour}, 64)
	for i := 0; i < 10000; i++ {
		l.Allow(fmt.Sprintf("flood-%d", i), epoch)
	}
	if n := l.Len(); n > 64+shards {
		t.Fatalf("table grew to %d keys", n)
	}
}

func TestLimitValidate(t *testing.T) {
	for _, bad := range []Limit{{0, time.Second}, {1, 0}, {10, 5 * time.Nanosecond}, {1, 400 * 24 * time.Hour}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// FuzzDecide checks the algorithm's invariants on arbitrary sequences: no
// more than quota + elapsed/interval requests are ever allowed, the numbers
// it reports stay within their ranges, and a denial always names a wait.
func FuzzDecide(f *testing.F) {
	f.Add(uint16(10), uint32(1000), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 50, 1})
	f.Add(uint16(1), uint32(1), []byte{255, 3, 7})
	f.Add(uint16(1000), uint32(60000), []byte{1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, quota uint16, windowMs uint32, steps []byte) {
		lim := Limit{Quota: int(quota), Window: time.Duration(windowMs) * time.Millisecond}
		if lim.Validate() != nil {
			return
		}
		T := int64(lim.Window) / int64(lim.Quota)
		window := int64(lim.Window)
		start := epoch.UnixNano()
		now, tat := start, int64(0)
		allowed := int64(0)
		for _, b := range steps {
			now += int64(b) * int64(time.Millisecond) / 4
			cost := int64(1 + b%3)
			newTat, r := Decide(tat, now, T, window, cost)
			if r.Remaining < 0 || int64(r.Remaining) > window/T {
				t.Fatalf("remaining %d out of range", r.Remaining)
			}
			if r.Reset < 0 || int64(r.Reset) > window {
				t.Fatalf("reset %v out of range", r.Reset)
			}
			if r.Allowed {
				allowed += cost
				if r.RetryAfter != 0 {
					t.Fatal("allowed with a retry time")
				}
			} else {
				if r.RetryAfter <= 0 {
					t.Fatalf("denied without a retry time: %+v", r)
				}
				if newTat != tat && !(tat < now && newTat == now) {
					t.Fatal("a denial changed the state")
				}
			}
			tat = newTat
			if max := window/T + (now-start)/T + 1; allowed > max {
				t.Fatalf("allowed %d > %d", allowed, max)
			}
		}
	})
}

func BenchmarkAllow(b *testing.B) {
	l, err := New(Limit{Quota: 1 << 20, Window: time.Hour}, 1024)
	if err != nil {
		b.Fatal(err)
	}
	now := epoch
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		l.Allow("spiffe://agentcloud.local/agent/a/session/s", now)
	}
}
