package fairq

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// learn runs n requests of level lvl that each hold their seat for d, so
// the level's service time estimate approaches d.
func learn(t *testing.T, s *Scheduler, clk interface{ Advance(time.Duration) }, lvl string, n int, d time.Duration) {
	t.Helper()
	for i := range n {
		tk, _ := mustAdmit(t, s, lvl, fmt.Sprintf("warm-%d", i))
		if tk == nil {
			t.Fatal("warm-up request queued")
		}
		clk.Advance(d)
		tk.Done()
	}
}

// TestShedWhatWouldTimeOutClass: a request that would not reach a seat
// within its level's queue timeout is refused at once (would-time-out,
// with a Retry-After), instead of waiting out the timeout while holding a
// connection: whether the backlog is one flow's, many flows' spread over
// the queues, or a level borrowing seats. What does queue is about a
// queue timeout's worth of work. A level without a queue timeout queues up
// to its queue length, and another level is not touched.
func TestShedWhatWouldTimeOutClass(t *testing.T) {
	const timeout = 5 * time.Second
	twoLevels := Config{ConcurrencyLimit: 4, Levels: []LevelConfig{
		{Name: "human", Shares: 1, Queues: 8, HandSize: 2, QueueLength: 100, QueueTimeout: timeout},
		{Name: "batch", Shares: 1, LendablePercent: 100, Queues: 64, HandSize: 4, QueueLength: 100, QueueTimeout: timeout},
	}}
	cases := []struct {
		name  string
		cfg   Config
		flows int // flows the backlog comes from
		// wantMin and wantMax bound how many queue before the first
		// refusal: a queue timeout's worth at the level's seats and a
		// service time of one second. With many flows a request in a
		// fresh queue is served after one request of each backlogged
		// queue, not after the whole backlog, so a few more fit, depending
		// on how the flows were dealt their queues.
		wantMin, wantMax int
		wantOwn          bool
	}{
		{"one flow", oneLevel(2, 16, 2, 100, timeout), 1, 8, 10, true},
		{"many flows", oneLevel(2, 16, 2, 100, timeout), 40, 8, 20, false},
		{"one flow, one queue", oneLevel(2, 1, 1, 100, timeout), 1, 8, 10, true},
		{"borrowing level", twoLevels, 20, 8, 20, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, clk := newSched(t, tc.cfg)
			lvl := tc.cfg.Levels[len(tc.cfg.Levels)-1].Name
			learn(t, s, clk, lvl, 60, time.Second)
			// Fill the seats the level may use, then queue until refused.
			var held []*Ticket
			for i := 0; ; i++ {
				tk, r, err := s.admit(lvl, fmt.Sprintf("f%d", i%tc.flows))
				if err != nil {
					t.Fatalf("while filling seats: %v", err)
				}
				if r != nil {
					s.cancel(r)
					break
				}
				held = append(held, tk)
			}
			queued := 0
			var re *RejectError
			for i := 0; ; i++ {
				_, r, err := s.admit(lvl, fmt.Sprintf("f%d", i%tc.flows))
				if err != nil {
					if !errors.As(err, &re) {
						t.Fatal(err)
					}
					break
				}
				if r == nil {
					t.Fatal("dispatched with every seat taken")
				}
				queued++
				if queued > 100 {
					t.Fatal("never refused")
				}
			}
			if re.Reason != ReasonWouldTimeOut || re.RetryAfter < time.Second || re.OwnBacklog != tc.wantOwn {
				t.Fatalf("refusal %+v; want would-time-out, a retry-after, own backlog %v", re, tc.wantOwn)
			}
			if queued < tc.wantMin || queued > tc.wantMax {
				t.Fatalf("%d queued before the first refusal with %d seats; want %d to %d (a queue timeout's worth)", queued, len(held), tc.wantMin, tc.wantMax)
			}
			if lv := s.Levels(); tc.cfg.Levels[0].Name == "human" {
				if tk, r, err := s.admit("human", "person"); err != nil || r != nil || tk == nil || lv[0].Queued != 0 {
					t.Fatalf("the other level's request: %v %v %v", tk, r, err)
				}
			}
		})
	}
	t.Run("no queue timeout", func(t *testing.T) {
		s, clk := newSched(t, oneLevel(1, 4, 1, 30, 0))
		learn(t, s, clk, "l", 60, time.Minute)
		mustAdmit(t, s, "l", "busy")
		for i := range 30 {
			if _, r := mustAdmit(t, s, "l", "a"); r == nil {
				t.Fatalf("request %d not queued", i)
			}
		}
		var re *RejectError
		if _, _, err := s.admit("l", "a"); !errors.As(err, &re) || re.Reason != ReasonQueueFull {
			t.Fatalf("got %v, want queue-full", err)
		}
	})
}
