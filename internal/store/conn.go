package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrTooLarge: a value is larger than the store accepts in one record.
var ErrTooLarge = errors.New("store: value too large")

// binding is a handle (bucket, stream, object store) bound to one
// generation of the connection; get rebinds it after a replacement.
type binding[T any] struct {
	s    *Store
	open func(ctx context.Context, js jetstream.JetStream) (T, error)

	mu  sync.Mutex // guards gen and h
	gen uint64
	h   T
}

func (b *binding[T]) get(ctx context.Context) (T, error) {
	c := b.s.cur.Load()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gen == c.gen {
		return b.h, nil
	}
	h, err := b.attempt(ctx, c.js, 0)
	// Bounded, so a replica count the cluster can never place (more
	// replicas than members) fails instead of waiting for ever.
	giveUp := time.Now().Add(placementWait)
	for n, wait := 1, 50*time.Millisecond; err != nil && b.s.forming(ctx, err) && time.Now().Before(giveUp); n, wait = n+1, min(2*wait, time.Second) {
		// A cluster that has just formed, or just lost a member, may not
		// yet count enough current peers to place a replicated bucket;
		// that settles within moments.
		b.s.log.Debug("store: opening a handle again", "attempt", n, "err", err)
		select {
		case <-ctx.Done():
			var zero T
			return zero, fmt.Errorf("%w: %w", ErrUnavailable, err)
		case <-time.After(wait):
		}
		h, err = b.attempt(ctx, c.js, n)
	}
	if err != nil {
		var zero T
		return zero, mapConnErr(err)
	}
	b.h, b.gen = h, c.gen
	return h, nil
}

// attempt is the n-th (from 0) try of opening the handle. With replicas
// each try has its own short deadline (openAttemptTimeout): JetStream
// leaves some requests of a forming cluster unanswered, and the client
// would wait its full API timeout (5 s) for each. Two members creating
// the same stream at once is one: the meta leader takes the second,
// equal create but no one replies to it; a stream info for a stream whose
// first leader is not elected yet is another. Every member opens every
// bucket at start, all at about the same moment, so a fresh cluster hit
// this for bucket after bucket and took longer to start than its callers
// waited. A retry finds the stream the other member created.
func (b *binding[T]) attempt(ctx context.Context, js jetstream.JetStream, n int) (T, error) {
	if b.s.opts.Replicas <= 1 {
		return b.open(ctx, js)
	}
	actx, cancel := context.WithTimeout(ctx, openAttemptTimeout(n))
	defer cancel()
	return b.open(actx, js)
}

// openAttemptTimeout is the deadline of the n-th try of opening a
// replicated handle: short at first (creating a replicated stream takes
// tens of milliseconds on loopback, a few hundred on a loaded machine),
// doubling up to twice the client's own API timeout.
func openAttemptTimeout(n int) time.Duration {
	return min(250*time.Millisecond<<min(n, 6), 10*time.Second)
}

// short shortens a key for error messages.
func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// tooLarge maps the client's and the server's size refusals to a 413
// problem that is also ErrTooLarge.
func tooLarge(what string, n int, err error) error {
	if errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum) {
		return api.Errorf(api.KindTooLarge, "%s of %d bytes is larger than the store accepts in one record: %w", what, n, ErrTooLarge)
	}
	return err
}

// kvWatch is one Watch, resumed across connection replacements.
type kvWatch struct {
	k       *natsKV
	filter  string
	fn      func(WatchEvent)
	known   map[string]struct{} // keys delivered as present
	stall   *stallCheck         // writes through this store owed by the watch (watchstall.go)
	initial chan struct{}       // closed once the first catch-up is delivered (or failed)
	done    chan struct{}
	err     error // set before initial is closed when the first watch fails
}

func (w *kvWatch) run(ctx context.Context) {
	defer close(w.done)
	first := true
	wait := 20 * time.Millisecond
	for {
		_, changed := w.k.s.current()
		resumed, err := w.once(ctx, first, changed)
		if first && !resumed {
			w.err = err
			close(w.initial)
			return
		}
		if resumed && first {
			first = false
		}
		if ctx.Err() != nil || w.k.s.isClosing() {
			return
		}
		if err != nil {
			w.k.s.log.Warn("store watch interrupted; resuming", "filter", short(w.filter), "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
			wait = 20 * time.Millisecond
		case <-time.After(wait):
			wait = min(wait*2, 2*time.Second)
		}
	}
}

// once watches on the current connection until ctx ends, the connection
// is replaced or the watch fails. caughtUp reports whether it delivered a
// full catch-up (the first one closes w.initial).
func (w *kvWatch) once(ctx context.Context, first bool, changed <-chan struct{}) (caughtUp bool, err error) {
	kv, err := w.k.b.get(ctx)
	if err != nil {
		return false, fmt.Errorf("watch %q: %w", short(w.filter), err)
	}
	kw, stopWatch, err := w.k.s.startWatch(ctx, kv, w.filter)
	if err != nil {
		return false, mapKVErr("watch", w.filter, err)
	}
	defer w.k.s.endWatch(kw, stopWatch)
	elected, stop := w.k.s.leaderElected(w.k.stream)
	defer stop()
	select { // a stall seen before this start is answered by it
	case <-w.stall.stalled:
	default:
	}
	var seen map[string]struct{} // keys present in this catch-up
	if !first {
		seen = map[string]struct{}{}
	}
	for {
		var el, st <-chan struct{}
		if caughtUp { // a signal during the catch-up waits for its end
			el, st = elected, w.stall.stalled
		}
		select {
		case <-ctx.Done():
			return caughtUp, nil
		case <-changed:
			return caughtUp, nil
		case <-el:
			// The watch's consumer lived on the old leader; the client
			// would notice only after missing two of its 5 s heartbeats.
			return caughtUp, nil
		case <-st:
			w.k.s.watches.stalls.Add(1)
			return caughtUp, errWatchStalled
		case e, ok := <-kw.Updates():
			if !ok {
				return caughtUp, fmt.Errorf("watch %q: updates ended", short(w.filter))
			}
			if e == nil { // the end of the current entries
				if caughtUp {
					continue
				}
				caughtUp = true
				if first {
					close(w.initial)
					continue
				}
				// Keys deleted while no watch ran are reported now.
				for key := range w.known {
					if _, ok := seen[key]; !ok {
						delete(w.known, key)
						w.fn(WatchEvent{Key: key, Deleted: true})
					}
				}
				seen = nil
				continue
			}
			ev := WatchEvent{Key: e.Key(), Value: e.Value(), Revision: e.Revision(),
				Deleted: e.Operation() != jetstream.KeyValuePut}
			w.stall.deliver(ev.Revision)
			if ev.Deleted {
				delete(w.known, ev.Key)
			} else {
				w.known[ev.Key] = struct{}{}
				if seen != nil {
					seen[ev.Key] = struct{}{}
				}
			}
			w.fn(ev)
		}
	}
}

// placementWait is how long opening a bucket waits for a forming cluster
// to count enough peers and to create its stream. On a machine loaded
// twenty times over (three race-enabled members among other builds) one
// replicated create took over ten seconds, and 15 s was not enough.
const placementWait = time.Minute

// errCodeNoPeers is JetStream's error code for "no suitable peers for
// placement" (the client library names no constant for it).
const errCodeNoPeers jetstream.ErrorCode = 10005

// forming reports an error of opening a bucket that a forming cluster
// gives: no suitable peers for placement yet, or, with replicas, a
// request the meta leader did not answer in time (it was just elected, or
// every member is creating the same buckets at once), or a bucket another
// member has just created that this one does not see yet.
func (s *Store) forming(ctx context.Context, err error) bool {
	if isNoPlacement(err) {
		return true
	}
	return s.opts.Replicas > 1 && ctx.Err() == nil &&
		(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
			// created by another member a moment ago, not yet known here
			errors.Is(err, jetstream.ErrStreamNotFound))
}

// isNoPlacement reports JetStream's "no suitable peers for placement".
func isNoPlacement(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeNoPeers
}

// leaderElected signals on its channel when replicated stream elects a
// new leader (JetStream's advisory), until stop is called. Outside a
// replicated store it never signals.
//
// A watch resumes on it at once: its ordered consumer lived on the old
// leader, and the client notices a dead one only after two missed 5 s
// heartbeats, while a cluster member judges liveness by the changes its
// watch delivers (a member whose watch stalls sees every other member's
// record age, and serves nothing for that long after a failover).
func (s *Store) leaderElected(stream string) (<-chan struct{}, func()) {
	if s.opts.Replicas <= 1 || stream == "" {
		return nil, func() {}
	}
	c := s.cur.Load()
	if c == nil {
		return nil, func() {}
	}
	ch := make(chan struct{}, 1)
	sub, err := c.nc.Subscribe(leaderElectedSubject+"."+stream, func(*nats.Msg) {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, func() {}
	}
	return ch, func() { _ = sub.Unsubscribe() }
}

// leaderElectedSubject prefixes JetStream's advisory that a replicated
// stream elected a leader (followed by the stream's name).
const leaderElectedSubject = "$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED"
