//go:build linux

package sandboxstate_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/sandboxstate"
	"github.com/agentcloud/agentcloud/internal/store"
)

// faultyRecords is the store's records with faults in front of them: a Put
// that fails, or waits for a gate; a Delete that fails.
type faultyRecords struct {
	*sandboxstate.Records

	mu      sync.Mutex
	putErr  error
	putLand bool          // with putErr: the write lands, its answer is lost
	putGate chan struct{} // nil: no wait
	putIn   chan string   // told each Put's id before it waits (nil: not told)
	delErr  error
}

func (f *faultyRecords) Put(ctx context.Context, r sandbox.Record) error {
	f.mu.Lock()
	perr, land, gate, in := f.putErr, f.putLand, f.putGate, f.putIn
	f.mu.Unlock()
	if in != nil {
		in <- r.ID
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if perr != nil && !land {
		return perr
	}
	if err := f.Records.Put(ctx, r); err != nil || perr == nil {
		return err
	}
	return perr
}

func (f *faultyRecords) Delete(ctx context.Context, id string) error {
	f.mu.Lock()
	derr := f.delErr
	f.mu.Unlock()
	if derr != nil {
		return derr
	}
	return f.Records.Delete(ctx, id)
}

func (f *faultyRecords) set(fn func(f *faultyRecords)) {
	f.mu.Lock()
	fn(f)
	f.mu.Unlock()
}

// startFaulty is start with the records behind faults; stop ends the
// node's run (a daemon stopping).
func startFaulty(t *testing.T, st *store.Store, dir string) (*sandbox.Manager, *faultyRecords, func()) {
	t.Helper()
	recs := &faultyRecords{Records: sandboxstate.New(st, "")}
	n := startWith(t, recs, dir)
	return n.m, recs, n.stop
}

// waitPut waits for a create's record write to begin.
func waitPut(t *testing.T, in <-chan string) {
	t.Helper()
	select {
	case <-in:
	case <-time.After(10 * time.Second):
		t.Fatal("the create wrote no record")
	}
}

// TestCreateRecordBesideActivationClass: a create writes its durable record
// while the sandbox activates, and still answers only once both are done:
// a record that cannot be written fails the create and leaves no sandbox,
// no files and no record; an activation that fails takes back the record
// written beside it; a slow record holds the answer back; and a record
// that cannot be taken back comes back stopped at the next start, shown to
// its owner with its files rather than lost. A write whose answer was
// lost is taken back too.
func TestCreateRecordBesideActivationClass(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dir := filepath.Join(t.TempDir(), "sandboxes")
	m, recs, stop := startFaulty(t, st, dir)
	stored := func() []string {
		t.Helper()
		rs, err := recs.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range rs {
			ids = append(ids, r.ID)
		}
		return ids
	}
	hostDirs := func() []string {
		t.Helper()
		ents, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}

	t.Run("RecordFails", func(t *testing.T) {
		down := errors.New("store down")
		recs.set(func(f *faultyRecords) { f.putErr = down })
		defer recs.set(func(f *faultyRecords) { f.putErr = nil })
		if _, err := m.Create(ctx, "rf", sandbox.Spec{}); !errors.Is(err, down) {
			t.Fatalf("create with the record failing: %v, want %v", err, down)
		}
		if _, err := m.Get("rf"); !errors.Is(err, sandbox.ErrNotFound) {
			t.Errorf("a create whose record failed is there: %v", err)
		}
		if ids, d := stored(), hostDirs(); len(ids) != 0 || len(d) != 0 {
			t.Errorf("left records %v, host dirs %v", ids, d)
		}
	})

	t.Run("RecordAnswerLost", func(t *testing.T) {
		lost := errors.New("no answer from the store")
		recs.set(func(f *faultyRecords) { f.putErr, f.putLand = lost, true })
		defer recs.set(func(f *faultyRecords) { f.putErr, f.putLand = nil, false })
		if _, err := m.Create(ctx, "lost", sandbox.Spec{}); !errors.Is(err, lost) {
			t.Fatalf("create with the record's answer lost: %v, want %v", err, lost)
		}
		if ids, d := stored(), hostDirs(); len(ids) != 0 || len(d) != 0 {
			t.Errorf("left records %v, host dirs %v", ids, d)
		}
	})

	t.Run("ActivationFails", func(t *testing.T) {
		// The record is written (held until the activation has failed, so
		// it lands after it) and must be taken back.
		gate, in := make(chan struct{}), make(chan string, 1)
		recs.set(func(f *faultyRecords) { f.putGate, f.putIn = gate, in })
		defer recs.set(func(f *faultyRecords) { f.putGate, f.putIn = nil, nil })
		done := make(chan error, 1)
		go func() {
			_, err := m.Create(ctx, "af", sandbox.Spec{Template: "no-such-template"})
			done <- err
		}()
		waitPut(t, in)
		time.Sleep(50 * time.Millisecond) // the activation fails meanwhile
		close(gate)
		if err := <-done; !errors.Is(err, sandbox.ErrUnknownTemplate) {
			t.Fatalf("create of an unknown template: %v", err)
		}
		if ids, d := stored(), hostDirs(); len(ids) != 0 || len(d) != 0 {
			t.Errorf("left records %v, host dirs %v", ids, d)
		}
	})

	t.Run("SlowRecord", func(t *testing.T) {
		gate, in := make(chan struct{}), make(chan string, 1)
		recs.set(func(f *faultyRecords) { f.putGate, f.putIn = gate, in })
		defer recs.set(func(f *faultyRecords) { f.putGate, f.putIn = nil, nil })
		done := make(chan error, 1)
		go func() {
			_, err := m.Create(ctx, "slow", sandbox.Spec{})
			done <- err
		}()
		waitPut(t, in)
		select {
		case err := <-done:
			t.Fatalf("create answered (%v) before its record was written", err)
		case <-time.After(300 * time.Millisecond):
		}
		if _, err := m.Get("slow"); !errors.Is(err, sandbox.ErrNotFound) {
			t.Errorf("a sandbox is served before its record is durable: %v", err)
		}
		close(gate)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		sb, err := m.Get("slow")
		if err != nil {
			t.Fatal(err)
		}
		if out := run(t, sb, "echo ok"); out != "ok\n" {
			t.Errorf("exec: %q", out)
		}
		if ids := stored(); len(ids) != 1 || ids[0] != "slow" {
			t.Errorf("records %v, want [slow]", ids)
		}
		if err := m.Delete(ctx, "slow"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("RecordNotTakenBack", func(t *testing.T) {
		gate, in := make(chan struct{}), make(chan string, 1)
		recs.set(func(f *faultyRecords) { f.putGate, f.putIn, f.delErr = gate, in, errors.New("store down") })
		done := make(chan error, 1)
		go func() {
			_, err := m.Create(ctx, "nb", sandbox.Spec{Template: "no-such-template"})
			done <- err
		}()
		waitPut(t, in)
		time.Sleep(50 * time.Millisecond)
		close(gate)
		if err := <-done; !errors.Is(err, sandbox.ErrUnknownTemplate) {
			t.Fatalf("create of an unknown template: %v", err)
		}
		recs.set(func(f *faultyRecords) { f.putGate, f.putIn, f.delErr = nil, nil, nil })
		if ids, d := stored(), hostDirs(); len(ids) != 1 || ids[0] != "nb" || len(d) != 1 || d[0] != "nb" {
			t.Fatalf("records %v, host dirs %v: want the record not taken back, with its files", ids, d)
		}
		// The next start shows it stopped, to be deleted by its owner.
		stop()
		m2 := start(t, st, dir).m
		i, err := m2.Info("nb")
		if err != nil {
			t.Fatalf("after a restart: %v", err)
		}
		if i.State != sandbox.StateStopped {
			t.Errorf("state %q, want stopped", i.State)
		}
		if err := m2.Delete(ctx, "nb"); err != nil {
			t.Fatal(err)
		}
		if ids, d := stored(), hostDirs(); len(ids) != 0 || len(d) != 0 {
			t.Errorf("records %v, host dirs %v after delete", ids, d)
		}
	})
}
