package isolate

import (
	"context"
	"crypto/rand"
	_ "embed"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

var (
	//go:embed prelude.js
	preludeJS string
	//go:embed jsonclone.js
	jsonCloneJS string
	//go:embed url.js
	urlJS string

	// prelude is prelude.js with the files it includes (a comment
	// "/*include NAME*/" stands for the function expression in NAME).
	prelude = preludeSource()
)

func preludeSource() string {
	s := preludeJS
	for name, src := range map[string]string{"jsonclone.js": jsonCloneJS, "url.js": urlJS} {
		mark := "/*include " + name + "*/"
		if strings.Count(s, mark) != 1 {
			panic("isolate: prelude.js must include " + name + " exactly once")
		}
		s = strings.Replace(s, mark, strings.TrimSpace(src), 1)
	}
	return s
}

// Spec describes the code and limits of one isolate.
type Spec struct {
	// SessionID and Agent are exposed to JS as env.session.{id,agent}. They
	// are applied on every New and Restore, so one template serves many
	// sessions.
	SessionID string
	Agent     string

	// Module is the agent's ES module source. Its default export is an
	// object with async fetch(request, env, ctx) and optionally alarm(env, ctx).
	Module string
	// ModuleName names Module in stack traces and resolves relative imports
	// (default "agent.js").
	ModuleName string
	// Modules are further sources Module may import, by specifier.
	Modules map[string]string
	// Env holds string variables set on the env object.
	Env map[string]string

	// MemoryMiB caps the isolate's linear memory (0: Config.DefaultMemoryMiB).
	// The JS heap gets this minus ~2 MiB for the C stack and static data.
	MemoryMiB int
	// StackKiB is the QuickJS stack limit; deeper recursion throws a
	// RangeError (0: 256; at most 512).
	StackKiB int
}

const moduleNameDefault = "agent.js"

// Isolate is one QuickJS instance running one agent module. Its methods are
// safe for concurrent use but run one at a time.
type Isolate struct {
	rt   *Runtime
	spec Spec

	mu   sync.Mutex // serializes calls; guards vm, dead and base
	vm   *vm
	dead error
	// base is the template the isolate's memory is mapped from, if any.
	base *Template
	// gone, while a response streams to a BodySink, is its Gone channel:
	// settle stops waiting for a timer when it closes.
	gone <-chan struct{}
	// driver is what the prelude's fetch returns for an asynchronous
	// handler (see settlesHandler); 0 until probed.
	driver driverKind
	// gen counts what may have written memory or dropped pages (calls,
	// Trim). snapPriv is the private-page map the last Snapshot read at
	// generation snapGen: while gen is still snapGen, Close hands it to
	// the pool's reset instead of reading /proc/self/pagemap again.
	gen, snapGen uint64
	snapPriv     []bool
	// code is the compiled module a restored isolate's instance is of
	// (nil for New): Close may pool the instance for restores of the
	// same module (instpool.go).
	code wazero.CompiledModule
}

// driverKind tells the two fetch drivers apart. A heap keeps the prelude
// it was made with, so an isolate restored from an image taken before the
// driver changed runs the old one.
type driverKind uint8

const (
	driverUnknown driverKind = iota
	// driverResponds: fetch returns a promise of respond's result.
	driverResponds
	// driverSettles: fetch returns the handler's promise; Go settles it
	// and calls fetch("\x02", result), which responds.
	driverSettles
)

// settlesHandler reports whether the driver returns an asynchronous
// handler's own promise, probing it once: the new driver's nextTimer
// answers -2 when called with an argument, the old one a due time or -1.
func (i *Isolate) settlesHandler(ctx context.Context) (bool, error) {
	if i.driver == driverUnknown {
		v := i.vm
		nb, err := v.callFn(ctx, v.st.Fns[fnNextTimer], v.st.Undefined)
		if err != nil {
			return false, err
		}
		x, err := v.float(ctx, false, nb)
		_ = v.free(ctx, nb)
		if err != nil {
			return false, err
		}
		i.driver = driverResponds
		if x == -2 {
			i.driver = driverSettles
		}
	}
	return i.driver == driverSettles, nil
}

func (r *Runtime) normalize(spec Spec) (Spec, error) {
	if spec.ModuleName == "" {
		spec.ModuleName = moduleNameDefault
	}
	if spec.MemoryMiB == 0 {
		spec.MemoryMiB = r.cfg.DefaultMemoryMiB
	}
	if spec.MemoryMiB < MinMemoryMiB || spec.MemoryMiB > r.cfg.MaxMemoryMiB {
		return spec, fmt.Errorf("%w: memory of %d MiB is outside [%d, %d]", ErrMemoryRange, spec.MemoryMiB, MinMemoryMiB, r.cfg.MaxMemoryMiB)
	}
	if spec.StackKiB == 0 {
		spec.StackKiB = defaultStackKiB
	}
	if spec.StackKiB < 16 || spec.StackKiB > maxStackKiB {
		return spec, fmt.Errorf("isolate: spec.StackKiB %d out of range [16, %d]", spec.StackKiB, maxStackKiB)
	}
	return spec, nil
}

// instantiate makes an uninitialized QuickJS isolate with spec's memory cap.
// With pf, a restore from that template file by a module without data
// segments, the memory may come from the reservation pool (pool.go).
func (r *Runtime) instantiate(ctx context.Context, spec Spec, code wazero.CompiledModule, pf *imageFile) (*Isolate, error) {
	mod, lin, err := r.instantiateModule(ctx, spec.MemoryMiB, code, pf)
	if err != nil {
		return nil, err
	}
	v, err := newVM(mod, r.qjsExports, lin, r.preempt, r.dispatch)
	if err != nil {
		_ = mod.Close(ctx)
		return nil, err
	}
	return &Isolate{rt: r, spec: spec, vm: v}, nil
}

// instantiateModule makes a fresh instance of code (QuickJS, with or
// without its data segments) with a memory limit of mib MiB.
func (r *Runtime) instantiateModule(ctx context.Context, mib int, code wazero.CompiledModule, pf *imageFile) (api.Module, *linearMemory, error) {
	var lin *linearMemory
	ictx := experimental.WithMemoryAllocator(ctx, allocator(uint64(mib)<<20, &lin, pf))
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions().
		WithSysWalltime().WithSysNanotime().WithRandSource(rand.Reader)
	mod, err := r.wr.InstantiateModule(ictx, code, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("isolate: instantiate quickjs: %w", err)
	}
	return mod, lin, nil
}

// New makes an isolate and evaluates spec.Module in it. Module-level code
// runs with a Host that only logs; state and fetch are unavailable until the
// first Fetch or Alarm.
func (r *Runtime) New(ctx context.Context, spec Spec) (*Isolate, error) {
	spec, err := r.normalize(spec)
	if err != nil {
		return nil, err
	}
	iso, err := r.instantiate(ctx, spec, r.qjs, nil)
	if err != nil {
		return nil, err
	}
	bctx, done := iso.enter(ctx, nil)
	err = iso.boot(bctx)
	done()
	if err != nil {
		_ = iso.vm.mod.Close(ctx)
		return nil, fmt.Errorf("isolate: new %s: %w", spec.ModuleName, err)
	}
	return iso, nil
}

// enter prepares ctx for calls into the guest on behalf of h and arms
// preemption; the caller runs done when it stops calling into the guest.
func (i *Isolate) enter(ctx context.Context, h Host) (cctx context.Context, done func()) {
	if h == nil {
		h = initHost{log: i.rt.log}
	}
	return &callValue{Context: ctx, c: callCtx{iso: i, host: h, ctx: ctx}}, i.vm.arm(ctx)
}

// boot initializes QuickJS, the prelude and the agent module.
func (i *Isolate) boot(ctx context.Context) error {
	v := i.vm
	if _, err := v.call(ctx, v.f.initialize); err != nil {
		return fmt.Errorf("_initialize: %w", err)
	}
	if rc, err := v.call(ctx, v.f.init); err != nil || rc != 0 {
		return fmt.Errorf("qjs_init = %d: %w", rc, err)
	}
	if err := i.applyLimits(ctx); err != nil {
		return err
	}
	if _, err := v.call(ctx, v.f.setModuleLoader, 1); err != nil {
		return err
	}
	var err error
	if v.st.Scratch, err = v.call(ctx, v.f.malloc, scratchSize); err != nil || v.st.Scratch == 0 {
		return fmt.Errorf("scratch alloc: %w", errors.Join(err, ErrMemoryExceeded))
	}
	if v.st.Undefined, err = v.call(ctx, v.f.getUndefined); err != nil {
		return err
	}
	// Install the host function where the prelude finds (and removes) it.
	name, err := v.writeBytes(ctx, false, []byte(hostFnName))
	if err != nil {
		return err
	}
	fn, err := v.call(ctx, v.f.newHostFunction, uint64(name), uint64(len(hostFnName)), 0)
	if err != nil {
		return err
	}
	global, err := v.call(ctx, v.f.getGlobal)
	if err != nil {
		return err
	}
	if _, err := v.call(ctx, v.f.setPropString, uint64(global), uint64(name), uint64(fn)); err != nil {
		return err
	}
	if err := v.free(ctx, fn, global); err != nil {
		return err
	}
	if _, err := v.call(ctx, v.f.free, uint64(name)); err != nil {
		return err
	}
	driver, err := v.eval(ctx, prelude, "agentcloud:prelude", 0)
	if err != nil {
		return fmt.Errorf("prelude: %w", err)
	}
	for k, n := range driverFnNames {
		p, err := v.writeBytes(ctx, false, []byte(n))
		if err != nil {
			return err
		}
		if v.st.Fns[k], err = v.call(ctx, v.f.getPropString, uint64(driver), uint64(p)); err != nil {
			return err
		}
		if _, err := v.call(ctx, v.f.free, uint64(p)); err != nil {
			return err
		}
	}
	if err := v.free(ctx, driver); err != nil {
		return err
	}
	if err := i.configure(ctx); err != nil {
		return err
	}
	p, err := v.eval(ctx, i.spec.Module, i.spec.ModuleName, evalModule)
	if err != nil {
		return err
	}
	ns, err := i.settle(ctx, p)
	_ = v.free(ctx, p)
	if err != nil {
		return err
	}
	r, err := v.callFn(ctx, v.st.Fns[fnSetModule], ns)
	if err != nil {
		return err
	}
	if err := v.free(ctx, r, ns); err != nil {
		return err
	}
	return v.captureState(ctx)
}

const evalModule = 1 // JS_EVAL_TYPE_MODULE

// eval evaluates code and returns the result box.
func (v *vm) eval(ctx context.Context, code, filename string, flags uint32) (uint32, error) {
	cp, err := v.writeBytes(ctx, false, []byte(code))
	if err != nil {
		return 0, err
	}
	fp, err := v.writeBytes(ctx, false, []byte(filename))
	if err != nil {
		return 0, err
	}
	r, err := v.call(ctx, v.f.eval, uint64(cp), uint64(len(code)), uint64(fp), uint64(flags))
	if err != nil {
		return 0, err
	}
	if _, err := v.call(ctx, v.f.free, uint64(cp)); err != nil {
		return 0, err
	}
	if _, err := v.call(ctx, v.f.free, uint64(fp)); err != nil {
		return 0, err
	}
	return v.checkException(ctx, r)
}

func (i *Isolate) applyLimits(ctx context.Context) error {
	v := i.vm
	heap := uint64(i.spec.MemoryMiB)<<20 - 2<<20
	if _, err := v.call(ctx, v.f.setMemoryLimit, heap); err != nil {
		return err
	}
	if _, err := v.call(ctx, v.f.setMaxStackSize, uint64(i.spec.StackKiB)<<10); err != nil {
		return err
	}
	_, err := v.call(ctx, v.f.setInterruptHandler, 1)
	return err
}

// configure hands session identity and env vars to the prelude as
// "id\0agent\0(name\0value\0)*" (sorted names).
func (i *Isolate) configure(ctx context.Context) error {
	names := make([]string, 0, len(i.spec.Env))
	for k := range i.spec.Env {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(i.spec.SessionID)
	b.WriteByte(0)
	b.WriteString(i.spec.Agent)
	b.WriteByte(0)
	for _, k := range names {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(i.spec.Env[k])
		b.WriteByte(0)
	}
	cfg := b.String()
	if strings.Count(cfg, "\x00") != 2+2*len(names) {
		return fmt.Errorf("isolate: NUL byte in session id, agent or env")
	}
	v := i.vm
	s, err := v.newString(ctx, false, cfg)
	if err != nil {
		return err
	}
	r, err := v.callFn(ctx, v.st.Fns[fnConfigure], s)
	if err != nil {
		return err
	}
	return v.free(ctx, r, s)
}

// settle runs microtasks and timers until promise p settles and returns its
// value (a new box). Timers fire in real time; the context bounds the wait.
func (i *Isolate) settle(ctx context.Context, p uint32) (uint32, error) {
	v := i.vm
	for {
		if err := v.drainJobs(ctx); err != nil {
			return 0, err
		}
		st, err := v.call(ctx, v.f.promiseState, uint64(p))
		if err != nil {
			return 0, err
		}
		switch st {
		case 1:
			return v.call(ctx, v.f.promiseResult, uint64(p))
		case 2:
			e, err := v.call(ctx, v.f.promiseResult, uint64(p))
			if err != nil {
				return 0, err
			}
			jerr := v.jsError(ctx, e)
			_ = v.free(ctx, e)
			return 0, jerr
		}
		// Pending: the only thing that can make progress is a timer.
		nb, err := v.callFn(ctx, v.st.Fns[fnNextTimer])
		if err != nil {
			return 0, err
		}
		next, err := v.float(ctx, false, nb)
		_ = v.free(ctx, nb)
		if err != nil {
			return 0, err
		}
		if next < 0 {
			return 0, &JSError{Name: "Error", Message: "handler did not settle: it awaits a promise nothing will resolve"}
		}
		if wait := time.Until(time.UnixMilli(int64(next))); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-i.gone:
				t.Stop()
				return 0, ErrClientGone
			case <-ctx.Done():
				t.Stop()
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return 0, fmt.Errorf("%w: waiting for a timer: %w", ErrTimeout, ctx.Err())
				}
				return 0, fmt.Errorf("isolate: call canceled: %w", ctx.Err())
			case <-t.C:
			}
		}
		r, err := v.callFn(ctx, v.st.Fns[fnRunTimers])
		if err != nil {
			return 0, err
		}
		_ = v.free(ctx, r)
	}
}

// begin locks the isolate for one call.
func (i *Isolate) begin() error {
	i.mu.Lock()
	i.gen++
	if i.dead != nil {
		err := i.dead
		i.mu.Unlock()
		return fmt.Errorf("%w: %w", ErrDead, err)
	}
	return nil
}

// end unlocks after a call, killing the isolate if err is fatal.
func (i *Isolate) end(ctx context.Context, err error) {
	if err != nil && (isFatal(err) || errors.Is(err, context.Canceled)) {
		i.dead = err
		i.rt.met.killed("js", err)
		_ = i.vm.mod.Close(context.WithoutCancel(ctx))
		i.vm.lin = nil
	}
	i.mu.Unlock()
}

// Fetch runs the module's fetch handler for req.
func (i *Isolate) Fetch(ctx context.Context, req Request, h Host) (resp Response, err error) {
	if err := i.begin(); err != nil {
		return Response{}, err
	}
	defer func() { i.end(ctx, err) }()
	ctx, done := i.enter(ctx, h)
	defer done()
	v := i.vm
	if len(req.Body) > i.rt.cfg.MaxBodyBytes {
		return Response{}, fmt.Errorf("%w: %w", ErrRequestTooLarge, &SizeError{Size: int64(len(req.Body)), Limit: int64(i.rt.cfg.MaxBodyBytes)})
	}
	meta, err := requestWire(req)
	if err != nil {
		return Response{}, err
	}
	mb, err := v.newString(ctx, false, meta)
	if err != nil {
		return Response{}, err
	}
	bb := v.st.Undefined
	if len(req.Body) > 0 {
		if bb, err = v.newArrayBuffer(ctx, false, req.Body); err != nil {
			return Response{}, err
		}
		defer func() { _ = v.free(ctx, bb) }()
	}
	res, err := v.callFn(ctx, v.st.Fns[fnFetch], mb, bb)
	_ = v.free(ctx, mb)
	if err != nil {
		return Response{}, i.finishCall(ctx, handlerErr(err, "fetch"))
	}
	if res, err = i.respondTo(ctx, res); err != nil {
		return Response{}, i.finishCall(ctx, handlerErr(err, "fetch"))
	}
	resp, step, err := i.readResponse(ctx, res)
	_ = v.free(ctx, res)
	if err == nil && step != 0 {
		resp, err = i.pullStream(ctx, resp, step, req.Sink)
		_ = v.free(ctx, step)
		if err == nil {
			err = i.finishCall(ctx, nil)
		}
	}
	if err != nil {
		return resp, i.finishCall(ctx, err)
	}
	// The driver already ended the call; run what the handler left queued.
	return resp, v.drainJobs(ctx)
}

// respondMeta is the meta of the driver call that responds to what an
// asynchronous handler's promise settled to (prelude.js fetch).
const respondMeta = "\x02"

// respondTo turns the driver's answer to a request into respond's result.
// A synchronous handler's answer is that already. A promise is settled
// first: with the old driver it is a promise of respond's result; with the
// new one a promise of the handler's, passed back to respond (which may
// return a promise again while waitUntil work is pending).
func (i *Isolate) respondTo(ctx context.Context, res uint32) (uint32, error) {
	v := i.vm
	for {
		st, err := v.call(ctx, v.f.promiseState, uint64(res))
		if err != nil {
			_ = v.free(ctx, res)
			return 0, err
		}
		if st > 2 { // not a promise
			return res, nil
		}
		settles, err := i.settlesHandler(ctx)
		if err != nil {
			_ = v.free(ctx, res)
			return 0, err
		}
		p := res
		res, err = i.settle(ctx, p)
		_ = v.free(ctx, p)
		if err != nil || !settles {
			return res, err
		}
		mb, err := v.newString(ctx, false, respondMeta)
		if err != nil {
			_ = v.free(ctx, res)
			return 0, err
		}
		val := res
		res, err = v.callFn(ctx, v.st.Fns[fnFetch], mb, val)
		_ = v.free(ctx, mb, val)
		if err != nil {
			return 0, err
		}
	}
}

// Alarm runs the module's alarm handler.
func (i *Isolate) Alarm(ctx context.Context, h Host) (err error) {
	if err := i.begin(); err != nil {
		return err
	}
	defer func() { i.end(ctx, err) }()
	ctx, done := i.enter(ctx, h)
	defer done()
	v := i.vm
	p, err := v.callFn(ctx, v.st.Fns[fnAlarm])
	if err != nil {
		return err
	}
	res, err := i.settle(ctx, p)
	_ = v.free(ctx, p)
	if err != nil {
		return i.finishCall(ctx, handlerErr(err, "alarm"))
	}
	_ = v.free(ctx, res)
	return i.finishCall(ctx, nil)
}

func handlerErr(err error, name string) error {
	var je *JSError
	if errors.As(err, &je) && je.Message == "__no_"+name+"_handler" {
		return fmt.Errorf("%w: default.%s", ErrNoHandler, name)
	}
	return err
}

// finishCall clears per-call JS state (timers, waitUntil) unless the
// isolate is about to die anyway.
func (i *Isolate) finishCall(ctx context.Context, err error) error {
	if err != nil && isFatal(err) {
		return err
	}
	v := i.vm
	r, cerr := v.callFn(ctx, v.st.Fns[fnEndCall])
	if cerr != nil {
		return errors.Join(err, cerr)
	}
	_ = v.free(ctx, r)
	if derr := v.drainJobs(ctx); derr != nil && err == nil && isFatal(derr) {
		return derr
	}
	return err
}

// readResponse decodes the driver's result (see respond in prelude.js). A
// response over MaxBodyBytes (metadata and body together) is refused by its
// length, read before anything is copied out of the isolate. A body that is
// a stream comes back as the box of its step function (stream.go), which
// the caller frees; step is 0 otherwise.
func (i *Isolate) readResponse(ctx context.Context, res uint32) (resp Response, step uint32, err error) {
	v := i.vm
	max := i.rt.cfg.MaxBodyBytes
	tooLarge := func(err error) error {
		var se *SizeError
		if errors.As(err, &se) {
			return fmt.Errorf("%w: %w", ErrResponseTooLarge, se)
		}
		return err
	}
	isStr, err := v.call(ctx, v.f.isString, uint64(res))
	if err != nil {
		return Response{}, 0, err
	}
	if isStr != 0 {
		s, err := v.str(ctx, false, res, max, false)
		if err != nil {
			return Response{}, 0, tooLarge(err)
		}
		resp, err := parseResponseWire(s, nil, true)
		return resp, 0, err
	}
	mb, err := v.call(ctx, v.f.getPropUint32, uint64(res), 0)
	if err != nil {
		return Response{}, 0, err
	}
	meta, err := v.str(ctx, false, mb, max, false)
	_ = v.free(ctx, mb)
	if err != nil {
		return Response{}, 0, tooLarge(err)
	}
	bb, err := v.call(ctx, v.f.getPropUint32, uint64(res), 1)
	if err != nil {
		return Response{}, 0, err
	}
	if null, err := v.call(ctx, v.f.isNull, uint64(bb)); err != nil || null != 0 {
		_ = v.free(ctx, bb)
		if err != nil {
			return Response{}, 0, err
		}
		if resp, err = parseResponseWire(meta, nil, false); err != nil {
			return Response{}, 0, err
		}
		step, err := v.call(ctx, v.f.getPropUint32, uint64(res), 2)
		return resp, step, err
	}
	body, err := v.arrayBuffer(ctx, false, bb, max-len(meta))
	_ = v.free(ctx, bb)
	if err != nil {
		var se *SizeError
		if errors.As(err, &se) {
			se.Size += int64(len(meta))
			se.Limit = int64(max)
		}
		return Response{}, 0, tooLarge(err)
	}
	resp, err = parseResponseWire(meta, body, false)
	return resp, 0, err
}

// Close releases the isolate. Later calls return ErrDead.
func (i *Isolate) Close(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.dead != nil {
		return nil
	}
	i.dead = errors.New("closed")
	if i.snapPriv != nil && i.snapGen == i.gen && i.vm.lin != nil {
		// Nothing ran since the snapshot read which pages are private:
		// the reset that pools the reservation reuses that map.
		i.vm.lin.known = i.snapPriv
	}
	i.snapPriv = nil
	if i.code != nil && poolInstance(i.rt, i.code, i.vm) {
		// The instance now belongs to the pool: nothing here may reach
		// it again (every method checks dead first).
		i.vm = nil
		return nil
	}
	i.vm.lin = nil
	return i.vm.mod.Close(ctx)
}

// Err returns nil while the isolate is usable, else why it is not.
func (i *Isolate) Err() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.dead
}

// MemoryBytes is the current size of the isolate's linear memory.
func (i *Isolate) MemoryBytes() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.dead != nil {
		return 0
	}
	return int(i.vm.mem.Size())
}

// ResidentBytes is how much of the linear memory is resident in RAM,
// counting pages still shared with the template the isolate was restored
// from (for the isolate's own RAM, see Private_Dirty in
// BenchmarkLiveIsolateMemory).
func (i *Isolate) ResidentBytes() (int, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.dead != nil || i.vm.lin == nil {
		return 0, nil
	}
	return i.vm.lin.resident()
}

// initHost is the Host during module evaluation: console works, nothing else.
type initHost struct {
	log interface{ Info(string, ...any) }
}

var errNoHost = errors.New("not available during module initialization")

func (h initHost) StateGet(string) ([]byte, bool, error) { return nil, false, errNoHost }
func (h initHost) StatePut(string, []byte) error         { return errNoHost }
func (h initHost) StateDelete(string) error              { return errNoHost }
func (h initHost) StateList(string, int) ([]KV, error)   { return nil, errNoHost }
func (h initHost) SetAlarm(time.Time) error              { return errNoHost }
func (h initHost) GetAlarm() (time.Time, bool, error)    { return time.Time{}, false, errNoHost }
func (h initHost) DeleteAlarm() error                    { return errNoHost }
func (h initHost) Fetch(context.Context, Request) (Response, error) {
	return Response{}, errNoHost
}
func (h initHost) Invoke(context.Context, string, string, []byte) ([]byte, error) {
	return nil, errNoHost
}
func (h initHost) Log(level, msg string) {
	h.log.Info("isolate init console", "console", level, "text", msg) // not "level"/"msg": slog's own keys
}
