package session

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// cpuWatch enforces one call's wall-time limit and its CPU-time limit: the
// CPU time of the thread running the call (the calling goroutine is locked
// to its thread while armed) less the time spent in host calls. One timer
// watches both, so a call needs no deadline context of its own. Time the thread waits for a
// core is not counted, so a loaded node does not fail calls that used
// little CPU; where the thread's clock cannot be read it falls back to wall
// time. Each session keeps one, so a warm request re-arms a timer instead
// of allocating a timer and its closures per call. The timer's function
// judges whatever call is current when it runs, so a fire left over from an
// earlier call only re-arms the timer for the current one.
type cpuWatch struct {
	busy atomic.Bool // claimed by a running call

	mu     sync.Mutex // guards the fields below and the timer's arming
	timer  *time.Timer
	armed  bool // a call is running and its limits are being watched
	start  time.Time
	wall   time.Duration // the wall-time limit
	cpu    time.Duration // the CPU-time limit; 0: none (no thread lock, no clock)
	clock  int32         // the call's thread's CPU clock; 0: use wall time
	cpu0   time.Duration // that clock at arm
	h      *callHost
	cancel context.CancelCauseFunc
}

// claim takes w for one call; false when another call holds it (the
// caller then uses a fresh cpuWatch).
func (w *cpuWatch) claim() bool { return w.busy.CompareAndSwap(false, true) }

// arm starts watching a call that may take wall of wall time and, if cpu
// is positive and below wall, cpu of CPU time; cancel ends the call with
// errWall or errCPU. With a CPU limit it locks the calling goroutine to its
// thread until disarm, which the same goroutine must call.
func (w *cpuWatch) arm(wall, cpu time.Duration, h *callHost, cancel context.CancelCauseFunc) {
	if cpu >= wall {
		cpu = 0 // the wall limit comes first
	}
	var clock int32
	var cpu0 time.Duration
	if cpu > 0 {
		runtime.LockOSThread()
		clock = threadClock(unix.Gettid())
		var ok bool
		if cpu0, ok = readClock(clock); !ok {
			clock = 0
		}
	}
	first := wall
	if cpu > 0 {
		first = cpu
	}
	w.mu.Lock()
	w.start, w.wall, w.cpu, w.h, w.cancel, w.armed = time.Now(), wall, cpu, h, cancel, true
	w.clock, w.cpu0 = clock, cpu0
	if w.timer == nil {
		w.timer = time.AfterFunc(first, w.check)
	} else {
		w.timer.Reset(first)
	}
	w.mu.Unlock()
}

// check cancels the current call once its wall time or its CPU time is
// spent, or re-arms the timer for what is left of the nearer one.
func (w *cpuWatch) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.armed {
		return
	}
	elapsed := time.Since(w.start)
	if elapsed >= w.wall {
		w.cancel(errWall)
		return
	}
	next := w.wall - elapsed
	if w.cpu > 0 {
		used := elapsed
		if w.clock != 0 {
			if now, ok := readClock(w.clock); ok {
				used = now - w.cpu0
			}
		}
		used -= w.h.hostTime()
		if used >= w.cpu {
			w.cancel(errCPU)
			return
		}
		next = min(next, w.cpu-used)
	}
	w.timer.Reset(next)
}

// disarm stops watching and releases w for the next call.
func (w *cpuWatch) disarm() {
	w.mu.Lock()
	locked := w.cpu > 0
	w.armed = false
	w.timer.Stop()
	w.h, w.cancel = nil, nil
	w.mu.Unlock()
	w.busy.Store(false)
	if locked {
		runtime.UnlockOSThread()
	}
}

// threadClock is the CPU-time clock of thread tid (Linux's
// MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED), as pthread_getcpuclockid
// makes it), readable from any thread of the process.
func threadClock(tid int) int32 { return ^int32(tid)<<3 | 6 }

func readClock(clock int32) (time.Duration, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(clock, &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}
