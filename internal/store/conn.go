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
	h, err := b.open(ctx, c.js)
	// Bounded, so a replica count the cluster can never place (more
	// replicas than members) fails instead of waiting for ever.
	giveUp := time.Now().Add(placementWait)
	for wait := 50 * time.Millisecond; err != nil && b.s.forming(ctx, err) && time.Now().Before(giveUp); wait = min(2*wait, time.Second) {
		// A cluster that has just formed, or just lost a member, may not
		// yet count enough current peers to place a replicated bucket;
		// that settles within moments.
		select {
		case <-ctx.Done():
			var zero T
			return zero, fmt.Errorf("%w: %w", ErrUnavailable, err)
		case <-time.After(wait):
		}
		h, err = b.open(ctx, c.js)
	}
	if err != nil {
		var zero T
		return zero, mapConnErr(err)
	}
	b.h, b.gen = h, c.gen
	return h, nil
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
	kw, err := kv.Watch(ctx, w.filter)
	if err != nil {
		return false, mapKVErr("watch", w.filter, err)
	}
	defer func() { _ = kw.Stop() }()
	var seen map[string]struct{} // keys present in this catch-up
	if !first {
		seen = map[string]struct{}{}
	}
	for {
		select {
		case <-ctx.Done():
			return caughtUp, nil
		case <-changed:
			return caughtUp, nil
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
// to count enough peers.
const placementWait = 15 * time.Second

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
