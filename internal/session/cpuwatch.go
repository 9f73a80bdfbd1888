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
// watches the wall time, so a call needs no deadline context of its own.
// Each session keeps one, so a warm request re-arms a timer instead of
// allocating a timer and its closures per call. The timer's function judges
// whatever call is current when it runs, so a fire left over from an
// earlier call only re-arms the timer for the current one.
//
// The CPU time is read at the guest's yields (yield, on the call's own
// thread), not at arm: a call that ends before the guest first yields (a
// warm request, usually) makes no system call for its limit. The first
// yield reads the thread's clock; the CPU time counted is the thread's from
// that read on, less the host time from then on, so a stop is only ever
// decided on CPU time the thread really spent: time it waits for a core,
// before or after the first yield, is never counted, and a loaded node
// does not fail calls that used little CPU. The CPU spent before the first
// yield is not counted (at most one yield interval: 16,384 loop entries,
// or the engine's interrupt poll). Later yields read the clock only once
// the wall time since the first yield less host time has reached the limit
// (a cheap check first: CPU time cannot exceed it). Where the clock cannot
// be read, wall time less host time since arm stands for CPU time. See
// RATIONALE "Why a call's CPU clock is read at the guest's yields".
type cpuWatch struct {
	busy atomic.Bool // claimed by a running call

	mu      sync.Mutex // guards the fields below and the timer's arming
	timer   *time.Timer
	armed   bool // a call is running and its limits are being watched
	start   time.Time
	wall    time.Duration // the wall-time limit
	cpu     time.Duration // the CPU-time limit; 0: none (no thread lock, no clock)
	clock   int32         // the call's thread's CPU clock once a yield read it; 0: not yet
	cpu0    time.Duration // that clock at the first yield
	wall0   time.Duration // the wall time from arm to the first yield
	host0   time.Duration // the host time from arm to the first yield
	wallCPU bool          // the clock could not be read: wall time stands for CPU time
	h       *callHost
	cancel  context.CancelCauseFunc // nil: end h's call context (h.lim)
}

// claim takes w for one call; false when another call holds it (the
// caller then uses a fresh cpuWatch).
func (w *cpuWatch) claim() bool { return w.busy.CompareAndSwap(false, true) }

// arm starts watching a call that may take wall of wall time and, if cpu
// is positive and below wall, cpu of CPU time; cancel ends the call with
// errWall or errCPU (nil: h.lim is ended, as for every session call). With a CPU limit it locks the calling goroutine to its
// thread until disarm, which the same goroutine must call; the guest's
// yields (callHost.Yield) must come from that goroutine too.
func (w *cpuWatch) arm(wall, cpu time.Duration, h *callHost, cancel context.CancelCauseFunc) {
	if cpu >= wall {
		cpu = 0 // the wall limit comes first
	}
	if cpu > 0 {
		runtime.LockOSThread()
	}
	w.mu.Lock()
	w.start, w.wall, w.cpu, w.h, w.cancel, w.armed = time.Now(), wall, cpu, h, cancel, true
	w.clock, w.cpu0, w.wall0, w.host0, w.wallCPU = 0, 0, 0, 0, false
	first := wall
	if cpu > 0 {
		first = cpu
	}
	if w.timer == nil {
		w.timer = time.AfterFunc(first, w.check)
	} else {
		w.timer.Reset(first)
	}
	w.mu.Unlock()
}

// yield judges the CPU time of h's call; it runs on the call's thread at
// the guest's yields. The first one reads the thread's CPU clock and starts
// counting from there. A yield of a call that is not the one armed (over,
// or another's) does nothing.
func (w *cpuWatch) yield(h *callHost) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.armed || w.h != h || w.cpu == 0 {
		return
	}
	elapsed := time.Since(w.start)
	if w.clock == 0 && !w.wallCPU {
		clock := threadClock(unix.Gettid())
		if now, ok := readClock(clock); ok {
			// Count from here: the wall time since arm may be
			// time the thread waited for a core, not CPU.
			w.clock, w.cpu0, w.wall0, w.host0 = clock, now, elapsed, w.h.hostTime()
			return
		}
		w.wallCPU = true
	}
	if elapsed-w.wall0-(w.h.hostTime()-w.host0) < w.cpu {
		return // CPU time cannot be over yet
	}
	if w.cpuUsed(elapsed) >= w.cpu {
		w.stop(errCPU)
	}
}

// stop ends the current call with cause. w.mu must be held.
func (w *cpuWatch) stop(cause error) {
	if w.cancel != nil {
		w.cancel(cause)
		return
	}
	w.h.lim.cancel(cause)
}

// cpuUsed is the current call's CPU time since its first yield, or its
// wall time since arm where the clock is unknown, less its host time over
// the same span. w.mu must be held.
func (w *cpuWatch) cpuUsed(elapsed time.Duration) time.Duration {
	used := elapsed - w.wall0
	if w.clock != 0 {
		if now, ok := readClock(w.clock); ok {
			used = now - w.cpu0
		}
	}
	return used - (w.h.hostTime() - w.host0)
}

// check cancels the current call once its wall time is spent, or once its
// CPU time is (where a yield has read the thread's clock, or found it
// unreadable), or re-arms the timer for what is left of the nearer one.
func (w *cpuWatch) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.armed {
		return
	}
	elapsed := time.Since(w.start)
	if elapsed >= w.wall {
		w.stop(errWall)
		return
	}
	next := w.wall - elapsed
	switch {
	case w.cpu == 0:
	case w.clock == 0 && !w.wallCPU:
		// No yield yet: the guest has not run long since arm; look
		// again later (the yields judge the CPU time too).
		next = min(next, w.cpu)
	default:
		used := w.cpuUsed(elapsed)
		if used >= w.cpu {
			w.stop(errCPU)
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
