package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncCounts records, per file, how often group commit fsynced it.
type syncCounts struct {
	mu sync.Mutex
	n  map[string]int
}

func watchSyncs(s *Store) *syncCounts {
	c := &syncCounts{n: map[string]int{}}
	s.gs.synced = func(p string) { c.mu.Lock(); c.n[p]++; c.mu.Unlock() }
	return c
}

func (c *syncCounts) get(p string) int { c.mu.Lock(); defer c.mu.Unlock(); return c.n[p] }

func (c *syncCounts) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := 0
	for _, n := range c.n {
		t += n
	}
	return t
}

// blocks lists stream's message block files, oldest first.
func blocks(t *testing.T, s *Store, stream string) []string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(s.gs.root, "*", "streams", stream, "msgs"))
	if len(dirs) != 1 {
		t.Fatalf("block dirs of %s: %v", stream, dirs)
	}
	var out []string
	for i := 1; len(out) == 0 || i <= 1<<16; i++ {
		p := filepath.Join(dirs[0], strconv.Itoa(i)+".blk")
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		} else if len(out) > 0 {
			break
		}
	}
	return out
}

// TestGroupCommitClass: every kind of write (KV put, create, update,
// delete, fenced put and delete, log append, blob put and delete) returns
// only after the newest block of its stream was fsynced following the
// write; concurrent writers share fsyncs; writes that roll over to new
// blocks get every block synced.
func TestGroupCommitClass(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, false)
	if s.SyncMode() != "group" || s.gs == nil {
		t.Fatalf("sync mode %q, want group", s.SyncMode())
	}
	syncs := watchSyncs(s)
	kv, err := s.KV(ctx, "gc", KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lg, err := s.Log(ctx, "gclog", LogOptions{Subjects: []string{"gclog.>"}})
	if err != nil {
		t.Fatal(err)
	}
	bl, err := s.Blobs(ctx, "gcblobs")
	if err != nil {
		t.Fatal(err)
	}
	var rev uint64
	writes := []struct {
		name, stream string
		do           func(i string) error
	}{
		{"kv put", "KV_gc", func(string) (err error) { rev, err = kv.Put(ctx, "a", []byte("1")); return }},
		{"kv create", "KV_gc", func(i string) error { _, err := kv.Create(ctx, "b"+i, []byte("1")); return err }},
		{"kv update", "KV_gc", func(string) (err error) { rev, err = kv.Update(ctx, "a", []byte("2"), rev); return }},
		{"kv delete", "KV_gc", func(i string) error { return kv.Delete(ctx, "b"+i) }},
		{"kv put fenced", "KV_gc", func(i string) error {
			_, err := kv.PutFenced(ctx, "c"+i, []byte("1"), Fence{Key: "a", Revision: rev})
			return err
		}},
		{"kv delete fenced", "KV_gc", func(i string) error { return kv.DeleteFenced(ctx, "c"+i, Fence{Key: "a", Revision: rev}) }},
		{"log append", "gclog", func(string) error { _, err := lg.Append(ctx, "gclog.x", []byte("r")); return err }},
		{"log append expect", "gclog", func(string) error {
			info, err := lg.Info(ctx)
			if err == nil {
				_, err = lg.AppendExpect(ctx, "gclog.x", []byte("r"), info.LastSeq)
			}
			return err
		}},
		{"blob put", "OBJ_gcblobs", func(i string) error { return bl.Put(ctx, "o"+i, []byte("blob")) }},
		{"blob delete", "OBJ_gcblobs", func(i string) error { return bl.Delete(ctx, "o"+i) }},
	}
	for _, w := range writes {
		if err := w.do("1"); err != nil { // the stream's first write: its blocks exist now
			t.Fatalf("%s: %v", w.name, err)
		}
	}
	for _, w := range writes {
		b := blocks(t, s, w.stream)
		newest := b[len(b)-1]
		before := syncs.get(newest)
		if err := w.do("2"); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		if syncs.get(newest) <= before {
			t.Errorf("%s returned before %s was fsynced", w.name, newest)
		}
	}

	// Concurrent writers share fsyncs.
	const writers, each = 32, 20
	base := syncs.total()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := kv.Put(ctx, fmt.Sprintf("w%d.k%d", w, i), []byte("v")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := syncs.total() - base; n >= writers*each {
		t.Errorf("%d concurrent writes took %d fsyncs: no write shared one", writers*each, n)
	} else {
		t.Logf("%d concurrent writes, %d fsyncs", writers*each, n)
	}

	// Rolling over to new blocks: every block gets synced.
	big := make([]byte, 900<<10)
	for i := range 10 {
		if _, err := kv.Put(ctx, "big"+strconv.Itoa(i), big); err != nil {
			t.Fatal(err)
		}
		b := blocks(t, s, "KV_gc")
		if syncs.get(b[len(b)-1]) == 0 {
			t.Fatalf("put %d: newest block %s never synced", i, b[len(b)-1])
		}
	}
	b := blocks(t, s, "KV_gc")
	if len(b) < 2 {
		t.Fatalf("9 MB of puts stayed in %d block", len(b))
	}
	for _, p := range b {
		if syncs.get(p) == 0 {
			t.Errorf("block %s never synced", p)
		}
	}
}

// TestGroupCommitErrorIsSticky: a round that cannot sync fails its writers
// and every later one (a page that failed to write back may be gone).
func TestGroupCommitErrorIsSticky(t *testing.T) {
	g := newGroupSync(t.TempDir())
	for i := range 3 {
		if err := g.wait("KV_missing"); err == nil || !strings.Contains(err.Error(), "group commit") {
			t.Fatalf("wait %d: %v, want a group commit error", i, err)
		}
	}
}

// TestGroupCommitModes: group commit only where every writer is this
// process; otherwise JetStream syncs each write.
func TestGroupCommitModes(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{}, "group"},
		{Options{SyncEachWrite: true}, "always"},
		{Options{NoSync: true}, "interval"},
		{Options{Listen: "127.0.0.1:0"}, "always"},
	} {
		c.o.Dir = t.TempDir()
		if c.o.Listen != "" {
			c.o.NKeySeedFile = filepath.Join(c.o.Dir, "user.nk")
		}
		s, err := Open(context.Background(), c.o)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.SyncMode(); got != c.want {
			t.Errorf("%+v: sync mode %q, want %q", c.o, got, c.want)
		}
		_ = s.Close()
	}
}

// TestGroupCommitKill9Class SIGKILLs a process writing through group
// commit from many goroutines (KV puts, log appends) and checks that every
// write it acknowledged is there after a restart.
func TestGroupCommitKill9Class(t *testing.T) {
	if dir := os.Getenv("AGENTCLOUD_GROUPCOMMIT_CHILD"); dir != "" {
		groupCommitChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns a writer process; skipped in -short")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestGroupCommitKill9Class$")
	cmd.Env = append(os.Environ(), "AGENTCLOUD_GROUPCOMMIT_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	acked := map[string]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 600 {
		acked[sc.Text()] = true
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() { // acknowledged before the kill took effect
		acked[sc.Text()] = true
	}
	_ = cmd.Wait()
	if len(acked) < 600 {
		t.Fatalf("child acknowledged only %d writes", len(acked))
	}
	s, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	kv, err := s.KV(ctx, "crash", KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lg, err := s.Log(ctx, "crashlog", LogOptions{Subjects: []string{"crashlog.>"}})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := lg.Read(ctx, 1, 1<<20, "")
	if err != nil {
		t.Fatal(err)
	}
	logged := map[string]bool{}
	for _, r := range recs {
		logged[string(r.Data)] = true
	}
	lost := 0
	for a := range acked {
		kind, key, _ := strings.Cut(a, " ")
		ok := logged[key]
		if kind == "kv" {
			e, err := kv.Get(ctx, key)
			ok = err == nil && string(e.Value) == key
		}
		if !ok {
			if lost++; lost < 5 {
				t.Errorf("acknowledged %s lost", a)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged writes lost", lost, len(acked))
	}
	t.Logf("%d acknowledged writes survived kill -9", len(acked))
}

// groupCommitChild writes until killed, printing each acknowledged write.
func groupCommitChild(dir string) {
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	kv, err := s.KV(ctx, "crash", KVOptions{})
	if err != nil {
		os.Exit(2)
	}
	lg, err := s.Log(ctx, "crashlog", LogOptions{Subjects: []string{"crashlog.>"}})
	if err != nil {
		os.Exit(2)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	for g := range 16 {
		go func() {
			for i := 0; ; i++ {
				key := fmt.Sprintf("g%d.k%d", g, i)
				kind := "kv"
				var err error
				if i%2 == 0 {
					_, err = kv.Put(ctx, key, []byte(key))
				} else {
					kind = "log"
					_, err = lg.Append(ctx, "crashlog.x", []byte(key))
				}
				if err != nil {
					continue
				}
				mu.Lock()
				fmt.Fprintf(w, "%s %s\n", kind, key)
				_ = w.Flush()
				mu.Unlock()
			}
		}()
	}
	time.Sleep(10 * time.Minute) // killed long before
	os.Exit(3)
}

// TestGroupCommitJoinClass: a write acknowledged while others are still
// being published waits for them and shares their fsync round, and a
// write that fails after its send leaves nothing waiting behind it (every
// kind of write, failing in the ways a caller can make it fail). The join
// wait is made long, so the test depends on no timing.
func TestGroupCommitJoinClass(t *testing.T) {
	dir := t.TempDir()
	msgs := filepath.Join(dir, "jetstream", "acct", "streams", "S", "msgs")
	if err := os.MkdirAll(msgs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(msgs, "1.blk"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := newGroupSync(dir)
	g.join = time.Hour
	const n = 5
	for range n {
		g.send() // all five are published before the first is acknowledged
	}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if err := g.wait("S"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if g.rounds != 1 || g.sending != 0 {
		t.Fatalf("%d writes in flight together took %d rounds (want 1); %d still sending", n, g.rounds, g.sending)
	}

	// Failed writes end their send: a lone write after them leads its round
	// at once (with the hour-long join it would otherwise hang).
	ctx := context.Background()
	s := openTest(t, false)
	s.gs.join = time.Hour
	kv, err := s.KV(ctx, "join", KVOptions{MaxValueSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	lg, err := s.Log(ctx, "joinlog", LogOptions{Subjects: []string{"joinlog.>"}})
	if err != nil {
		t.Fatal(err)
	}
	bl, err := s.Blobs(ctx, "joinblobs")
	if err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Put(ctx, "a", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 1<<10)
	for _, f := range []struct {
		name string
		do   func() error
	}{
		{"create of an existing key", func() error { _, err := kv.Create(ctx, "a", []byte("2")); return err }},
		{"update at a stale revision", func() error { _, err := kv.Update(ctx, "a", []byte("2"), rev+7); return err }},
		{"value too large", func() error { _, err := kv.Put(ctx, "b", big); return err }},
		{"fenced put, stale fence", func() error {
			_, err := kv.PutFenced(ctx, "c", []byte("1"), Fence{Key: "a", Revision: rev + 7})
			return err
		}},
		{"fenced delete, stale fence", func() error { return kv.DeleteFenced(ctx, "c", Fence{Key: "a", Revision: rev + 7}) }},
		{"append at a stale sequence", func() error {
			_, err := lg.AppendExpect(ctx, "joinlog.x", []byte("r"), 99)
			return err
		}},
		{"delete of a missing blob (not an error to the caller)", func() error {
			if err := bl.Delete(ctx, "missing"); err != nil {
				return err
			}
			return errors.New("failed inside")
		}},
	} {
		if err := f.do(); err == nil {
			t.Fatalf("%s did not fail: the test checks nothing", f.name)
		}
		if n := sendingOf(s); n != 0 {
			t.Fatalf("after a failed %s, %d writes still count as sending", f.name, n)
		}
	}
	if _, err := kv.Put(ctx, "d", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if _, err := lg.Append(ctx, "joinlog.x", []byte("r")); err != nil {
		t.Fatal(err)
	}
	if err := bl.Put(ctx, "o", []byte("blob")); err != nil {
		t.Fatal(err)
	}
	if n := sendingOf(s); n != 0 {
		t.Fatalf("%d writes still count as sending", n)
	}
}

func sendingOf(s *Store) int {
	s.gs.mu.Lock()
	defer s.gs.mu.Unlock()
	return s.gs.sending
}

// TestGroupCommitStreamsAtOnceClass: rounds that fsync several streams at
// once (a writer on each of four buckets together, each rolling over to
// new blocks) leave no write unsynced: after each write returns, the newest
// block of its stream has been fsynced since, and in the end every block
// of every stream was synced; -race sees the streams' bookkeeping. One
// writer per stream: with two, the other's write could open a newer block
// between a write's return and the check, which is no fault of the round.
func TestGroupCommitStreamsAtOnceClass(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, false)
	syncs := watchSyncs(s)
	big := make([]byte, 700<<10)
	var wg sync.WaitGroup
	streams := []string{}
	for b := range 4 {
		name := "multi" + strconv.Itoa(b)
		streams = append(streams, "KV_"+name)
		kv, err := s.KV(ctx, name, KVOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for w := range 1 {
			wg.Go(func() {
				for i := range 18 {
					if _, err := kv.Put(ctx, fmt.Sprintf("w%d.k%d", w, i), big); err != nil {
						t.Error(err)
						return
					}
					bs := blocks(t, s, "KV_"+name)
					if syncs.get(bs[len(bs)-1]) == 0 {
						t.Errorf("%s: a put returned before its newest block %s was synced", name, bs[len(bs)-1])
						return
					}
				}
			})
		}
	}
	wg.Wait()
	for _, st := range streams {
		bs := blocks(t, s, st)
		if len(bs) < 2 {
			t.Errorf("%s: 12 MB of puts stayed in %d block", st, len(bs))
		}
		for _, p := range bs {
			if syncs.get(p) == 0 {
				t.Errorf("block %s never synced", p)
			}
		}
	}
}
