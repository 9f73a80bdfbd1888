package isolate

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// vm is the Go side of one QuickJS wasm instance: bound exports and memory
// helpers. Values cross the boundary as JSValue* "boxes" malloc'd in linear
// memory by the C interface; every box returned to Go is owned by Go and must
// be released with freeValue.
type vm struct {
	mod api.Module
	mem api.Memory
	lin *linearMemory
	st  vmState

	preempter

	// disp are the dispatcher bound twice, for calls from Go and for calls
	// from inside host callbacks; nil without a dispatcher.
	disp     [2]api.Function
	dispatch bool

	f     exports  // for calls made by Go
	h     exports  // for calls made from inside host callbacks (re-entrant)
	stack []uint64 // CallWithStack buffer for f
	hs    []uint64 // CallWithStack buffer for h
}

// vmState is what, besides linear memory, a restored instance needs. All of
// it is addresses inside linear memory, so it is valid in any instance whose
// memory is a copy of this one.
type vmState struct {
	StackPointer uint32
	Runtime      uint32 // JSRuntime*
	Context      uint32 // JSContext*
	Scratch      uint32 // scratchSize bytes for out-parameters and argv
	Undefined    uint32 // box holding undefined
	Fns          [numFns]uint32
}

// Driver functions defined by prelude.js, in the order of driverFnNames.
const (
	fnConfigure = iota
	fnSetModule
	fnFetch
	fnAlarm
	fnNextTimer
	fnRunTimers
	fnEndCall
	numFns
)

var driverFnNames = [numFns]string{"configure", "setModule", "fetch", "alarm", "nextTimer", "runTimers", "endCall"}

const scratchSize = 64

const vmStateSize = 4 * (5 + numFns)

func (s *vmState) marshal(b []byte) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], s.StackPointer)
	le.PutUint32(b[4:], s.Runtime)
	le.PutUint32(b[8:], s.Context)
	le.PutUint32(b[12:], s.Scratch)
	le.PutUint32(b[16:], s.Undefined)
	for i, f := range s.Fns {
		le.PutUint32(b[20+4*i:], f)
	}
}

func (s *vmState) unmarshal(b []byte) {
	le := binary.LittleEndian
	s.StackPointer = le.Uint32(b[0:])
	s.Runtime = le.Uint32(b[4:])
	s.Context = le.Uint32(b[8:])
	s.Scratch = le.Uint32(b[12:])
	s.Undefined = le.Uint32(b[16:])
	for i := range s.Fns {
		s.Fns[i] = le.Uint32(b[20+4*i:])
	}
}

type exports struct {
	initialize, init, malloc, free                               *lazyFn
	eval, call, freeValue, dupValue                              *lazyFn
	newString, newArrayBuffer, newNumber, newArray, newError     *lazyFn
	newHostFunction, getGlobal, getUndefined                     *lazyFn
	getStringLen, freeCString, getArrayBuffer, getFloat64        *lazyFn
	isException, getException, isString, isArrayBuffer, isNumber *lazyFn
	isUndefined, isNull                                          *lazyFn
	isJobPending, executePendingJob                              *lazyFn
	promiseState, promiseResult                                  *lazyFn
	getPropString, getPropUint32, setPropString, setPropUint32   *lazyFn
	throw, setMaxStackSize, setMemoryLimit, setModuleLoader      *lazyFn
	setInterruptHandler                                          *lazyFn
	runGC, getRuntimePtr, getContextPtr, setRuntimeAndContext    *lazyFn
}

// lazyFn is one QuickJS export. With a dispatcher (see dispatch.go) it is
// called through it by index; otherwise it is bound on first use, since
// every bound api.Function carries its own call engine and stack.
type lazyFn struct {
	name string
	idx  uint64 // position in dispatchExports
	m    api.Module
	f    api.Function
}

func (l *lazyFn) fn() api.Function {
	if l.f == nil {
		l.f = l.m.ExportedFunction(l.name)
	}
	return l.f
}

// dispatchExports are the exports bindExports binds, in dispatcher order.
var dispatchExports = []string{
	"_initialize", "qjs_init", "wasm_malloc", "wasm_free", "qjs_eval", "qjs_call",
	"qjs_free_value", "qjs_dup_value", "qjs_new_string", "qjs_new_array_buffer",
	"qjs_new_number", "qjs_new_array", "qjs_new_error", "qjs_new_host_function",
	"qjs_get_global", "qjs_get_undefined", "qjs_get_string_len", "qjs_free_cstring",
	"qjs_get_array_buffer", "qjs_get_float64", "qjs_is_exception", "qjs_get_exception",
	"qjs_is_string", "qjs_is_array_buffer", "qjs_is_number", "qjs_is_undefined",
	"qjs_is_null", "qjs_is_job_pending", "qjs_execute_pending_job", "qjs_promise_state",
	"qjs_promise_result", "qjs_get_prop_string", "qjs_get_prop_uint32",
	"qjs_set_prop_string", "qjs_set_prop_uint32", "qjs_throw", "qjs_set_max_stack_size",
	"qjs_set_memory_limit", "qjs_set_module_loader", "qjs_set_interrupt_handler",
	"qjs_run_gc", "qjs_get_runtime_ptr", "qjs_get_context_ptr", "qjs_set_runtime_and_context",
}

var dispatchIndex = func() map[string]uint64 {
	m := make(map[string]uint64, len(dispatchExports))
	for i, n := range dispatchExports {
		m[n] = uint64(i)
	}
	return m
}()

// bindExports binds m's exports lazily; defs are the compiled module's
// exported functions (computed once per Runtime: asking the instance builds
// a 450-entry map each time).
func bindExports(m api.Module, defs map[string]api.FunctionDefinition) (exports, error) {
	var e exports
	var missing []string
	get := func(name string) *lazyFn {
		if _, ok := defs[name]; !ok {
			missing = append(missing, name)
		}
		idx, ok := dispatchIndex[name]
		if !ok {
			panic("isolate: export " + name + " missing from dispatchExports")
		}
		return &lazyFn{name: name, idx: idx, m: m}
	}
	e.initialize = get("_initialize")
	e.init = get("qjs_init")
	e.malloc = get("wasm_malloc")
	e.free = get("wasm_free")
	e.eval = get("qjs_eval")
	e.call = get("qjs_call")
	e.freeValue = get("qjs_free_value")
	e.dupValue = get("qjs_dup_value")
	e.newString = get("qjs_new_string")
	e.newArrayBuffer = get("qjs_new_array_buffer")
	e.newNumber = get("qjs_new_number")
	e.newArray = get("qjs_new_array")
	e.newError = get("qjs_new_error")
	e.newHostFunction = get("qjs_new_host_function")
	e.getGlobal = get("qjs_get_global")
	e.getUndefined = get("qjs_get_undefined")
	e.getStringLen = get("qjs_get_string_len")
	e.freeCString = get("qjs_free_cstring")
	e.getArrayBuffer = get("qjs_get_array_buffer")
	e.getFloat64 = get("qjs_get_float64")
	e.isException = get("qjs_is_exception")
	e.getException = get("qjs_get_exception")
	e.isString = get("qjs_is_string")
	e.isArrayBuffer = get("qjs_is_array_buffer")
	e.isNumber = get("qjs_is_number")
	e.isUndefined = get("qjs_is_undefined")
	e.isNull = get("qjs_is_null")
	e.isJobPending = get("qjs_is_job_pending")
	e.executePendingJob = get("qjs_execute_pending_job")
	e.promiseState = get("qjs_promise_state")
	e.promiseResult = get("qjs_promise_result")
	e.getPropString = get("qjs_get_prop_string")
	e.getPropUint32 = get("qjs_get_prop_uint32")
	e.setPropString = get("qjs_set_prop_string")
	e.setPropUint32 = get("qjs_set_prop_uint32")
	e.throw = get("qjs_throw")
	e.setMaxStackSize = get("qjs_set_max_stack_size")
	e.setMemoryLimit = get("qjs_set_memory_limit")
	e.setModuleLoader = get("qjs_set_module_loader")
	e.setInterruptHandler = get("qjs_set_interrupt_handler")
	e.runGC = get("qjs_run_gc")
	e.getRuntimePtr = get("qjs_get_runtime_ptr")
	e.getContextPtr = get("qjs_get_context_ptr")
	e.setRuntimeAndContext = get("qjs_set_runtime_and_context")
	if len(missing) > 0 {
		return e, fmt.Errorf("isolate: quickjs.wasm lacks exports %v", missing)
	}
	return e, nil
}

func newVM(m api.Module, defs map[string]api.FunctionDefinition, lin *linearMemory, preempt, dispatch bool) (*vm, error) {
	v := &vm{mod: m, mem: m.Memory(), lin: lin, stack: make([]uint64, 8), hs: make([]uint64, 8), dispatch: dispatch}
	if preempt {
		g, ok := m.ExportedGlobal(stopGlobalName).(api.MutableGlobal)
		if !ok {
			return nil, fmt.Errorf("isolate: instrumented module lacks %s", stopGlobalName)
		}
		v.stop = g
		// Without a yield import the module has no tick (instrument.go).
		v.tick, _ = m.ExportedGlobal(tickGlobalName).(api.MutableGlobal)
	}
	var err error
	if v.f, err = bindExports(m, defs); err != nil {
		return nil, err
	}
	// Host callbacks run while an outer export is on the stack; a wazero
	// function must not be re-entered, so the exports that can be both outer
	// (running JS) and inner get their own binding. The rest are leaves.
	v.h = v.f
	v.h.setPropString = &lazyFn{name: "qjs_set_prop_string", idx: dispatchIndex["qjs_set_prop_string"], m: m}
	v.h.setPropUint32 = &lazyFn{name: "qjs_set_prop_uint32", idx: dispatchIndex["qjs_set_prop_uint32"], m: m}
	v.h.getPropString = &lazyFn{name: "qjs_get_prop_string", idx: dispatchIndex["qjs_get_prop_string"], m: m}
	if v.mem == nil {
		return nil, errors.New("isolate: quickjs.wasm exports no memory")
	}
	return v, nil
}

// call invokes f with Go's stack buffer; use only outside host callbacks.
func (v *vm) call(ctx context.Context, f *lazyFn, args ...uint64) (uint32, error) {
	r, err := v.rawCall(ctx, false, f, args)
	return uint32(r), err
}

// hcall is call for use inside host callbacks.
func (v *vm) hcall(ctx context.Context, f *lazyFn, args ...uint64) (uint32, error) {
	r, err := v.rawCall(ctx, true, f, args)
	return uint32(r), err
}

// callIn is call, or hcall when inHost. Being a direct call (not one
// through a func value) its arguments stay on the stack.
func (v *vm) callIn(ctx context.Context, inHost bool, f *lazyFn, args ...uint64) (uint32, error) {
	r, err := v.rawCall(ctx, inHost, f, args)
	return uint32(r), err
}

// rawCall invokes f and returns its result's raw bits.
func (v *vm) rawCall(ctx context.Context, inner bool, f *lazyFn, args []uint64) (uint64, error) {
	stack, fn := v.stack, (api.Function)(nil)
	if inner {
		stack = v.hs
	}
	if v.dispatch {
		d := &v.disp[0]
		if inner {
			d = &v.disp[1]
		}
		if *d == nil {
			*d = v.mod.ExportedFunction(dispatchName)
		}
		fn = *d
		stack[0] = f.idx
		copy(stack[1:], args)
	} else {
		fn = f.fn()
		copy(stack, args)
	}
	if err := fn.CallWithStack(ctx, stack); err != nil {
		return 0, v.classify(err)
	}
	return stack[0], nil
}

// preempter raises an instrumented module's stop global (see
// instrument.go) when a call's context ends.
type preempter struct {
	// stop is the stop global (nil when the module is not instrumented);
	// fired is set once a call's context is done and stop has been
	// raised, so a trap can be reported as a timeout. tick is the loop
	// checks' yield countdown (nil: none), which fire sets to 1 so the next
	// loop entry reads stop (instrument.go, yieldEvery).
	stop  api.MutableGlobal
	tick  api.MutableGlobal
	fired atomic.Bool
	// One call is armed at a time. after stops the armed call's
	// context.AfterFunc; firing is held from arm until the fire has
	// raised stop (or is known never to run). fireFn and disarmFn are
	// the method values, made once: a call allocates no closures.
	// A StopNotifier context is watched through itself instead (notifier
	// set, after nil), which allocates nothing.
	after            func() bool
	notifier         StopNotifier
	firing           sync.WaitGroup
	fireFn, disarmFn func()
}

// StopNotifier is a call context that runs a function when it ends
// without context.AfterFunc's allocations (a watch context and a closure
// per call). The isolates' preemption uses it when the context a call is
// given implements it (the session package's call context does); other
// contexts are watched with context.AfterFunc.
type StopNotifier interface {
	context.Context
	// NotifyStop arranges for f to run once when the context ends; at
	// once, on the caller's goroutine, if it has ended already. f may run
	// on the goroutine that ends the context, and must not block.
	NotifyStop(f func())
	// StopNotify cancels the arrangement: true if f has not run and now
	// never will, false if it has run or is running.
	StopNotify() bool
}

// noDisarm is the disarm of a call that is never preempted.
func noDisarm() {}

// arm makes ctx's end preempt the guest until the returned disarm runs.
// Calls without a Done channel are never preempted.
func (v *preempter) arm(ctx context.Context) (disarm func()) {
	if v.stop == nil {
		return noDisarm
	}
	n, notifies := ctx.(StopNotifier)
	if !notifies && ctx.Done() == nil {
		return noDisarm
	}
	if v.fireFn == nil {
		v.fireFn, v.disarmFn = v.fire, v.disarm
	}
	v.firing.Add(1)
	if notifies {
		v.notifier = n
		n.NotifyStop(v.fireFn)
	} else {
		v.after = context.AfterFunc(ctx, v.fireFn)
	}
	return v.disarmFn
}

// fire raises stop: the guest traps at its next check. With a tick, the
// check reads stop when the tick reaches zero, so fire brings that to the
// next loop entry; the guest's own store of the tick can undo the write
// (a race it cannot lose for more than yieldEvery loop entries).
func (v *preempter) fire() {
	v.fired.Store(true)
	v.stop.Set(1)
	if v.tick != nil {
		v.tick.Set(1)
	}
	v.firing.Done()
}

// disarm ends the armed call's watch; if the fire started, it waits for it
// and lowers stop again for the next call.
func (v *preempter) disarm() {
	var stopped bool
	if n := v.notifier; n != nil {
		v.notifier = nil
		stopped = n.StopNotify()
	} else {
		after := v.after
		v.after = nil
		stopped = after()
	}
	if stopped {
		v.firing.Done() // the fire will never run
		return
	}
	v.firing.Wait()
	v.stop.Set(0)
	v.fired.Store(false)
}

// classify maps a wazero call error to the package's error kinds.
func (v *vm) classify(err error) error {
	if v.fired.Load() {
		return fmt.Errorf("%w: preempted: %w", ErrTimeout, context.DeadlineExceeded)
	}
	var ee *sys.ExitError
	if errors.As(err, &ee) {
		switch ee.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return fmt.Errorf("%w: %w", ErrTimeout, context.DeadlineExceeded)
		case sys.ExitCodeContextCanceled:
			return fmt.Errorf("isolate: call canceled: %w", context.Canceled)
		}
	}
	if errors.Is(err, errHostAbort) {
		return err
	}
	if v.lin != nil && v.lin.hit {
		return fmt.Errorf("%w: %w", ErrMemoryExceeded, err)
	}
	return fmt.Errorf("%w: %w", ErrCrashed, err)
}

var errHostAbort = errors.New("isolate: host aborted call")

func (v *vm) u32(addr uint32) uint32 {
	x, ok := v.mem.ReadUint32Le(addr)
	if !ok {
		panic(fmt.Sprintf("isolate: read out of range at %#x", addr))
	}
	return x
}

func (v *vm) putU32(addr, x uint32) {
	if !v.mem.WriteUint32Le(addr, x) {
		panic(fmt.Sprintf("isolate: write out of range at %#x", addr))
	}
}

// writeBytes mallocs len(b)+1 bytes, copies b there NUL-terminated and
// returns the address. The caller frees it.
func (v *vm) writeBytes(ctx context.Context, inHost bool, b []byte) (uint32, error) {
	return writeInto(ctx, v, inHost, b)
}

// writeString is writeBytes for a string, without copying it to a []byte
// first (a request's metadata crosses on every call).
func (v *vm) writeString(ctx context.Context, inHost bool, s string) (uint32, error) {
	return writeInto(ctx, v, inHost, s)
}

// writeInto is writeBytes and writeString.
func writeInto[T string | []byte](ctx context.Context, v *vm, inHost bool, b T) (uint32, error) {
	f := v.f.malloc
	if inHost {
		f = v.h.malloc
	}
	p, err := v.callIn(ctx, inHost, f, uint64(len(b)+1))
	if err != nil {
		return 0, err
	}
	if p == 0 {
		return 0, fmt.Errorf("%w: wasm_malloc(%d) failed", ErrMemoryExceeded, len(b)+1)
	}
	buf, ok := v.mem.Read(p, uint32(len(b)+1))
	if !ok {
		return 0, fmt.Errorf("%w: malloc returned out-of-range %#x", ErrCrashed, p)
	}
	copy(buf, b)
	buf[len(b)] = 0
	return p, nil
}

// bytesAt copies n bytes at addr.
func (v *vm) bytesAt(addr, n uint32) ([]byte, error) {
	b, ok := v.mem.Read(addr, n)
	if !ok {
		return nil, fmt.Errorf("%w: read %d bytes at %#x out of range", ErrCrashed, n, addr)
	}
	return append([]byte(nil), b...), nil
}

// str reads a JS string box as UTF-8 (WTF-8 for lone surrogates). A string
// longer than max bytes is refused by its length, before the host copies
// it, with a *SizeError; with clip it is cut to max bytes instead (at a
// UTF-8 boundary).
func (v *vm) str(ctx context.Context, inHost bool, box uint32, max int, clip bool) (string, error) {
	e := &v.f
	if inHost {
		e = &v.h
	}
	lenp := v.st.Scratch + 60
	if inHost {
		lenp = v.st.Scratch + 56
	}
	p, err := v.callIn(ctx, inHost, e.getStringLen, uint64(box), uint64(lenp))
	if err != nil {
		return "", err
	}
	if p == 0 {
		return "", nil
	}
	n := v.u32(lenp)
	if uint64(n) > uint64(max) {
		if !clip {
			_, ferr := v.callIn(ctx, inHost, e.freeCString, uint64(p))
			return "", errors.Join(&SizeError{Size: int64(n), Limit: int64(max)}, ferr)
		}
		n = uint32(max)
	}
	b, ok := v.mem.Read(p, n)
	if !ok {
		return "", fmt.Errorf("%w: string out of range", ErrCrashed)
	}
	s := string(b)
	if clip {
		s = strings.ToValidUTF8(s, "")
	}
	_, err = v.callIn(ctx, inHost, e.freeCString, uint64(p))
	return s, err
}

// newString makes a string box.
func (v *vm) newString(ctx context.Context, inHost bool, s string) (uint32, error) {
	e := &v.f
	if inHost {
		e = &v.h
	}
	p, err := v.writeString(ctx, inHost, s)
	if err != nil {
		return 0, err
	}
	box, err := v.callIn(ctx, inHost, e.newString, uint64(p), uint64(len(s)))
	if err != nil {
		return 0, err
	}
	_, err = v.callIn(ctx, inHost, e.free, uint64(p))
	return box, err
}

// newArrayBuffer makes an ArrayBuffer box holding a copy of b.
func (v *vm) newArrayBuffer(ctx context.Context, inHost bool, b []byte) (uint32, error) {
	e := &v.f
	if inHost {
		e = &v.h
	}
	p, err := v.writeBytes(ctx, inHost, b)
	if err != nil {
		return 0, err
	}
	box, err := v.callIn(ctx, inHost, e.newArrayBuffer, uint64(p), uint64(len(b)))
	if err != nil {
		return 0, err
	}
	_, err = v.callIn(ctx, inHost, e.free, uint64(p))
	return box, err
}

// arrayBuffer copies the bytes of an ArrayBuffer box; a buffer longer than
// max bytes is refused by its length, before any copy, with a *SizeError.
func (v *vm) arrayBuffer(ctx context.Context, inHost bool, box uint32, max int) ([]byte, error) {
	e := &v.f
	lenp := v.st.Scratch + 52
	if inHost {
		e = &v.h
		lenp = v.st.Scratch + 48
	}
	p, err := v.callIn(ctx, inHost, e.getArrayBuffer, uint64(box), uint64(lenp))
	if err != nil {
		return nil, err
	}
	n := v.u32(lenp)
	if p == 0 || n == 0 {
		return []byte{}, nil
	}
	if uint64(n) > uint64(max) {
		return nil, &SizeError{Size: int64(n), Limit: int64(max)}
	}
	return v.bytesAt(p, n)
}

func (v *vm) float(ctx context.Context, inHost bool, box uint32) (float64, error) {
	r, err := v.rawCall(ctx, inHost, v.f.getFloat64, []uint64{uint64(box)})
	return math.Float64frombits(r), err
}

func (v *vm) free(ctx context.Context, boxes ...uint32) error {
	for _, b := range boxes {
		if b == 0 {
			continue
		}
		if _, err := v.call(ctx, v.f.freeValue, uint64(b)); err != nil {
			return err
		}
	}
	return nil
}

// callFn calls the function box fn with this=undefined and the given
// argument boxes. It returns the result box or a *JSError.
func (v *vm) callFn(ctx context.Context, fn uint32, args ...uint32) (uint32, error) {
	argv := v.st.Scratch
	if len(args) > 8 {
		return 0, errors.New("isolate: too many arguments")
	}
	for i, a := range args {
		v.putU32(argv+uint32(4*i), a)
	}
	r, err := v.call(ctx, v.f.call, uint64(fn), uint64(v.st.Undefined), uint64(len(args)), uint64(argv))
	if err != nil {
		return 0, err
	}
	return v.checkException(ctx, r)
}

// checkException turns an exception result into a *JSError (freeing r).
func (v *vm) checkException(ctx context.Context, r uint32) (uint32, error) {
	exc, err := v.call(ctx, v.f.isException, uint64(r))
	if err != nil {
		return 0, err
	}
	if exc == 0 {
		return r, nil
	}
	if err := v.free(ctx, r); err != nil {
		return 0, err
	}
	e, err := v.call(ctx, v.f.getException)
	if err != nil {
		return 0, err
	}
	defer v.free(ctx, e) //nolint:errcheck // best effort
	return 0, v.jsError(ctx, e)
}

// maxErrorText is how much of a thrown error's message and stack the host
// reads: an agent throwing a huge message gets it cut, not copied whole.
const maxErrorText = 16 << 10

// jsError describes the thrown value in box e. Out-of-memory exceptions map
// to ErrMemoryExceeded.
func (v *vm) jsError(ctx context.Context, e uint32) error {
	je := &JSError{}
	get := func(name string) string {
		p, err := v.writeBytes(ctx, false, []byte(name))
		if err != nil {
			return ""
		}
		defer v.call(ctx, v.f.free, uint64(p)) //nolint:errcheck
		b, err := v.call(ctx, v.f.getPropString, uint64(e), uint64(p))
		if err != nil || b == 0 {
			return ""
		}
		defer v.free(ctx, b) //nolint:errcheck
		if s, _ := v.call(ctx, v.f.isString, uint64(b)); s == 0 {
			return ""
		}
		s, _ := v.str(ctx, false, b, maxErrorText, true)
		return s
	}
	if s, _ := v.call(ctx, v.f.isString, uint64(e)); s != 0 {
		je.Message, _ = v.str(ctx, false, e, maxErrorText, true)
	} else {
		je.Message = get("message")
		je.Name = get("name")
		je.Stack = get("stack")
	}
	if je.Message == "out of memory" && (je.Name == "InternalError" || je.Name == "") {
		return fmt.Errorf("%w: %w", ErrMemoryExceeded, je)
	}
	if je.Name == "InternalError" && je.Message == "interrupted" {
		return fmt.Errorf("%w: %w", ErrTimeout, je)
	}
	if c := currentCall(ctx); c != nil && c.ctx.Err() != nil &&
		(je.Name == "" || je.Name == "InternalError") && (je.Message == "" || je.Message == "interrupted") {
		// The call's context ended, so reading the thrown value's name or
		// message was itself interrupted (either may read as empty): this
		// is the interrupt.
		return fmt.Errorf("%w: %w", ErrTimeout, je)
	}
	return je
}

// drainJobs runs the microtask queue to empty.
func (v *vm) drainJobs(ctx context.Context) error {
	for {
		p, err := v.call(ctx, v.f.isJobPending)
		if err != nil {
			return err
		}
		if p == 0 {
			return nil
		}
		r, err := v.call(ctx, v.f.executePendingJob)
		if err != nil {
			return err
		}
		if int32(r) < 0 {
			e, err := v.call(ctx, v.f.getException)
			if err != nil {
				return err
			}
			jerr := v.jsError(ctx, e)
			_ = v.free(ctx, e)
			return jerr
		}
	}
}

func (v *vm) captureState(ctx context.Context) error {
	sp := v.mod.ExportedGlobal("__stack_pointer")
	if sp == nil {
		return errors.New("isolate: quickjs.wasm does not export __stack_pointer")
	}
	v.st.StackPointer = uint32(sp.Get())
	var err error
	if v.st.Runtime, err = v.call(ctx, v.f.getRuntimePtr); err != nil {
		return err
	}
	v.st.Context, err = v.call(ctx, v.f.getContextPtr)
	return err
}

func (v *vm) restoreState(ctx context.Context, st vmState) error {
	v.st = st
	sp, ok := v.mod.ExportedGlobal("__stack_pointer").(api.MutableGlobal)
	if !ok {
		return errors.New("isolate: __stack_pointer is not a mutable export")
	}
	sp.Set(uint64(st.StackPointer))
	_, err := v.call(ctx, v.f.setRuntimeAndContext, uint64(st.Runtime), uint64(st.Context))
	return err
}
