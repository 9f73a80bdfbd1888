package session

import (
	"context"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/internal/isolate"
)

// callCtx is the context of one call into a session's isolate: its
// parent's values, ended by the session's watch at the wall-time or
// CPU-time limit (cpuWatch), when the parent ends, or when the call is
// over. It lives inside the call's callHost, so a warm call allocates no
// context of its own: context.WithCancelCause made a context, a cancel
// closure and a children map per call, and the isolate's preemption then
// watched it with context.AfterFunc (another context and closure). The
// isolate preempts through NotifyStop instead (isolate.StopNotifier), and
// the Done channel is made only if someone asks for it. A parent that can
// end is watched with context.AfterFunc, as before; a streamed call's
// parent (context.WithoutCancel) cannot, and costs nothing.
//
// Err is context.Canceled once it ended, and finish says why (errWall,
// errCPU, the parent's cause, or nil when the call ended normally). Unlike
// a context.WithCancelCause context, context.Cause does not see that
// cause (the context package finds causes only in its own cancel
// contexts): host code that reports why a call's work was abandoned says
// "context canceled". And a child context of it (context.WithCancel and
// the like) is watched by a goroutine of the context package until either
// ends, where a WithCancelCause parent took it into its children map.
// The session maps its errors from finish, not from context.Cause.
type callCtx struct {
	parent   context.Context
	detached bool // parent's values only (start)

	mu     sync.Mutex
	done   chan struct{} // made by the first Done; closed when ended
	err    error         // context.Canceled (or the parent's error) once ended
	cause  error
	notify func()      // the isolate's preemption, run once when ended
	unwait func() bool // stops the watch of the parent; nil: none
}

var _ isolate.StopNotifier = (*callCtx)(nil)

// closedDone is the Done channel of a context that ended before anyone
// asked for one.
var closedDone = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// start makes c the context of a new call under parent. c must be unused
// (a fresh callHost's). A detached call (a streamed one) has parent's
// values but neither its end nor its deadline, as under
// context.WithoutCancel(parent); c does that itself because a lookup that
// reaches a WithoutCancel context from a context type outside the context
// package allocates (its Value method boxes it), and the engine looks up
// values at every call into the guest.
func (c *callCtx) start(parent context.Context, detached bool) {
	c.parent, c.detached = parent, detached
	if detached || parent.Done() == nil {
		return
	}
	if parent.Err() != nil {
		c.end(parent.Err(), context.Cause(parent))
		return
	}
	c.unwait = context.AfterFunc(parent, c.parentEnded)
}

func (c *callCtx) parentEnded() { c.end(c.parent.Err(), context.Cause(c.parent)) }

// cancel ends the call's context with cause (nil: the call is over).
func (c *callCtx) cancel(cause error) { c.end(context.Canceled, cause) }

// end ends c with err and cause unless it has ended already, and runs the
// isolate's preemption if one is armed.
func (c *callCtx) end(err, cause error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	if cause == nil {
		cause = err
	}
	c.err, c.cause = err, cause
	if c.done == nil {
		c.done = closedDone
	} else {
		close(c.done)
	}
	f := c.notify
	c.notify = nil
	c.mu.Unlock()
	if f != nil {
		f()
	}
}

// finish ends the call (its context is canceled for whatever still holds
// it, as a context.WithCancelCause's would be) and stops watching the
// parent. It returns why the call was stopped: nil when it was not.
func (c *callCtx) finish() (cause error) {
	c.mu.Lock()
	cause = c.cause
	c.mu.Unlock()
	if c.unwait != nil {
		c.unwait()
	}
	c.cancel(nil)
	return cause
}

// Deadline implements context.Context: the parent's (the wall-time limit
// is the watch's, not a deadline).
func (c *callCtx) Deadline() (time.Time, bool) {
	if c.detached {
		return time.Time{}, false
	}
	return c.parent.Deadline()
}

// Done implements context.Context.
func (c *callCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
	}
	return c.done
}

// Err implements context.Context.
func (c *callCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Value implements context.Context: the parent's values.
func (c *callCtx) Value(key any) any { return c.parent.Value(key) }

// NotifyStop implements isolate.StopNotifier.
func (c *callCtx) NotifyStop(f func()) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		f()
		return
	}
	c.notify = f
	c.mu.Unlock()
}

// StopNotify implements isolate.StopNotifier.
func (c *callCtx) StopNotify() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	armed := c.notify != nil
	c.notify = nil
	return armed
}

// detached is context.WithoutCancel(ctx) without its allocation on every
// value lookup: context's own type has a value receiver, so its Value boxes
// it again whenever it is called directly (as PrincipalFrom and the
// security Flow do on each call), where detached passes the lookup on.
type detached struct{ context.Context }

// detach returns ctx's values without its end or deadline.
func detach(ctx context.Context) context.Context { return detached{ctx} }

// Deadline implements context.Context: none.
func (detached) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done implements context.Context: never.
func (detached) Done() <-chan struct{} { return nil }

// Err implements context.Context: never.
func (detached) Err() error { return nil }
