package ledger

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/store"
)

// The crash test re-executes this test binary as a child that appends in
// a loop and reports what was acknowledged; TestMain runs the child.
const (
	envCrashDir = "LEDGER_CRASH_DIR"
	envCrashKey = "LEDGER_CRASH_KEY"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(envCrashDir); dir != "" {
		os.Exit(crashChild(dir, os.Getenv(envCrashKey)))
	}
	os.Exit(m.Run())
}

// crashChild opens the ledger in dir (fsync on), then appends from 16
// goroutines and takes a checkpoint every few milliseconds, printing
// "ack <index> <hash>" after each Append returns and "cp <base64 note>"
// after each Checkpoint, until it is killed (or after a minute: a child
// always stops by itself).
func crashChild(dir, skey string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		_, _ = os.Stdout.WriteString(fmt.Sprintf(format, args...) + "\n") // one write per line, unbuffered
	}
	key, err := ParseKey(skey)
	if err != nil {
		say("fail %v", err)
		return 2
	}
	st, err := store.Open(ctx, store.Options{Dir: dir})
	if err != nil {
		say("fail %v", err)
		return 2
	}
	l, err := Open(ctx, st, key, Options{})
	if err != nil {
		say("fail %v", err)
		return 2
	}
	say("open %d", l.Size())
	pid := os.Getpid()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				e := changeEntry(i)
				e.Time = time.Now()
				e.Change.Version = fmt.Sprintf("p%d-w%d-%d", pid, w, i)
				r, err := l.Append(ctx, e)
				if err != nil {
					if ctx.Err() == nil {
						say("fail append: %v", err)
					}
					return
				}
				say("ack %d %s", r.Index, r.Hash)
			}
		})
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			cp, err := l.Checkpoint(ctx)
			if err != nil {
				if ctx.Err() == nil {
					say("fail checkpoint: %v", err)
				}
				return
			}
			say("cp %s", base64.StdEncoding.EncodeToString(cp.Signed))
			time.Sleep(3 * time.Millisecond)
		}
	})
	wg.Wait()
	return 0
}

// TestKill9KeepsAcknowledgedEntries SIGKILLs a child process appending
// under load, at random moments (while it opens and recovers, while it
// appends, stores tiles and signs checkpoints), several times over the same
// store. After each kill the parent reopens the ledger: every entry whose
// Append returned is there with its hash, the tree verifies, and every
// checkpoint the child handed out (and every one it stored) is consistent
// with the tree after the crash.
func TestKill9KeepsAcknowledgedEntries(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills child processes")
	}
	ctx := context.Background()
	dir := t.TempDir()
	acked := map[uint64]Hash{}
	var handed [][]byte
	rounds := []struct {
		name    string
		acks    int           // kill after this many acks in the round...
		delay   time.Duration // ...or this long after start, if acks is 0
		jitterM int           // plus up to this many ms
	}{
		{"while appending", 1000, 0, 20},
		{"while opening", 0, 30 * time.Millisecond, 400},
		{"soon after a tile fills", 260, 0, 3},
		{"while appending again", 1200, 0, 20},
		{"early in the round", 40, 0, 5},
		{"while opening a bigger log", 0, 0, 300},
	}
	for _, round := range rounds {
		t.Run(round.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), envCrashDir+"="+dir, envCrashKey+"="+testSKey)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			lines := make(chan string, 1<<16)
			go func() {
				sc := bufio.NewScanner(out)
				sc.Buffer(make([]byte, 64<<10), 64<<10)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			jitter := time.Duration(rand.IntN(round.jitterM+1)) * time.Millisecond
			var kill <-chan time.Time
			if round.acks == 0 {
				kill = time.After(round.delay + jitter)
			}
			roundAcks := 0
			deadline := time.After(45 * time.Second)
			record := func(line string) {
				switch f := strings.Fields(line); {
				case len(f) == 3 && f[0] == "ack":
					idx, err := strconv.ParseUint(f[1], 10, 64)
					h, herr := ParseHash(f[2])
					if err != nil || herr != nil {
						t.Fatalf("child said %q", line)
					}
					if old, ok := acked[idx]; ok && old != h {
						t.Fatalf("index %d acknowledged twice with different entries: an acknowledged entry was lost", idx)
					}
					acked[idx] = h
					roundAcks++
				case len(f) == 2 && f[0] == "cp":
					b, err := base64.StdEncoding.DecodeString(f[1])
					if err != nil {
						t.Fatalf("child said %q", line)
					}
					handed = append(handed, b)
				case len(f) >= 1 && f[0] == "fail":
					t.Fatalf("child: %s", line)
				}
			}
		loop:
			for {
				select {
				case line, ok := <-lines:
					if !ok {
						t.Fatal("child exited before it was killed")
					}
					record(line)
					if round.acks > 0 && roundAcks == round.acks {
						kill = time.After(jitter)
					}
				case <-kill:
					break loop
				case <-deadline:
					t.Fatal("child made no progress")
				}
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			for line := range lines { // what it wrote before it died
				record(line)
			}
			_ = cmd.Wait()
			t.Logf("killed after %d acknowledged appends in this round (%d in all, %d checkpoints handed out)", roundAcks, len(acked), len(handed))

			t0 := time.Now()
			st := openStore(t, dir, false)
			defer st.Close()
			t1 := time.Now()
			l, err := Open(ctx, st, mustKey(t), Options{})
			if err != nil {
				t.Fatalf("reopen after kill -9: %v", err)
			}
			t.Logf("store open %v, ledger open %v", t1.Sub(t0), time.Since(t1))
			defer l.Close()
			for idx, h := range acked {
				rec, err := l.Entry(ctx, idx)
				if err != nil {
					t.Fatalf("acknowledged entry %d: %v", idx, err)
				}
				if rec.Hash != h {
					t.Fatalf("acknowledged entry %d has hash %s, acknowledged %s", idx, rec.Hash, h)
				}
			}
			t2 := time.Now()
			rep, err := l.Verify(ctx)
			t.Logf("verify %v", time.Since(t2))
			if err != nil {
				t.Fatalf("verify after kill -9: %v", err)
			}
			now, err := l.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, signed := range handed {
				cp, err := OpenCheckpoint(signed, testVKey)
				if err != nil {
					t.Fatal(err)
				}
				p, err := l.ProveConsistency(ctx, cp.Size, now.Size)
				if err != nil {
					t.Fatal(err)
				}
				if err := VerifyConsistency(signed, now.Signed, testVKey, p); err != nil {
					t.Fatalf("checkpoint of %d entries handed out before the crash: %v", cp.Size, err)
				}
			}
			t.Logf("after reopen: %d entries, %d records, %d tiles and %d stored checkpoints verified", rep.Entries, rep.Records, rep.Tiles, rep.Checkpoints)
		})
	}
	if len(acked) < 1500 {
		t.Fatalf("only %d appends acknowledged in all rounds", len(acked))
	}
}
