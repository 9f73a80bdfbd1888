package session

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// cpuWatch enforces one call's CPU-time limit: the CPU time of the thread
// running the call (the calling goroutine is locked to its thread while
// armed) less the time spent in host calls. Time the thread waits for a
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
	armed  bool // a call is running and its limit is being watched
	start  time.Time
	clock  int32         // the call's thread's CPU clock; 0: use wall time
	cpu0   time.Duration // that clock at arm
	cpu    time.Duration
	h      *callHost
	cancel context.CancelCauseFunc
}

// claim takes w for one call; false when another call holds it (the
// caller then uses a fresh cpuWatch).
func (w *cpuWatch) claim() bool { return w.busy.CompareAndSwap(false, true) }

// arm starts watching a call that may use cpu of CPU time. It locks the
// calling goroutine to its thread until disarm, which the same goroutine
// must call.
func (w *cpuWatch) arm(cpu time.Duration, h *callHost, cancel context.CancelCauseFunc) {
	runtime.LockOSThread()
	clock := threadClock(unix.Gettid())
	cpu0, ok := readClock(clock)
	if !ok {
		clock = 0
	}
	w.mu.Lock()
	w.start, w.cpu, w.h, w.cancel, w.armed = time.Now(), cpu, h, cancel, true
	w.clock, w.cpu0 = clock, cpu0
	if w.timer == nil {
		w.timer = time.AfterFunc(cpu, w.check)
	} else {
		w.timer.Reset(cpu)
	}
	w.mu.Unlock()
}

// check cancels the current call once its CPU time is spent, or re-arms
// the timer for what is left.
func (w *cpuWatch) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.armed {
		return
	}
	used := time.Since(w.start)
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
	w.timer.Reset(w.cpu - used)
}

// disarm stops watching and releases w for the next call.
func (w *cpuWatch) disarm() {
	w.mu.Lock()
	w.armed = false
	w.timer.Stop()
	w.h, w.cancel = nil, nil
	w.mu.Unlock()
	w.busy.Store(false)
	runtime.UnlockOSThread()
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
