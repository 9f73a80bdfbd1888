// Package fairq is the front door's scheduler, in the manner of Kubernetes
// API Priority and Fairness: a total concurrency limit (seats) split among
// priority levels by their shares; per level a set of queues that flows are
// shuffle-sharded onto, served by start-time fair queuing so that every
// backlogged flow gets an equal part of the level's seats; queue length
// limits and queue timeouts; and borrowing, so that seats an idle level
// could lend go to busy ones. It knows flows and levels only by name: who
// a flow is and which level a request belongs to are decided by its caller
// (internal/gateway). Time comes from an injected clock.
//
// Lock order: Scheduler.mu is the only lock; timers and waiters take it.
package fairq

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/internal/gateway/clock"
)

// LevelConfig is one priority level.
type LevelConfig struct {
	Name string
	// Exempt levels run at once, outside the limit, and are not queued.
	Exempt bool
	// Shares is the level's part of the concurrency limit, relative to the
	// other levels' shares.
	Shares int
	// LendablePercent of the level's seats may be lent while it does not
	// use them; the rest are kept for it.
	LendablePercent int
	// BorrowingLimitPercent caps what the level borrows, as a percentage
	// of its own seats; negative means no cap.
	BorrowingLimitPercent int
	// Queues (0 = none: refuse when no seat is free), HandSize (queues a
	// flow may be dealt), QueueLength (requests per queue) and
	// QueueTimeout (longest wait; 0 = none).
	Queues       int
	HandSize     int
	QueueLength  int
	QueueTimeout time.Duration
}

// Config is the scheduler's configuration.
type Config struct {
	Levels []LevelConfig
	// ConcurrencyLimit is the total of seats (SetLimit changes it).
	ConcurrencyLimit int
	// MaxFlowsPerLevel bounds the table of remembered flows (active flows
	// are never dropped). Default 4096.
	MaxFlowsPerLevel int
	Clock            clock.Clock
}

// Validate checks the configuration and names the bad field.
func (c Config) Validate() error {
	if len(c.Levels) == 0 {
		return errors.New("levels: at least one priority level is needed")
	}
	seen := map[string]bool{}
	limited := 0
	for i, l := range c.Levels {
		at := fmt.Sprintf("levels[%d]", i)
		switch {
		case l.Name == "":
			return fmt.Errorf("%s.name: empty", at)
		case seen[l.Name]:
			return fmt.Errorf("%s.name: %q is used twice", at, l.Name)
		}
		seen[l.Name] = true
		if l.Exempt {
			continue
		}
		limited++
		switch {
		case l.Shares < 1 || l.Shares > 10000:
			return fmt.Errorf("%s.shares: %d; want 1 to 10000", at, l.Shares)
		case l.LendablePercent < 0 || l.LendablePercent > 100:
			return fmt.Errorf("%s.lendable_percent: %d; want 0 to 100", at, l.LendablePercent)
		case l.BorrowingLimitPercent > 10000:
			return fmt.Errorf("%s.borrowing_limit_percent: %d; want at most 10000 (negative: no cap)", at, l.BorrowingLimitPercent)
		case l.Queues < 0 || l.Queues > 512:
			return fmt.Errorf("%s.queues: %d; want 0 to 512", at, l.Queues)
		case l.Queues > 0 && (l.HandSize < 1 || l.HandSize > l.Queues || l.HandSize > 16):
			return fmt.Errorf("%s.hand_size: %d; want 1 to min(queues, 16)", at, l.HandSize)
		case l.Queues > 0 && (l.QueueLength < 1 || l.QueueLength > 10000):
			return fmt.Errorf("%s.queue_length: %d; want 1 to 10000", at, l.QueueLength)
		case l.QueueTimeout < 0 || l.QueueTimeout > 10*time.Minute:
			return fmt.Errorf("%s.queue_timeout: %s; want 0 to 10m", at, l.QueueTimeout)
		}
		if l.Queues > 0 && !dealable(l.Queues, l.HandSize) {
			return fmt.Errorf("%s: %d queues with hand size %d need more than 64 bits of entropy", at, l.Queues, l.HandSize)
		}
	}
	if limited > 0 && (c.ConcurrencyLimit < limited || c.ConcurrencyLimit > 1_000_000) {
		return fmt.Errorf("concurrency limit %d: want at least one seat per limited level (%d) and at most 1000000", c.ConcurrencyLimit, limited)
	}
	return nil
}

// Reason says why a request was not dispatched.
type Reason string

// The reasons.
const (
	// ReasonQueueFull: the queue the request's flow is bound to is full.
	ReasonQueueFull Reason = "queue-full"
	// ReasonNoSeat: no seat is free and the level has no queues.
	ReasonNoSeat Reason = "no-seat"
	// ReasonTimeout: the request waited the level's whole queue timeout.
	ReasonTimeout Reason = "queue-timeout"
	// ReasonCanceled: the caller gave up (its context ended) while queued.
	ReasonCanceled Reason = "canceled"
	// ReasonWouldTimeOut: the request would not reach a seat within the
	// level's queue timeout (expectedWait), so it is refused at once
	// instead of holding a connection until it times out.
	ReasonWouldTimeOut Reason = "would-time-out"
)

// RejectError is a request the scheduler did not dispatch.
type RejectError struct {
	Level  string
	Reason Reason
	// RetryAfter estimates when the level could take the request.
	RetryAfter time.Duration
	// OwnBacklog: the request's own flow fills most of its queue (it sends
	// more than its fair share), as opposed to the level being overloaded.
	OwnBacklog bool
	cause      error
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("priority level %s: %s (retry after %s)", e.Level, e.Reason, e.RetryAfter)
}

// Unwrap returns the context error of a canceled request.
func (e *RejectError) Unwrap() error { return e.cause }

// Scheduler dispatches requests into seats. It is safe for concurrent use.
type Scheduler struct {
	clock    clock.Clock
	seed     maphash.Seed
	maxFlows int

	mu        sync.Mutex // protects everything below and all levels, queues, flows, requests
	limit     int
	executing int // seats in use by limited levels
	levels    []*level
	byName    map[string]*level
}

type level struct {
	cfg                  LevelConfig
	nominal, lendable    int
	borrowLimit          int // -1: no cap
	executing, queued    int
	queues               []*queue
	flows                map[string]*flow
	vt                   float64 // virtual time, seconds
	estimate             float64 // service time estimate, seconds (EWMA)
	dispatched, rejected uint64
	timedOut             uint64
	waited               uint64       // dispatched after waiting in a queue
	waits                [256]float64 // recent queue waits, seconds (ring)
	waitN                int
	hand                 []int // scratch for dealing
}

type queue struct {
	idx       int
	reqs      []*request
	executing int
	finish    float64 // virtual finish tag of the last request dispatched
}

type flow struct {
	key                  string
	q                    *queue // bound while the flow has requests queued or executing
	queued, executing    int
	dispatched, rejected uint64
	rate                 float64 // arrivals per second, decayed
	rateAt, lastSeen     time.Time
}

type state uint8

const (
	waiting state = iota
	dispatched
	rejected
)

type request struct {
	lvl    *level
	flow   *flow
	q      *queue
	enq    time.Time
	ready  chan struct{}
	state  state
	reason Reason
	timer  clock.Timer
	ticket *Ticket
}

// Ticket is a dispatched request's seat. Call Done exactly once when the
// request has finished.
type Ticket struct {
	s     *Scheduler
	lvl   *level
	q     *queue
	f     *flow
	start time.Time
	wait  time.Duration
	est   float64
	done  bool
}

// Level is the ticket's priority level.
func (t *Ticket) Level() string { return t.lvl.cfg.Name }

// Wait is how long the request waited in a queue.
func (t *Ticket) Wait() time.Duration { return t.wait }

// Start is when the request got its seat.
func (t *Ticket) Start() time.Time { return t.start }

// New builds a scheduler.
func New(cfg Config) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.MaxFlowsPerLevel <= 0 {
		cfg.MaxFlowsPerLevel = 4096
	}
	s := &Scheduler{clock: cfg.Clock, seed: maphash.MakeSeed(), maxFlows: cfg.MaxFlowsPerLevel, byName: map[string]*level{}}
	for _, lc := range cfg.Levels {
		l := &level{cfg: lc, flows: map[string]*flow{}, estimate: 0.01, hand: make([]int, lc.HandSize)}
		for i := 0; i < lc.Queues; i++ {
			l.queues = append(l.queues, &queue{idx: i})
		}
		s.levels = append(s.levels, l)
		s.byName[lc.Name] = l
	}
	s.limit = cfg.ConcurrencyLimit
	s.apportion()
	return s, nil
}

// Limit is the current total of seats.
func (s *Scheduler) Limit() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limit
}

// Executing is the number of seats in use by limited levels.
func (s *Scheduler) Executing() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.executing
}

// SetLimit changes the total of seats (the adaptive limit does). Requests
// already running keep their seats; a smaller limit takes effect as they
// finish.
func (s *Scheduler) SetLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	min := 0
	for _, l := range s.levels {
		if !l.cfg.Exempt {
			min++
		}
	}
	if n < min {
		n = min
	}
	if n == s.limit {
		return
	}
	s.limit = n
	s.apportion()
	s.dispatchLocked()
}

// apportion splits the limit among limited levels by shares (largest
// remainder, at least one seat each); s.mu is held.
func (s *Scheduler) apportion() {
	total := 0
	for _, l := range s.levels {
		if !l.cfg.Exempt {
			total += l.cfg.Shares
		}
	}
	if total == 0 {
		return
	}
	type rem struct {
		l *level
		f float64
	}
	var rems []rem
	given := 0
	for _, l := range s.levels {
		if l.cfg.Exempt {
			continue
		}
		exact := float64(s.limit) * float64(l.cfg.Shares) / float64(total)
		l.nominal = int(math.Floor(exact))
		if l.nominal < 1 {
			l.nominal = 1
		}
		given += l.nominal
		rems = append(rems, rem{l, exact - math.Floor(exact)})
	}
	for given < s.limit && len(rems) > 0 {
		best := 0
		for i := range rems {
			if rems[i].f > rems[best].f {
				best = i
			}
		}
		rems[best].l.nominal++
		rems[best].f = -1
		given++
	}
	for _, l := range s.levels {
		if l.cfg.Exempt {
			continue
		}
		l.lendable = l.nominal * l.cfg.LendablePercent / 100
		l.borrowLimit = -1
		if l.cfg.BorrowingLimitPercent >= 0 {
			l.borrowLimit = (l.nominal*l.cfg.BorrowingLimitPercent + 99) / 100
		}
	}
}

// reserved is the part of l's seats no other level may take: its unlendable
// seats it is not using.
func (l *level) reserved() int {
	if l.cfg.Exempt {
		return 0
	}
	r := l.nominal - l.lendable - l.executing
	if r < 0 {
		return 0
	}
	return r
}

// canDispatch reports whether l may start one more request; s.mu is held.
func (s *Scheduler) canDispatch(l *level) bool {
	if l.cfg.Exempt {
		return true
	}
	free := s.limit - s.executing
	for _, o := range s.levels {
		if o != l {
			free -= o.reserved()
		}
	}
	if free <= 0 {
		return false
	}
	if l.executing < l.nominal || l.borrowLimit < 0 {
		return true
	}
	return l.executing-l.nominal < l.borrowLimit
}

// dispatchLocked starts queued requests while seats allow: first within
// each level's own seats, then borrowing, in level order; s.mu is held.
func (s *Scheduler) dispatchLocked() {
	for _, l := range s.levels {
		for l.queued > 0 && l.executing < l.nominal && s.canDispatch(l) {
			s.dispatchOne(l)
		}
	}
	for _, l := range s.levels {
		for l.queued > 0 && s.canDispatch(l) {
			s.dispatchOne(l)
		}
	}
}

// dispatchOne starts the head of the queue with the smallest start tag.
func (s *Scheduler) dispatchOne(l *level) {
	var best *queue
	bestTag := math.Inf(1)
	for _, q := range l.queues {
		if len(q.reqs) == 0 {
			continue
		}
		if tag := math.Max(l.vt, q.finish); tag < bestTag {
			best, bestTag = q, tag
		}
	}
	if best == nil {
		return
	}
	r := best.reqs[0]
	best.reqs[0] = nil
	best.reqs = best.reqs[1:]
	l.queued--
	r.flow.queued--
	if r.timer != nil {
		r.timer.Stop()
	}
	now := s.clock.Now()
	r.ticket = s.start(l, best, r.flow, now, now.Sub(r.enq), bestTag)
	r.state = dispatched
	close(r.ready)
}

// start takes a seat; s.mu is held.
func (s *Scheduler) start(l *level, q *queue, f *flow, now time.Time, wait time.Duration, tag float64) *Ticket {
	t := &Ticket{s: s, lvl: l, q: q, f: f, start: now, wait: wait, est: l.estimate}
	if q != nil {
		q.finish = tag + l.estimate
		q.executing++
		l.vt = tag
	}
	l.executing++
	if !l.cfg.Exempt {
		s.executing++
	}
	f.executing++
	f.dispatched++
	l.dispatched++
	if wait > 0 {
		l.waited++
	}
	l.waits[l.waitN%len(l.waits)] = wait.Seconds()
	l.waitN++
	return t
}

// ErrUnknownLevel is returned for a level name the scheduler does not have.
var ErrUnknownLevel = errors.New("unknown priority level")

// Acquire waits for a seat in level for flow. It returns a Ticket, or a
// *RejectError when the request is refused, times out in its queue or its
// context ends while queued.
func (s *Scheduler) Acquire(ctx context.Context, levelName, flowKey string) (*Ticket, error) {
	t, r, err := s.admit(levelName, flowKey)
	if r == nil {
		return t, err
	}
	select {
	case <-r.ready:
	case <-ctx.Done():
		s.cancel(r)
	}
	s.mu.Lock()
	st, reason, t := r.state, r.reason, r.ticket
	var retry time.Duration
	if st == rejected && reason != ReasonCanceled {
		retry = s.retryAfter(r.lvl)
	}
	s.mu.Unlock()
	name := r.lvl.cfg.Name
	switch {
	case st == dispatched && ctx.Err() == nil:
		return t, nil
	case st == dispatched:
		t.Done()
		return nil, &RejectError{Level: name, Reason: ReasonCanceled, cause: ctx.Err()}
	case reason == ReasonCanceled:
		return nil, &RejectError{Level: name, Reason: ReasonCanceled, cause: ctx.Err()}
	}
	return nil, &RejectError{Level: name, Reason: reason, RetryAfter: retry}
}

// admit dispatches the request at once (a Ticket), refuses it (an error) or
// queues it (a request to wait on).
func (s *Scheduler) admit(levelName, flowKey string) (*Ticket, *request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.byName[levelName]
	if l == nil {
		return nil, nil, fmt.Errorf("%w %q", ErrUnknownLevel, levelName)
	}
	now := s.clock.Now()
	f := s.flowFor(l, flowKey, now)
	if l.cfg.Exempt {
		return s.start(l, nil, f, now, 0, 0), nil, nil
	}
	if f.q == nil && len(l.queues) > 0 {
		f.q = s.pickQueue(l, flowKey)
	}
	if l.queued == 0 && s.canDispatch(l) {
		return s.start(l, f.q, f, now, 0, s.tagFor(l, f.q)), nil, nil
	}
	if len(l.queues) == 0 {
		return nil, nil, s.rejectLocked(l, f, ReasonNoSeat, false)
	}
	q := f.q
	if len(q.reqs) >= l.cfg.QueueLength {
		own := f.queued*2 >= l.cfg.QueueLength
		return nil, nil, s.rejectLocked(l, f, ReasonQueueFull, own)
	}
	if t := l.cfg.QueueTimeout; t > 0 && expectedWait(l, q) > t {
		own := f.queued*2 > len(q.reqs)
		return nil, nil, s.rejectLocked(l, f, ReasonWouldTimeOut, own)
	}
	r := &request{lvl: l, flow: f, q: q, enq: now, ready: make(chan struct{})}
	q.reqs = append(q.reqs, r)
	l.queued++
	f.queued++
	if l.cfg.QueueTimeout > 0 {
		r.timer = s.clock.AfterFunc(l.cfg.QueueTimeout, func() { s.expire(r) })
	}
	s.dispatchLocked()
	return nil, r, nil
}

// expectedWait estimates how long a request joining q would wait: fair
// queuing serves the level's backlogged queues in turn, so about (its place
// in q) x (backlogged queues) requests go before it, never more than the
// level's whole backlog, at the level's current parallelism and service
// time estimate; s.mu is held. Requests that would time out anyway are
// better refused at once: under a flood they would otherwise pile up by
// the thousand, each holding a connection, a goroutine and memory until
// its timeout, and the work of keeping them starves requests of other
// levels that have free seats (docs/RATIONALE.md).
func expectedWait(l *level, q *queue) time.Duration {
	backlogged := 0
	for _, o := range l.queues {
		if len(o.reqs) > 0 || o == q {
			backlogged++
		}
	}
	ahead := min((len(q.reqs)+1)*backlogged, l.queued+1)
	seats := max(l.executing, 1)
	return time.Duration(float64(ahead) * l.estimate / float64(seats) * float64(time.Second))
}

// cancel withdraws r if it is still queued.
func (s *Scheduler) cancel(r *request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.state != waiting {
		return
	}
	s.removeLocked(r)
	r.state, r.reason = rejected, ReasonCanceled
	if r.timer != nil {
		r.timer.Stop()
	}
	r.flow.rejected++
	r.lvl.rejected++
	s.unbindLocked(r.flow)
	close(r.ready)
}

// tagFor is the start tag of a request dispatched at once from q.
func (s *Scheduler) tagFor(l *level, q *queue) float64 {
	if q == nil {
		return l.vt
	}
	return math.Max(l.vt, q.finish)
}

// expire rejects r if it is still queued when its timeout fires.
func (s *Scheduler) expire(r *request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.state != waiting {
		return
	}
	s.removeLocked(r)
	r.state, r.reason = rejected, ReasonTimeout
	r.lvl.timedOut++
	r.lvl.rejected++
	r.flow.rejected++
	s.unbindLocked(r.flow)
	close(r.ready)
}

func (s *Scheduler) removeLocked(r *request) {
	q := r.q
	for i, x := range q.reqs {
		if x == r {
			copy(q.reqs[i:], q.reqs[i+1:])
			q.reqs[len(q.reqs)-1] = nil
			q.reqs = q.reqs[:len(q.reqs)-1]
			break
		}
	}
	r.lvl.queued--
	r.flow.queued--
}

func (s *Scheduler) rejectLocked(l *level, f *flow, reason Reason, own bool) *RejectError {
	l.rejected++
	f.rejected++
	s.unbindLocked(f)
	return &RejectError{Level: l.cfg.Name, Reason: reason, RetryAfter: s.retryAfter(l), OwnBacklog: own}
}

// retryAfter estimates when l could serve one more request: its queued
// work spread over its seats, at least a second, at most a minute.
func (s *Scheduler) retryAfter(l *level) time.Duration {
	seats := l.nominal
	if seats < 1 {
		seats = 1
	}
	d := time.Duration(float64(l.queued+1) * l.estimate / float64(seats) * float64(time.Second))
	if q := l.cfg.QueueTimeout; q > 0 && d > q {
		d = q
	}
	d = d.Round(time.Second)
	if d < time.Second {
		d = time.Second
	}
	if d > time.Minute {
		d = time.Minute
	}
	return d
}

func (s *Scheduler) unbindLocked(f *flow) {
	if f.queued == 0 && f.executing == 0 {
		f.q = nil
	}
}

// Done releases the seat and lets the next queued request start.
func (t *Ticket) Done() {
	s := t.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.done {
		return
	}
	t.done = true
	l := t.lvl
	dur := s.clock.Now().Sub(t.start).Seconds()
	if dur < 0 {
		dur = 0
	}
	l.executing--
	if !l.cfg.Exempt {
		s.executing--
	}
	if t.q != nil {
		t.q.executing--
		t.q.finish += dur - t.est // correct the estimate by what it cost
	}
	l.estimate = 0.9*l.estimate + 0.1*dur
	t.f.executing--
	s.unbindLocked(t.f)
	s.dispatchLocked()
}

// pickQueue deals flowKey a hand of queues and binds it to the emptiest.
func (s *Scheduler) pickQueue(l *level, flowKey string) *queue {
	deal(maphash.String(s.seed, flowKey), len(l.queues), l.hand)
	best := l.queues[l.hand[0]]
	for _, i := range l.hand[1:] {
		q := l.queues[i]
		if len(q.reqs)+q.executing < len(best.reqs)+best.executing {
			best = q
		}
	}
	return best
}

// dealable reports whether a 64-bit hash has enough entropy to deal a hand
// of hand cards from a deck of deck.
func dealable(deck, hand int) bool {
	bits := 0.0
	for i := 0; i < hand; i++ {
		bits += math.Log2(float64(deck - i))
	}
	return bits <= 64
}

// deal fills hand with distinct queue indexes in [0, deck) from h, the way
// Kubernetes' shuffle sharding dealer does: mixed-radix digits of h, each
// shifted past the smaller digits drawn before it.
func deal(h uint64, deck int, hand []int) {
	var rem [16]int
	for i := range hand {
		n := uint64(deck - i)
		rem[i] = int(h % n)
		h /= n
	}
	for i := range hand {
		card := rem[i]
		for j := i; j > 0; j-- {
			if card >= rem[j-1] {
				card++
			}
		}
		hand[i] = card
	}
}

// flowFor finds or creates the flow and counts its arrival; s.mu is held.
func (s *Scheduler) flowFor(l *level, key string, now time.Time) *flow {
	f := l.flows[key]
	if f == nil {
		if len(l.flows) >= s.maxFlows {
			s.evictFlows(l, now)
		}
		f = &flow{key: key, rateAt: now}
		l.flows[key] = f
	}
	f.rate = decay(f.rate, now.Sub(f.rateAt)) + 1/rateTau.Seconds()
	f.rateAt, f.lastSeen = now, now
	return f
}

const rateTau = 10 * time.Second

func decay(rate float64, dt time.Duration) float64 {
	if dt <= 0 {
		return rate
	}
	return rate * math.Exp(-dt.Seconds()/rateTau.Seconds())
}

// evictFlows forgets idle flows: first those not seen for a minute, then
// the least recently seen, down to three quarters of the table.
func (s *Scheduler) evictFlows(l *level, now time.Time) {
	var idle []*flow
	for k, f := range l.flows {
		if f.queued != 0 || f.executing != 0 {
			continue
		}
		if now.Sub(f.lastSeen) > time.Minute {
			delete(l.flows, k)
			continue
		}
		idle = append(idle, f)
	}
	excess := len(l.flows) - s.maxFlows*3/4
	if excess <= 0 {
		return
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].lastSeen.Before(idle[j].lastSeen) })
	for _, f := range idle {
		if excess == 0 {
			return
		}
		delete(l.flows, f.key)
		excess--
	}
	// Whatever remains is active; the queues bound how many those are.
}
