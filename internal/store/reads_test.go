package store

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestReadRetryClass: on a replicated store a read that gets no answer (a
// request sent to a member that just died, or to a stream electing a
// leader) is sent again instead of waiting out the client's 5 s timeout;
// a read that got an answer, even an error, is not; the caller's context
// bounds it all; a single-node store never retries.
func TestReadRetryClass(t *testing.T) {
	s := &Store{opts: Options{Replicas: 3}, log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	calls := 0
	err := s.read(ctx, "KV_r", func(actx context.Context) error {
		calls++
		if calls == 1 {
			<-actx.Done() // never answered
			return actx.Err()
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Fatalf("unanswered then answered: err %v after %d calls, want nil after 2", err, calls)
	}

	for _, e := range []error{nats.ErrNoResponders, nats.ErrTimeout} {
		calls = 0
		err = s.read(ctx, "KV_r", func(context.Context) error {
			calls++
			if calls < 3 {
				return e
			}
			return nil
		})
		if err != nil || calls != 3 {
			t.Fatalf("%v twice: err %v after %d calls", e, err, calls)
		}
	}

	answered := errors.New("key not found")
	calls = 0
	if err := s.read(ctx, "KV_r", func(context.Context) error { calls++; return answered }); !errors.Is(err, answered) || calls != 1 {
		t.Fatalf("an answer is final: err %v after %d calls", err, calls)
	}

	short, stop := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer stop()
	calls = 0
	err = s.read(short, "KV_r", func(actx context.Context) error { calls++; <-actx.Done(); return actx.Err() })
	if !errors.Is(err, context.DeadlineExceeded) || short.Err() == nil || calls < 2 {
		t.Fatalf("the caller's deadline bounds the retries: err %v, %d calls, caller ctx %v", err, calls, short.Err())
	}

	single := &Store{opts: Options{Replicas: 1}, log: s.log}
	calls = 0
	if err := single.read(ctx, "KV_r", func(context.Context) error { calls++; return nats.ErrTimeout }); calls != 1 || err == nil {
		t.Fatalf("single node: %d calls, err %v", calls, err)
	}
}

// TestReadAskedAgainOnElectionClass: once a read went unanswered, an
// election of its stream's leader ends the attempt in flight and sends
// the read again at once (the new leader answers it), instead of waiting
// out the attempt's bound: a read sent during the election is never
// answered, and with bounds doubling to 4 s a session activation after a
// failover waited that long past the election. Elections of other streams
// are not followed.
func TestReadAskedAgainOnElectionClass(t *testing.T) {
	elected := make(chan struct{}, 1)
	var followed []string
	s := &Store{opts: Options{Replicas: 3}, log: slog.New(slog.DiscardHandler),
		elections: func(stream string) (<-chan struct{}, func()) {
			followed = append(followed, stream)
			return elected, func() {}
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ended []error
	err := s.read(ctx, "KV_r", func(actx context.Context) error {
		switch len(ended) {
		case 0: // sent to the dead leader: never answered
		case 1: // sent during the election; the new leader is elected
			elected <- struct{}{}
		default:
			return nil
		}
		<-actx.Done()
		ended = append(ended, actx.Err())
		return actx.Err()
	})
	if err != nil || len(ended) != 2 {
		t.Fatalf("read: err %v after %d unanswered attempts (%v), want nil after 2", err, len(ended), ended)
	}
	if !errors.Is(ended[0], context.DeadlineExceeded) {
		t.Fatalf("first attempt ended with %v, want its bound", ended[0])
	}
	if !errors.Is(ended[1], context.Canceled) {
		t.Fatalf("second attempt ended with %v, want the election to end it", ended[1])
	}
	if len(followed) != 1 || followed[0] != "KV_r" {
		t.Fatalf("followed elections of %v, want KV_r once", followed)
	}
	// An answer (an error the store gave) is final even after an election.
	answered := errors.New("key not found")
	calls := 0
	err = s.read(ctx, "KV_r", func(actx context.Context) error {
		calls++
		if calls == 1 {
			<-actx.Done()
			return actx.Err()
		}
		return answered
	})
	if !errors.Is(err, answered) || calls != 2 {
		t.Fatalf("an answer after an unanswered attempt: err %v after %d calls", err, calls)
	}
}

// hangFirstKV is a real bucket whose first Watch is never answered (a
// consumer create sent while the meta leader is being elected): it returns
// only when its context is canceled.
type hangFirstKV struct {
	jetstream.KeyValue
	calls     int
	abandoned bool
}

func (k *hangFirstKV) Watch(ctx context.Context, keys string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	k.calls++
	if k.calls == 1 {
		<-ctx.Done()
		k.abandoned = true
		return nil, ctx.Err()
	}
	return k.KeyValue.Watch(ctx, keys, opts...)
}

// TestWatchStartRetryClass: on a replicated store a watch whose start is
// never answered is abandoned after its bound and started again, instead
// of waiting the client's 5 s; the started watch works and lives until
// stop.
func TestWatchStartRetryClass(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	single, err := Open(ctx, Options{Dir: t.TempDir(), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer single.Close()
	h, err := single.KV(ctx, "w", KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Put(ctx, "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	real, err := h.(*natsKV).b.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kv := &hangFirstKV{KeyValue: real}
	s := &Store{opts: Options{Replicas: 3}, log: slog.New(slog.DiscardHandler)}
	kw, stop, err := s.startWatch(ctx, kv, ">")
	if err != nil {
		t.Fatal(err)
	}
	if kv.calls != 2 || !kv.abandoned {
		t.Fatalf("watch starts: %d (first abandoned: %v), want the unanswered one abandoned and a second", kv.calls, kv.abandoned)
	}
	select {
	case e := <-kw.Updates():
		if e == nil || e.Key() != "a" {
			t.Fatalf("first update %v, want key a", e)
		}
	case <-ctx.Done():
		t.Fatal("the restarted watch delivered nothing")
	}
	stop()
	_ = kw.Stop()
}
