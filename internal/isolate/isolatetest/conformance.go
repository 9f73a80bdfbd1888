package isolatetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/isolate"
)

var errEgress = errors.New("egress denied")

// notSupported is the error an absent platform service gives.
func notSupported(service string) error {
	return errors.New("NotSupportedError: env." + service + " is not available")
}

// Impl makes instances of one implementation running the counter agent.
type Impl struct {
	// New starts a fresh instance.
	New func(ctx context.Context, t *testing.T) (Instance, error)
	// Restore starts an instance from a Snapshot of another.
	Restore func(ctx context.Context, t *testing.T, snap []byte) (Instance, error)
}

// start is impl.New with the instance closed at the end of the test.
func (impl Impl) start(t *testing.T) Instance {
	t.Helper()
	inst, err := impl.New(context.Background(), t)
	if err != nil {
		t.Fatalf("new instance: %v", err)
	}
	t.Cleanup(func() { _ = inst.Close(context.Background()) })
	return inst
}

// call fetches once and returns the body, failing on anything but a 200
// text/plain answer.
func call(t *testing.T, inst Instance, h isolate.Host, method, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a hang, not a speed check
	defer cancel()
	resp, err := inst.Fetch(ctx, isolate.Request{Method: method, URL: url}, h)
	if err != nil {
		t.Fatalf("fetch %s %s: %v", method, url, err)
	}
	if resp.Status != 200 || !strings.HasPrefix(resp.Header("content-type"), "text/plain") {
		t.Fatalf("fetch %s %s: %d %q %q", method, url, resp.Status, resp.Header("content-type"), resp.Body)
	}
	return string(resp.Body)
}

// counts wants a body starting "count=N hits=M ".
func counts(t *testing.T, body string, n, hits int) {
	t.Helper()
	if want := fmt.Sprintf("count=%d hits=%d req=", n, hits); !strings.HasPrefix(body, want) {
		t.Fatalf("body %q, want it to start %q", body, want)
	}
}

// InstanceConformance runs the instance contract against impl.
func InstanceConformance(t *testing.T, impl Impl) {
	ctx := context.Background()
	t.Run("fetch uses state, heap and log", func(t *testing.T) {
		inst, h := impl.start(t), NewMemHost()
		counts(t, call(t, inst, h, "GET", "http://agent/a"), 1, 1)
		body := call(t, inst, h, "POST", "https://agent/b?x=1")
		counts(t, body, 2, 2)
		for _, s := range []string{`"method":"POST"`, `"url":"https://agent/b?x=1"`} {
			if !strings.Contains(body, s) {
				t.Errorf("request JSON in %q lacks %s", body, s)
			}
		}
		if v, _, _ := h.StateGet("count"); string(v) != "2" {
			t.Errorf(`state "count" = %q, want 2`, v)
		}
		if logs := h.Logs(); len(logs) != 2 || logs[0] != "info: count" {
			t.Errorf("logs = %q", logs)
		}
		if inst.MemoryBytes() <= 0 || inst.Err() != nil {
			t.Errorf("MemoryBytes %d, Err %v", inst.MemoryBytes(), inst.Err())
		}
	})
	t.Run("snapshot keeps the heap", func(t *testing.T) {
		inst, h := impl.start(t), NewMemHost()
		call(t, inst, h, "GET", "http://agent/")
		call(t, inst, h, "GET", "http://agent/")
		snap, err := inst.Snapshot()
		if err != nil || len(snap) == 0 {
			t.Fatalf("snapshot: %d bytes, %v", len(snap), err)
		}
		counts(t, call(t, inst, h, "GET", "http://agent/"), 3, 3) // still usable
		back, err := impl.Restore(ctx, t, snap)
		if err != nil {
			t.Fatalf("restore: %v", err)
		}
		defer back.Close(ctx)
		counts(t, call(t, back, h, "GET", "http://agent/"), 4, 3) // state moved on, heap as snapshotted
		fresh := impl.start(t)
		counts(t, call(t, fresh, h, "GET", "http://agent/"), 5, 1) // a new instance: state only
	})
	t.Run("bad snapshots refused", func(t *testing.T) {
		inst := impl.start(t)
		good, err := inst.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		for name, snap := range map[string][]byte{"junk": []byte("junk"), "truncated": good[:len(good)/2],
			"flipped": append(append([]byte(nil), good[:len(good)-1]...), good[len(good)-1]^0xff)} {
			if back, err := impl.Restore(ctx, t, snap); !errors.Is(err, isolate.ErrBadSnapshot) {
				if back != nil {
					back.Close(ctx)
				}
				t.Errorf("%s snapshot: %v, want ErrBadSnapshot", name, err)
			}
		}
	})
	t.Run("trim keeps it working", func(t *testing.T) {
		inst, h := impl.start(t), NewMemHost()
		call(t, inst, h, "GET", "http://agent/")
		if err := inst.Trim(); err != nil {
			t.Fatalf("trim: %v", err)
		}
		counts(t, call(t, inst, h, "GET", "http://agent/"), 2, 2)
	})
	endings(t, impl)
}

// endings runs the clauses about how an instance stops and shares itself:
// preemption, Close and concurrent calls.
func endings(t *testing.T, impl Impl) {
	ctx := context.Background()
	t.Run("a deadline preempts a loop and kills the instance", func(t *testing.T) {
		inst, h := impl.start(t), NewMemHost()
		actx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if err := inst.Alarm(actx, h); !errors.Is(err, isolate.ErrTimeout) {
			t.Fatalf("looping alarm: %v, want ErrTimeout", err)
		}
		if _, err := inst.Fetch(ctx, isolate.Request{Method: "GET", URL: "http://agent/"}, h); !errors.Is(err, isolate.ErrDead) {
			t.Fatalf("fetch after a timeout: %v, want ErrDead", err)
		}
		if inst.Err() == nil {
			t.Fatal("Err is nil after a timeout")
		}
	})
	t.Run("closed", func(t *testing.T) {
		inst, h := impl.start(t), NewMemHost()
		if err := inst.Close(ctx); err != nil {
			t.Fatalf("close: %v", err)
		}
		if _, err := inst.Fetch(ctx, isolate.Request{Method: "GET", URL: "http://agent/"}, h); !errors.Is(err, isolate.ErrDead) {
			t.Fatalf("fetch after close: %v, want ErrDead", err)
		}
		_ = inst.Close(ctx) // twice: no panic
	})
	t.Run("concurrent calls run one at a time", func(t *testing.T) {
		inst, h := impl.start(t), NewMemHost()
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 5 {
					resp, err := inst.Fetch(ctx, isolate.Request{Method: "GET", URL: "http://agent/"}, h)
					if err != nil || resp.Status != 200 {
						t.Errorf("concurrent fetch: %d %v", resp.Status, err)
					}
				}
			})
		}
		wg.Wait()
		counts(t, call(t, inst, h, "GET", "http://agent/"), 21, 21) // no lost update in state or heap
	})
}
