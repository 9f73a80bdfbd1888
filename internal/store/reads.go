package store

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reads that outlive a dead member.
//
// A read sent in the moment a member dies can go to it (a direct get is
// answered by any replica; the survivors drop the dead one's interest only
// when they notice its route is gone), and a read of a stream whose leader
// died waits for the election. Either way the request is never answered
// and the caller waited out the client's 5 s request timeout, which showed
// up as a 5 s stall in failovers. Reads are idempotent, so on a replicated
// store each attempt gets readAttempt (doubling up to 4 s) and a read
// that got no answer is sent again until the caller's context ends.
//
// A bound that doubles is still a wait past the election: a read sent
// while its stream elected a leader was asked again only when its bound
// ran out, up to 4 s after the new leader could answer it (session
// activations in failovers took that long). So once a read has gone
// unanswered it follows its stream's leader elections (JetStream's
// advisory, leaderElected), and an election ends the attempt in flight
// and sends the read again at once.

// readAttempt is the first attempt's bound.
const readAttempt = time.Second

// read runs f, an idempotent read of stream, under the retry rule above.
func (s *Store) read(ctx context.Context, stream string, f func(context.Context) error) error {
	if s.opts.Replicas <= 1 {
		return f(ctx)
	}
	bound := readAttempt
	var elected <-chan struct{}
	for {
		reelected, err := attempt(ctx, bound, elected, f)
		if err == nil || ctx.Err() != nil || !(reelected || unanswered(err)) {
			return err
		}
		if reelected {
			s.log.Debug("store read: its stream elected a leader; asking again", "stream", stream)
			continue
		}
		s.log.Debug("store read unanswered; asking again", "stream", stream, "bound", bound, "err", err)
		if elected == nil {
			var stop func()
			follow := s.leaderElected
			if s.elections != nil {
				follow = s.elections
			}
			elected, stop = follow(stream)
			defer stop()
		}
		if bound = nextBound(bound); !pause(ctx) {
			return err
		}
	}
}

// attempt runs f once, bounded by bound and ended early when elected
// signals (reelected reports that it did).
func attempt(ctx context.Context, bound time.Duration, elected <-chan struct{}, f func(context.Context) error) (reelected bool, err error) {
	actx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	if elected == nil {
		return false, f(actx)
	}
	var ended atomic.Bool
	done := make(chan struct{})
	go func() {
		select {
		case <-elected:
			ended.Store(true)
			cancel()
		case <-done:
		}
	}()
	err = f(actx)
	close(done)
	return err != nil && ended.Load(), err
}

// nextBound is the bound of the attempt after one bounded by b.
func nextBound(b time.Duration) time.Duration { return min(2*b, 4*time.Second) }

// pause waits a little before asking again ("no responders" comes back at
// once, and asking at once would spin); false if ctx ended first.
func pause(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(50 * time.Millisecond):
		return true
	}
}

// unanswered reports an error of a request that got no answer in time.
func unanswered(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders)
}

// startWatch starts a watch of filter on kv. Starting one creates a
// consumer, which needs the stream's and the meta group's leaders: asked
// while one of them is being elected, the request is never answered and
// the client waits its 5 s timeout, which kept a cluster member from
// seeing lease changes for that long after a failover. The watch lives as
// long as its context, so the start cannot take a deadline of its own: on
// a replicated store it runs beside a timer (readAttempt, doubling up to
// 4 s), and a start that outlives the timer is abandoned (its context
// canceled) and made again. stop cancels the watch's context.
func (s *Store) startWatch(ctx context.Context, kv jetstream.KeyValue, filter string) (jetstream.KeyWatcher, func(), error) {
	if s.opts.Replicas <= 1 {
		kw, err := kv.Watch(ctx, filter)
		return kw, func() {}, err
	}
	bound := readAttempt
	for {
		wctx, cancel := context.WithCancel(ctx)
		type started struct {
			kw  jetstream.KeyWatcher
			err error
		}
		ch := make(chan started, 1)
		go func() {
			kw, err := kv.Watch(wctx, filter)
			ch <- started{kw, err}
		}()
		timer := time.NewTimer(bound)
		select {
		case r := <-ch:
			timer.Stop()
			if r.err != nil {
				cancel()
				if ctx.Err() != nil || !unanswered(r.err) || !pause(ctx) {
					return nil, nil, r.err
				}
				continue
			}
			return r.kw, cancel, nil
		case <-timer.C:
			cancel()
			if r := <-ch; r.err == nil {
				_ = r.kw.Stop()
			}
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			s.log.Debug("store watch start unanswered; asking again", "filter", short(filter), "bound", bound)
			bound = nextBound(bound)
		}
	}
}
