package session

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// cpuWatch enforces one call's CPU-time limit (wall time minus time spent
// in host calls). Each session keeps one, so a warm request re-arms a timer
// instead of allocating a timer and its closures per call. The timer's
// function judges whatever call is current when it runs, so a fire left
// over from an earlier call only re-arms the timer for the current one.
type cpuWatch struct {
	busy atomic.Bool // claimed by a running call

	mu     sync.Mutex // guards the fields below and the timer's arming
	timer  *time.Timer
	armed  bool // a call is running and its limit is being watched
	start  time.Time
	cpu    time.Duration
	h      *callHost
	cancel context.CancelCauseFunc
}

// claim takes w for one call; false when another call holds it (the
// caller then uses a fresh cpuWatch).
func (w *cpuWatch) claim() bool { return w.busy.CompareAndSwap(false, true) }

// arm starts watching a call that may use cpu of CPU time.
func (w *cpuWatch) arm(cpu time.Duration, h *callHost, cancel context.CancelCauseFunc) {
	w.mu.Lock()
	w.start, w.cpu, w.h, w.cancel, w.armed = time.Now(), cpu, h, cancel, true
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
	used := time.Since(w.start) - w.h.hostTime()
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
}
