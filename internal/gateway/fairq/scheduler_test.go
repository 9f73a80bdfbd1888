package fairq

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/gateway/clock"
)

var t0 = time.Unix(1_800_000_000, 0)

func oneLevel(limit, queues, hand, qlen int, timeout time.Duration) Config {
	return Config{ConcurrencyLimit: limit, Levels: []LevelConfig{{
		Name: "l", Shares: 1, Queues: queues, HandSize: hand, QueueLength: qlen, QueueTimeout: timeout,
	}}}
}

func newSched(t *testing.T, cfg Config) (*Scheduler, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(t0)
	cfg.Clock = clk
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

func mustAdmit(t *testing.T, s *Scheduler, level, flow string) (*Ticket, *request) {
	t.Helper()
	tk, r, err := s.admit(level, flow)
	if err != nil {
		t.Fatalf("admit %s/%s: %v", level, flow, err)
	}
	return tk, r
}

func TestDispatchQueueAndRelease(t *testing.T) {
	s, _ := newSched(t, oneLevel(2, 4, 2, 8, 0))
	a, _ := mustAdmit(t, s, "l", "a")
	b, _ := mustAdmit(t, s, "l", "b")
	if a == nil || b == nil {
		t.Fatal("two seats should dispatch two requests at once")
	}
	_, r := mustAdmit(t, s, "l", "c")
	if r == nil || r.state != waiting {
		t.Fatal("third request should queue")
	}
	a.Done()
	a.Done() // idempotent
	if r.state != dispatched || r.ticket == nil {
		t.Fatal("a released seat should dispatch the queued request")
	}
	if lv := s.Levels()[0]; lv.Executing != 2 || lv.Queued != 0 || lv.Dispatched != 3 {
		t.Fatalf("levels: %+v", lv)
	}
	b.Done()
	r.ticket.Done()
	if s.Executing() != 0 {
		t.Fatalf("executing %d after all done", s.Executing())
	}
}

// TestRejectionClass: queue full (own backlog and shared), no queues,
// queue timeout and cancellation each refuse with their reason, and each
// leaves the counters whole.
func TestRejectionClass(t *testing.T) {
	t.Run("queue full, own backlog", func(t *testing.T) {
		s, _ := newSched(t, oneLevel(1, 1, 1, 2, 0))
		mustAdmit(t, s, "l", "busy")
		mustAdmit(t, s, "l", "noisy")
		mustAdmit(t, s, "l", "noisy")
		_, _, err := s.admit("l", "noisy")
		var re *RejectError
		if !errors.As(err, &re) || re.Reason != ReasonQueueFull || !re.OwnBacklog || re.RetryAfter < time.Second {
			t.Fatalf("got %v", err)
		}
		// Another flow on the same (only) queue is refused too, but not
		// for its own backlog.
		_, _, err = s.admit("l", "innocent")
		if !errors.As(err, &re) || re.Reason != ReasonQueueFull || re.OwnBacklog {
			t.Fatalf("innocent: %v", err)
		}
	})
	t.Run("no queues", func(t *testing.T) {
		s, _ := newSched(t, oneLevel(1, 0, 0, 0, 0))
		mustAdmit(t, s, "l", "a")
		_, _, err := s.admit("l", "b")
		var re *RejectError
		if !errors.As(err, &re) || re.Reason != ReasonNoSeat {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		s, clk := newSched(t, oneLevel(1, 2, 1, 4, 3*time.Second))
		first, _ := mustAdmit(t, s, "l", "a")
		done := make(chan error, 1)
		go func() {
			_, err := s.Acquire(context.Background(), "l", "b")
			done <- err
		}()
		waitQueued(t, s, 1)
		clk.Advance(2 * time.Second)
		select {
		case err := <-done:
			t.Fatalf("timed out early: %v", err)
		default:
		}
		clk.Advance(time.Second)
		err := <-done
		var re *RejectError
		if !errors.As(err, &re) || re.Reason != ReasonTimeout || re.RetryAfter < time.Second {
			t.Fatalf("got %v", err)
		}
		if lv := s.Levels()[0]; lv.TimedOut != 1 || lv.Queued != 0 {
			t.Fatalf("levels %+v", lv)
		}
		first.Done()
		if s.Executing() != 0 || clk.Pending() != 0 {
			t.Fatal("leaked a seat or a timer")
		}
	})
	t.Run("canceled", func(t *testing.T) {
		s, clk := newSched(t, oneLevel(1, 2, 1, 4, time.Minute))
		first, _ := mustAdmit(t, s, "l", "a")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := s.Acquire(ctx, "l", "b")
			done <- err
		}()
		waitQueued(t, s, 1)
		cancel()
		err := <-done
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
		if s.Levels()[0].Queued != 0 || clk.Pending() != 0 {
			t.Fatal("canceled request left in the queue or its timer running")
		}
		first.Done()
	})
	t.Run("unknown level", func(t *testing.T) {
		s, _ := newSched(t, oneLevel(1, 0, 0, 0, 0))
		if _, err := s.Acquire(context.Background(), "nope", "a"); !errors.Is(err, ErrUnknownLevel) {
			t.Fatalf("got %v", err)
		}
	})
}

func waitQueued(t *testing.T, s *Scheduler, n int) {
	t.Helper()
	for i := 0; ; i++ {
		q := 0
		for _, l := range s.Levels() {
			q += l.Queued
		}
		if q == n {
			return
		}
		if i > 1_000_000 {
			t.Fatalf("never saw %d queued", n)
		}
		time.Sleep(10 * time.Microsecond) // yield to the goroutine that queues; not a timing assertion
	}
}

// TestBorrowingClass: an idle level lends its lendable seats; a busy
// level gets its own seats back as borrowed ones finish (before any other
// borrower); unlendable seats are never lent; the borrowing limit holds.
func TestBorrowingClass(t *testing.T) {
	cfg := Config{ConcurrencyLimit: 8, Levels: []LevelConfig{
		{Name: "lender", Shares: 1, LendablePercent: 50, BorrowingLimitPercent: -1, Queues: 4, HandSize: 2, QueueLength: 50},
		{Name: "borrower", Shares: 1, LendablePercent: 0, BorrowingLimitPercent: -1, Queues: 4, HandSize: 2, QueueLength: 50},
		{Name: "capped", Shares: 2, LendablePercent: 0, BorrowingLimitPercent: 0, Queues: 4, HandSize: 2, QueueLength: 50},
	}}
	s, _ := newSched(t, cfg)
	lv := s.Levels()
	if lv[0].NominalSeats != 2 || lv[0].LendableSeats != 1 || lv[1].NominalSeats != 2 || lv[2].NominalSeats != 4 {
		t.Fatalf("apportioned %+v", lv)
	}
	var borrowed []*Ticket
	var queued []*request
	for i := 0; i < 10; i++ {
		tk, r := mustAdmit(t, s, "borrower", fmt.Sprintf("b%d", i))
		if tk != nil {
			borrowed = append(borrowed, tk)
		} else {
			queued = append(queued, r)
		}
	}
	// Own 2 + the lender's 1 lendable seat; the capped level's 4 seats are
	// unlendable.
	if len(borrowed) != 3 {
		t.Fatalf("borrower runs %d, want 3 (2 own + 1 lent)", len(borrowed))
	}
	// The lender wakes up: its unlendable seat is free at once; its lent
	// seat comes back only when a borrowed request finishes.
	l1, _ := mustAdmit(t, s, "lender", "x")
	_, lq := mustAdmit(t, s, "lender", "y")
	if l1 == nil || lq == nil {
		t.Fatal("lender: want one dispatched at once and one queued")
	}
	borrowed[0].Done()
	if lq.state != dispatched {
		t.Fatal("a finished borrowed request must give the seat back to the lender first")
	}
	for _, r := range queued {
		if r.state == dispatched {
			t.Fatal("borrower got a seat the lender was waiting for")
		}
	}
	// The capped level cannot borrow even when everything else is idle.
	s2, _ := newSched(t, cfg)
	n := 0
	for i := 0; i < 10; i++ {
		if tk, _ := mustAdmit(t, s2, "capped", fmt.Sprintf("c%d", i)); tk != nil {
			n++
		}
	}
	if n != 4 {
		t.Fatalf("capped level runs %d, want its 4 own seats", n)
	}
}

// TestExemptLevel: an exempt level is never queued and does not count
// against the limit.
func TestExemptLevel(t *testing.T) {
	s, _ := newSched(t, Config{ConcurrencyLimit: 1, Levels: []LevelConfig{
		{Name: "exempt", Exempt: true},
		{Name: "l", Shares: 1},
	}})
	for i := 0; i < 100; i++ {
		if tk, _ := mustAdmit(t, s, "exempt", "x"); tk == nil {
			t.Fatal("exempt request not dispatched")
		}
	}
	if tk, _ := mustAdmit(t, s, "l", "y"); tk == nil {
		t.Fatal("the limited level lost its seat to an exempt one")
	}
}

// jain is Jain's fairness index of xs: 1 is perfectly fair, 1/n is one
// taking everything.
func jain(xs []float64) float64 {
	var sum, sq float64
	for _, x := range xs {
		sum += x
		sq += x * x
	}
	if sq == 0 {
		return 1
	}
	return sum * sum / (float64(len(xs)) * sq)
}

// simulate runs closed-loop flows through one level with the fake clock:
// flow i keeps backlog[i] requests outstanding and each of its requests
// holds a seat for cost[i]; tickets finish in start order. It returns each
// flow's seat-time.
func simulate(t *testing.T, s *Scheduler, clk *clock.Fake, backlog []int, cost []time.Duration, completions int) []float64 {
	t.Helper()
	type running struct {
		tk   *Ticket
		flow int
		end  time.Time
	}
	var run []running
	var waiting []struct {
		r    *request
		flow int
	}
	seat := make([]float64, len(backlog))
	submit := func(i int) {
		tk, r, err := s.admit("l", fmt.Sprintf("flow-%d", i))
		if err != nil {
			t.Fatalf("flow %d refused: %v", i, err)
		}
		if tk != nil {
			run = append(run, running{tk, i, clk.Now().Add(cost[i])})
			return
		}
		waiting = append(waiting, struct {
			r    *request
			flow int
		}{r, i})
	}
	for i, n := range backlog {
		for j := 0; j < n; j++ {
			submit(i)
		}
	}
	for c := 0; c < completions; c++ {
		// Finish the running request that ends first.
		first := 0
		for i := range run {
			if run[i].end.Before(run[first].end) {
				first = i
			}
		}
		done := run[first]
		run = append(run[:first], run[first+1:]...)
		if done.end.After(clk.Now()) {
			clk.Set(done.end)
		}
		seat[done.flow] += cost[done.flow].Seconds()
		done.tk.Done()
		// Whatever the release dispatched starts now.
		kept := waiting[:0]
		for _, w := range waiting {
			if w.r.state == dispatched {
				run = append(run, running{w.r.ticket, w.flow, clk.Now().Add(cost[w.flow])})
			} else {
				kept = append(kept, w)
			}
		}
		waiting = kept
		submit(done.flow) // closed loop: keep the flow's backlog
	}
	return seat
}

// TestFairnessJainClass: at one level, a noisy identity with ten times the
// backlog of nine others, or with requests three times as long, cannot take
// more than its share: Jain's index over the ten identities' seat-time is
// at least 0.95.
func TestFairnessJainClass(t *testing.T) {
	for _, tc := range []struct {
		name      string
		noisyLoad int
		noisyCost time.Duration
	}{
		{"ten times the backlog", 100, 10 * time.Millisecond},
		{"three times the cost", 10, 30 * time.Millisecond},
		{"both", 100, 30 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, clk := newSched(t, oneLevel(4, 64, 8, 200, 0))
			backlog := make([]int, 10)
			cost := make([]time.Duration, 10)
			for i := range backlog {
				backlog[i], cost[i] = 10, 10*time.Millisecond
			}
			backlog[0], cost[0] = tc.noisyLoad, tc.noisyCost
			seat := simulate(t, s, clk, backlog, cost, 3000)
			j := jain(seat)
			t.Logf("seat-time per flow %.2f, Jain %.4f", seat, j)
			if j < 0.95 {
				t.Fatalf("Jain's index %.3f < 0.95: %.2f", j, seat)
			}
		})
	}
}

// TestConcurrentPrincipalsRace: many goroutines of two levels acquire and
// release at once; the limit is never exceeded and nothing leaks.
func TestConcurrentPrincipalsRace(t *testing.T) {
	s, err := New(Config{ConcurrencyLimit: 4, Levels: []LevelConfig{
		{Name: "a", Shares: 1, LendablePercent: 50, BorrowingLimitPercent: -1, Queues: 8, HandSize: 2, QueueLength: 1000},
		{Name: "b", Shares: 1, LendablePercent: 50, BorrowingLimitPercent: -1, Queues: 8, HandSize: 2, QueueLength: 1000},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var inflight, peak atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(g)))
			for i := 0; i < 200; i++ {
				ctx, cancel := context.WithCancel(context.Background())
				if rng.Intn(20) == 0 {
					cancel()
				}
				tk, err := s.Acquire(ctx, []string{"a", "b"}[g%2], fmt.Sprintf("p%d", g%5))
				cancel()
				if err != nil {
					continue
				}
				n := inflight.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				inflight.Add(-1)
				tk.Done()
			}
		}(g)
	}
	wg.Wait()
	if peak.Load() > 4 {
		t.Fatalf("%d requests ran at once with 4 seats", peak.Load())
	}
	for _, l := range s.Levels() {
		if l.Executing != 0 || l.Queued != 0 || l.ActiveFlows != 0 {
			t.Fatalf("leak: %+v", l)
		}
	}
}

func TestSetLimitReapportions(t *testing.T) {
	s, _ := newSched(t, Config{ConcurrencyLimit: 10, Levels: []LevelConfig{
		{Name: "a", Shares: 3, Queues: 4, HandSize: 1, QueueLength: 10},
		{Name: "b", Shares: 1, Queues: 4, HandSize: 1, QueueLength: 10},
	}})
	for i := 0; i < 12; i++ {
		mustAdmit(t, s, "a", "x")
	}
	if lv := s.Levels(); lv[0].NominalSeats+lv[1].NominalSeats != 10 || lv[0].Executing != 8 {
		t.Fatalf("before: %+v", lv)
	}
	s.SetLimit(20)
	if lv := s.Levels(); lv[0].NominalSeats != 15 || lv[1].NominalSeats != 5 || lv[0].Executing != 12 || lv[0].Queued != 0 {
		t.Fatalf("after growing: %+v", lv)
	}
	s.SetLimit(1)
	if s.Limit() != 2 {
		t.Fatalf("limit %d; want at least one seat per level", s.Limit())
	}
}

func TestFlowTableBounded(t *testing.T) {
	cfg := oneLevel(1_000_000, 0, 0, 0, 0)
	cfg.MaxFlowsPerLevel = 100
	s, clk := newSched(t, cfg)
	for i := 0; i < 10_000; i++ {
		tk, _ := mustAdmit(t, s, "l", fmt.Sprintf("id-%d", i))
		tk.Done()
		clk.Advance(time.Millisecond)
	}
	if n := len(s.Flows("")); n > 100 {
		t.Fatalf("%d flows remembered", n)
	}
	top := s.Top(3)
	if len(top) != 3 || top[0].RatePerSecond < top[2].RatePerSecond {
		t.Fatalf("top: %+v", top)
	}
}

func TestValidate(t *testing.T) {
	good := LevelConfig{Name: "x", Shares: 1, Queues: 8, HandSize: 2, QueueLength: 10}
	bad := []Config{
		{ConcurrencyLimit: 4},
		{ConcurrencyLimit: 4, Levels: []LevelConfig{good, good}},
		{ConcurrencyLimit: 0, Levels: []LevelConfig{good}},
		{ConcurrencyLimit: 4, Levels: []LevelConfig{{Name: "x", Shares: 0}}},
		{ConcurrencyLimit: 4, Levels: []LevelConfig{{Name: "x", Shares: 1, Queues: 4, HandSize: 5, QueueLength: 1}}},
		{ConcurrencyLimit: 4, Levels: []LevelConfig{{Name: "x", Shares: 1, Queues: 512, HandSize: 16, QueueLength: 1}}},
		{ConcurrencyLimit: 4, Levels: []LevelConfig{{Name: "x", Shares: 1, LendablePercent: 101}}},
	}
	for i, c := range bad {
		if c.Validate() == nil {
			t.Errorf("case %d accepted", i)
		}
	}
}

func FuzzDeal(f *testing.F) {
	f.Add(uint64(0), uint8(64), uint8(8))
	f.Add(^uint64(0), uint8(2), uint8(2))
	f.Fuzz(func(t *testing.T, h uint64, deck, hand uint8) {
		if deck == 0 || hand == 0 || hand > deck || hand > 16 || !dealable(int(deck), int(hand)) {
			return
		}
		out := make([]int, hand)
		deal(h, int(deck), out)
		seen := map[int]bool{}
		for _, c := range out {
			if c < 0 || c >= int(deck) || seen[c] {
				t.Fatalf("deal(%d, %d, %d) = %v", h, deck, hand, out)
			}
			seen[c] = true
		}
	})
}

func BenchmarkAcquireRelease(b *testing.B) {
	s, _ := New(oneLevel(64, 64, 8, 100, time.Second))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		tk, err := s.Acquire(ctx, "l", "spiffe://agentcloud.local/user/alice")
		if err != nil {
			b.Fatal(err)
		}
		tk.Done()
	}
}
