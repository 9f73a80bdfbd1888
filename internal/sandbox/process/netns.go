//go:build linux

package process

import (
	"os"
	"strconv"
	"sync"
	"time"
)

// netnsKeeper holds the network namespaces of closed sandboxes for a moment
// and releases them in batches while the tier is quiet. The kernel tears a
// network namespace down in a worker when its last reference goes (its
// subsystems' exit hooks, RCU grace periods, the RTNL lock): tens of
// milliseconds of CPU outside any sandbox's cgroup, at normal priority,
// which slowed the command a just-created sandbox ran next to it by a
// quarter (docs/PERFORMANCE.md). Batched, the kernel also shares that work
// across the namespaces of one batch. Only the namespace is held: every
// process of the sandbox is already dead, and a namespace with nothing in
// it but a loopback device holds no sandbox data.
type netnsKeeper struct {
	quiet  time.Duration // release once nothing happened for this long
	maxAge time.Duration // or once the oldest held has waited this long
	max    int           // or at once beyond this many
	now    func() time.Time

	mu     sync.Mutex // guards the fields below
	held   []*os.File
	oldest time.Time
	last   time.Time // when the tier's last activity (create, exec) ended
	active int       // activities under way
	closed bool

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
}

// Release policy of the tier's keeper.
const (
	netnsQuiet  = 100 * time.Millisecond
	netnsMaxAge = 2 * time.Second
	netnsMax    = 64
)

func newNetnsKeeper(quiet, maxAge time.Duration, max int, now func() time.Time) *netnsKeeper {
	return &netnsKeeper{quiet: quiet, maxAge: maxAge, max: max, now: now,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// start runs the releaser until close.
func (k *netnsKeeper) start() {
	go func() {
		defer close(k.done)
		t := time.NewTimer(time.Hour)
		defer t.Stop()
		for {
			if k.count() > 0 {
				t.Reset(k.quiet / 2)
			}
			select {
			case <-k.stop:
				return
			case <-k.wake:
			case <-t.C:
			}
			k.poll()
		}
	}()
}

// busy marks the start of an activity (a create, an exec) and returns
// its end: nothing is released while one is under way, nor for a quiet
// moment after the last one ends (the maximum age aside).
func (k *netnsKeeper) busy() (end func()) {
	k.mu.Lock()
	k.active++
	k.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			k.mu.Lock()
			k.active--
			k.last = k.now()
			k.mu.Unlock()
		})
	}
}

// hold takes a reference to the network namespace of process pid (a
// sandbox init about to be killed). It does nothing if that fails: the
// namespace then goes when its last process does, as it would anyway.
func (k *netnsKeeper) hold(pid int) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		return
	}
	k.add(f)
}

func (k *netnsKeeper) add(f *os.File) {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		f.Close()
		return
	}
	if len(k.held) == 0 {
		k.oldest = k.now()
	}
	k.held = append(k.held, f)
	var batch []*os.File
	if len(k.held) >= k.max {
		batch, k.held = k.held, nil
	}
	k.mu.Unlock()
	release(batch)
	select { // the releaser's timer starts with the first held
	case k.wake <- struct{}{}:
	default:
	}
}

// poll releases what is held if the tier is quiet (nothing under way, and
// nothing ended for a moment) or the oldest has waited long enough.
func (k *netnsKeeper) poll() {
	k.mu.Lock()
	now := k.now()
	var batch []*os.File
	quiet := k.active == 0 && now.Sub(k.last) >= k.quiet
	if len(k.held) > 0 && (quiet || now.Sub(k.oldest) >= k.maxAge) {
		batch, k.held = k.held, nil
	}
	k.mu.Unlock()
	release(batch)
}

func (k *netnsKeeper) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.held)
}

// close stops the releaser and releases everything held; later holds
// release at once.
func (k *netnsKeeper) close() {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return
	}
	k.closed = true
	batch := k.held
	k.held = nil
	k.mu.Unlock()
	close(k.stop)
	<-k.done
	release(batch)
}

func release(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
