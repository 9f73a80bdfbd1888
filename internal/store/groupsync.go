package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Group commit (docs/RATIONALE.md, "Group commit"). A single embedded
// server with no listener runs JetStream without SyncAlways: a stream of
// one replica then writes each message into its block file (the kernel's
// page cache) before it acknowledges it, which survives kill -9 of the
// daemon but not a power cut. Every write through this package then waits
// in groupSync.wait until the block files of its stream are fsynced. Writes
// that arrive together share one fsync per stream: the first waiter syncs
// for all that registered before it started, the others wait for it. So a
// write is still durable before its caller sees it succeed, and one
// connection no longer serialises every write behind its own fsync.

// groupSync fsyncs the message block files of the streams written since
// the last round.
type groupSync struct {
	root string // the server's JetStream directory (its accounts are below)

	mu      sync.Mutex
	cond    *sync.Cond
	pending map[string]struct{} // streams written since the last round began
	asked   uint64              // tickets handed out
	done    uint64              // every ticket <= done is durable
	running bool                // a waiter is syncing now
	rounds  uint64              // rounds run
	err     error               // a failed fsync: sticky, every later wait fails
	// sending counts writes published (send) whose wait has not begun:
	// the server has them or will in a moment. A round about to start
	// waits up to joinWait for them, so they share its fsync instead of
	// each starting the next round.
	sending int
	join    time.Duration // joinWait (tests lengthen it)

	// Only the syncing waiter touches these (running is its lock).
	streams map[string]*streamFiles
	synced  func(path string) // test hook: each file fsynced
}

// streamFiles is what groupSync knows of one stream's message blocks.
type streamFiles struct {
	dir  string   // .../streams/NAME/msgs
	last int      // index of the newest block seen
	f    *os.File // that block, open
}

func newGroupSync(jsDir string) *groupSync {
	g := &groupSync{root: filepath.Join(jsDir, "jetstream"), pending: map[string]struct{}{}, streams: map[string]*streamFiles{}, join: joinWait}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// joinWait bounds how long a round waits for writes already published to
// be acknowledged and join it. It only applies while such writes exist,
// so a lone writer never waits.
const joinWait = time.Millisecond

// send registers a write about to be published; its wait (or, if it
// fails, done) follows.
func (g *groupSync) send() {
	g.mu.Lock()
	g.sending++
	g.mu.Unlock()
}

// sent ends a send whose write failed: no wait follows.
func (g *groupSync) sent() {
	g.mu.Lock()
	g.unsend()
	g.mu.Unlock()
}

// unsend takes a write out of sending (g.mu held) and wakes a round
// waiting for the last of them.
func (g *groupSync) unsend() {
	if g.sending > 0 {
		g.sending--
		if g.sending == 0 {
			g.cond.Broadcast()
		}
	}
}

// wait returns once everything written to stream before the call is on
// disk. It is called after the server acknowledged the write, which send
// registered before publishing.
func (g *groupSync) wait(stream string) error {
	return g.await(g.register(stream))
}

// register ends a write's send and puts its stream in the next round
// without waiting for it: the ticket returned is durable once await of it
// returns nil (or once any write registered later is durable).
func (g *groupSync) register(stream string) uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.unsend()
	g.pending[stream] = struct{}{}
	g.asked++
	return g.asked
}

// await returns once every write registered up to ticket is on disk,
// leading a round if none is running.
func (g *groupSync) await(ticket uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	joined := false
	for g.done < ticket && g.err == nil {
		if g.running {
			g.cond.Wait()
			continue
		}
		if g.sending > 0 && !joined {
			// Writes published just before or beside this one are about
			// to be acknowledged: let them join this round.
			joined = true
			deadline := time.Now().Add(g.join)
			t := time.AfterFunc(g.join, func() {
				g.mu.Lock()
				g.cond.Broadcast()
				g.mu.Unlock()
			})
			for g.sending > 0 && !g.running && g.done < ticket && time.Now().Before(deadline) {
				g.cond.Wait()
			}
			t.Stop()
			continue
		}
		// Lead a round for everyone registered so far.
		g.running = true
		target, set := g.asked, g.pending
		g.pending = map[string]struct{}{}
		g.mu.Unlock()
		err := g.syncStreams(set)
		g.mu.Lock()
		g.running = false
		g.rounds++
		if err != nil && g.err == nil {
			g.err = fmt.Errorf("store: group commit fsync: %w", err)
		}
		g.done = target
		g.cond.Broadcast()
	}
	return g.err
}

// close releases the open block files.
func (g *groupSync) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.running {
		g.cond.Wait()
	}
	for _, sf := range g.streams {
		if sf.f != nil {
			_ = sf.f.Close()
		}
	}
	g.streams = map[string]*streamFiles{}
}

func (g *groupSync) syncStreams(set map[string]struct{}) error {
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	// The streams' files are fsynced at once: the file system commits
	// them in one journal transaction where one after the other each
	// fsync but the first waited for its own flush (docs/RATIONALE.md,
	// "Why a group-commit round fsyncs its streams at once").
	type result struct {
		sf  *streamFiles
		err error
	}
	out := make([]result, len(names))
	if len(names) == 1 {
		out[0].sf, out[0].err = g.syncStream(names[0], g.streams[names[0]])
	} else {
		var wg sync.WaitGroup
		for i, n := range names {
			sf := g.streams[n]
			wg.Go(func() { out[i].sf, out[i].err = g.syncStream(n, sf) })
		}
		wg.Wait()
	}
	var errs []error
	for i, n := range names {
		if out[i].sf != nil {
			g.streams[n] = out[i].sf
		}
		if out[i].err != nil {
			errs = append(errs, fmt.Errorf("stream %s: %w", n, out[i].err))
		}
	}
	return errors.Join(errs...)
}

// syncStream fsyncs every block of stream that may hold an unsynced write:
// the newest block seen last round (sf, nil in a stream's first round) and
// any newer one (the server only appends to its newest block), and the
// directory when a block was added. It returns what the next round starts
// from (nil when the stream's blocks could not be found).
func (g *groupSync) syncStream(stream string, sf *streamFiles) (*streamFiles, error) {
	if sf == nil || !sf.current() {
		if sf != nil && sf.f != nil {
			_ = sf.f.Close()
		}
		var err error
		if sf, err = g.scan(stream); err != nil {
			return nil, err
		}
		if err := g.syncDir(sf.dir); err != nil {
			return sf, err
		}
	}
	added := false
	for {
		next := filepath.Join(sf.dir, strconv.Itoa(sf.last+1)+".blk")
		f, err := os.Open(next)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return sf, err
		}
		if err := g.syncFile(sf.f); err != nil {
			_ = f.Close()
			return sf, err
		}
		_ = sf.f.Close()
		sf.f, sf.last, added = f, sf.last+1, true
	}
	if err := g.syncFile(sf.f); err != nil {
		return sf, err
	}
	if added {
		return sf, g.syncDir(sf.dir)
	}
	return sf, nil
}

// current reports whether the open block is still the file at its path
// (the stream was not deleted and created again, the block not removed).
func (sf *streamFiles) current() bool {
	if sf.f == nil {
		return false
	}
	a, err := sf.f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(filepath.Join(sf.dir, strconv.Itoa(sf.last)+".blk"))
	return err == nil && os.SameFile(a, b)
}

// scan finds stream's block directory and fsyncs every block in it (the
// first round for a stream, or after its newest block went away: which of
// them took writes is not known), keeping the newest open.
func (g *groupSync) scan(stream string) (*streamFiles, error) {
	dirs, err := filepath.Glob(filepath.Join(g.root, "*", "streams", stream, "msgs"))
	if err != nil {
		return nil, err
	}
	if len(dirs) != 1 {
		return nil, fmt.Errorf("%d block directories under %s (want 1)", len(dirs), g.root)
	}
	ents, err := os.ReadDir(dirs[0])
	if err != nil {
		return nil, err
	}
	sf := &streamFiles{dir: dirs[0]}
	for _, e := range ents {
		idx, ok := strings.CutSuffix(e.Name(), ".blk")
		n, err := strconv.Atoi(idx)
		if !ok || err != nil {
			continue
		}
		f, err := os.Open(filepath.Join(sf.dir, e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // removed meanwhile (emptied)
		}
		if err == nil {
			err = g.syncFile(f)
		}
		if err != nil {
			if f != nil {
				_ = f.Close()
			}
			if sf.f != nil {
				_ = sf.f.Close()
			}
			return nil, err
		}
		if n > sf.last {
			if sf.f != nil {
				_ = sf.f.Close()
			}
			sf.f, sf.last = f, n
		} else {
			_ = f.Close()
		}
	}
	if sf.f == nil {
		return nil, fmt.Errorf("no block file in %s", dirs[0])
	}
	return sf, nil
}

func (g *groupSync) syncFile(f *os.File) error {
	if err := f.Sync(); err != nil {
		return err
	}
	if g.synced != nil {
		g.synced(f.Name())
	}
	return nil
}

func (g *groupSync) syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return g.syncFile(d)
}
