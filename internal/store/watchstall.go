package store

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stalled watches.
//
// A watch is an ordered consumer that lives on one member of its stream's
// group. When that member dies without leading the stream, nothing is
// elected, so no advisory resumes the watch (leaderElected), and the
// client library notices the dead consumer only after missing two of its
// 5 s heartbeats (a constant of the library). For those 10–15 s the watch
// delivers nothing: a cluster member watching the cluster bucket through
// it saw no lease change and kept sending a dead member's sessions to the
// dead member (docs/CAPACITY.md, failover).
//
// The store sees the gap sooner through its own writes: a write through
// this store to a key a watch covers must come back through that watch.
// When it has not come back watchStallAfter after the write was
// acknowledged, the watch starts again (a catch-up, reporting keys deleted
// in the gap), on whichever member the new consumer lands. A slow but
// live consumer costs at most that catch-up. Only replicated stores
// check: a single node's consumer dies only with the node.

// watchStallAfter is how long a write may take to come back through a
// watch covering its key before the watch is resumed.
const watchStallAfter = time.Second

// errWatchStalled is why a watch was resumed after a stall.
var errWatchStalled = errors.New("a write through this store did not come back through the watch")

// watchSet is the store's running watches, by stream.
type watchSet struct {
	mu     sync.Mutex
	by     map[string]map[*kvWatch]struct{}
	stalls atomic.Uint64 // watches resumed after a stall
	// beforeStop, if set (tests only, export_test.go), runs before every
	// watcher's Stop (endWatch).
	beforeStop func()
}

// endWatch ends one run of a watch: stop (startWatch's) and the watcher's
// Stop, which deletes the watch's consumer with a request (the client
// library's Unsubscribe). A resume must not wait for that request: when
// the consumer lived on a member that died, it is never answered and
// waits out the client's 5 s request timeout, and a resume after a stall
// or an election (the whole point of which is to deliver again soon)
// started only then; in failovers a member saw no lease change for
// those 5 s and answered 503 for sessions a survivor already served. So
// stop runs now (it cancels the watch's context; the library then
// unsubscribes on its own) and the watcher's Stop in the background.
func (s *Store) endWatch(kw jetstream.KeyWatcher, stop func()) {
	stop()
	s.watches.mu.Lock()
	before := s.watches.beforeStop
	s.watches.mu.Unlock()
	go func() {
		if before != nil {
			before()
		}
		_ = kw.Stop()
	}()
}

func (ws *watchSet) add(stream string, w *kvWatch) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.by == nil {
		ws.by = map[string]map[*kvWatch]struct{}{}
	}
	if ws.by[stream] == nil {
		ws.by[stream] = map[*kvWatch]struct{}{}
	}
	ws.by[stream][w] = struct{}{}
}

func (ws *watchSet) remove(stream string, w *kvWatch) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	delete(ws.by[stream], w)
	if len(ws.by[stream]) == 0 {
		delete(ws.by, stream)
	}
	w.stall.stop()
}

// wrote tells the watches of stream covering key that this store wrote
// revision rev of it.
func (s *Store) wroteKey(stream, key string, rev uint64) {
	if s.opts.Replicas <= 1 || rev == 0 {
		return
	}
	s.watches.mu.Lock()
	defer s.watches.mu.Unlock()
	for w := range s.watches.by[stream] {
		if covers(w.filter, key) {
			w.stall.expect(rev)
		}
	}
}

// covers reports whether subject filter f (a key, or prefix.> or >)
// matches key.
func covers(f, key string) bool {
	switch {
	case f == ">":
		return true
	case strings.HasSuffix(f, ".>"):
		return strings.HasPrefix(key, f[:len(f)-1])
	}
	return f == key
}

// stallCheck is one watch's record of the writes it still owes.
type stallCheck struct {
	mu        sync.Mutex
	delivered uint64        // the highest revision the watch delivered
	owed      []owedWrite   // writes not delivered yet, oldest first
	timer     *time.Timer   // armed while owed is not empty
	stopped   bool          // the watch ended
	stalled   chan struct{} // signalled (capacity 1) when a write is overdue
}

// owedWrite is a write the watch has yet to deliver.
type owedWrite struct {
	rev uint64
	at  time.Time
}

// maxOwed bounds the writes a watch tracks; the oldest decide a stall.
const maxOwed = 64

func newStallCheck() *stallCheck { return &stallCheck{stalled: make(chan struct{}, 1)} }

// expect notes that revision rev must come back through the watch.
func (c *stallCheck) expect(rev uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || rev <= c.delivered || len(c.owed) >= maxOwed {
		return
	}
	c.owed = append(c.owed, owedWrite{rev, time.Now()})
	if len(c.owed) == 1 {
		c.arm(watchStallAfter)
	}
}

func (c *stallCheck) arm(d time.Duration) {
	if c.timer == nil {
		c.timer = time.AfterFunc(d, c.check)
	} else {
		c.timer.Reset(d)
	}
}

// deliver notes that the watch delivered revision rev (revisions are the
// stream's sequence: one delivered past a write means the write was too).
func (c *stallCheck) deliver(rev uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rev <= c.delivered {
		return
	}
	c.delivered = rev
	kept := c.owed[:0]
	for _, o := range c.owed {
		if o.rev > rev {
			kept = append(kept, o)
		}
	}
	c.owed = kept
}

// check signals a stall when the oldest owed write is overdue, or waits
// for it to become so.
func (c *stallCheck) check() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || len(c.owed) == 0 {
		return
	}
	if wait := watchStallAfter - time.Since(c.owed[0].at); wait > 0 {
		c.arm(wait)
		return
	}
	c.owed = c.owed[:0] // one resume per stall; a later write arms again
	select {
	case c.stalled <- struct{}{}:
	default:
	}
}

func (c *stallCheck) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if c.timer != nil {
		c.timer.Stop()
	}
}
