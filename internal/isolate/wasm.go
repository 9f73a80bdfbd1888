package isolate

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// The `runtime: wasm` path: any wasm32-wasip1 reactor that speaks the host
// ABI in ABI.md runs as a WasmIsolate, with the same limits, preemption and
// Host as JavaScript isolates.

// WasmSpec describes a raw WebAssembly agent.
type WasmSpec struct {
	// SessionID and Agent are sent with every request (JSON "session").
	SessionID string
	Agent     string
	// Module is the wasm binary.
	Module []byte
	// Env is sent with every request (JSON "env").
	Env map[string]string
	// MemoryMiB caps linear memory (0: Config.DefaultMemoryMiB).
	MemoryMiB int
}

// WasmIsolate is one instance of a raw wasm agent. Like Isolate, its
// methods are safe for concurrent use but run one at a time, and a timeout,
// memory overrun or trap leaves it dead.
type WasmIsolate struct {
	rt   *Runtime
	spec WasmSpec
	cm   *wasmModule

	mu   sync.Mutex
	mod  api.Module
	lin  *linearMemory
	pre  preempter
	fns  map[string]api.Function
	dead error
}

// wasmModule is a compiled (and instrumented) agent module.
type wasmModule struct {
	hash     [32]byte
	compiled wazero.CompiledModule
	hasAlarm bool
	globals  []string // exported globals, sorted
	minPages uint32   // the memory's declared initial size
}

const wasmHostModule = "agentcloud"

// validateWasm checks b as uploaded, before the rewriter adds globals and
// an import: code that names a global or function the module does not
// have must not come to name the ones added (a loop that rewrites the
// tick would never be stopped), so an invalid module is refused here.
// A start section is refused too: wazero runs it inside instantiation,
// before the preempter is armed; set-up belongs in _initialize, which
// runs under limits.wall_ms. Called with wasmMu held.
func (r *Runtime) validateWasm(ctx context.Context, b []byte) error {
	if hasSection(b, 8) {
		return errors.New("a wasm agent may not have a start section: export _initialize instead (it runs under limits.wall_ms)")
	}
	if r.vr == nil {
		r.vr = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	}
	c, err := r.vr.CompileModule(ctx, b)
	if err != nil {
		return fmt.Errorf("invalid module: %w", err)
	}
	return c.Close(ctx)
}

// hasSection reports whether wasm binary b has a section of id (false for
// what is not a wasm binary; the rewriter says why).
func hasSection(b []byte, id byte) bool {
	ws, err := parseSections(b)
	return err == nil && ws.find(id) != nil
}

// compileWasm instruments and compiles b, caching by content.
func (r *Runtime) compileWasm(ctx context.Context, b []byte) (*wasmModule, error) {
	h := sha256.Sum256(b)
	r.wasmMu.Lock()
	defer r.wasmMu.Unlock()
	if m, ok := r.wasmMods[h]; ok {
		return m, nil
	}
	ar, err := r.wasmRuntime(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.validateWasm(ctx, b); err != nil {
		return nil, fmt.Errorf("isolate: wasm module: %w", err)
	}
	code, err := rewriteWasm(b, rewriteOpts{stopLoops: true, addYield: &wasmYield})
	if err != nil {
		return nil, fmt.Errorf("isolate: wasm module: %w", err)
	}
	c, err := ar.CompileModule(ctx, code)
	if err != nil {
		return nil, fmt.Errorf("isolate: compile wasm module: %w", err)
	}
	exp := c.ExportedFunctions()
	for _, name := range []string{"ac_alloc", "ac_free", "ac_fetch"} {
		if _, ok := exp[name]; !ok {
			_ = c.Close(ctx)
			return nil, fmt.Errorf("isolate: wasm module does not export %s (see ABI.md)", name)
		}
	}
	if _, ok := c.ExportedMemories()["memory"]; !ok {
		_ = c.Close(ctx)
		return nil, errors.New("isolate: wasm module does not export its memory")
	}
	_, alarm := exp["ac_alarm"]
	m := &wasmModule{hash: h, compiled: c, hasAlarm: alarm, globals: exportedGlobalNames(b),
		minPages: c.ExportedMemories()["memory"].Min()}
	if r.wasmMods == nil {
		r.wasmMods = map[[32]byte]*wasmModule{}
	}
	r.wasmMods[h] = m
	return m, nil
}

// NewWasm instantiates spec.Module and runs its _initialize export.
func (r *Runtime) NewWasm(ctx context.Context, spec WasmSpec) (*WasmIsolate, error) {
	w, err := r.instantiateWasm(ctx, spec)
	if err != nil {
		return nil, err
	}
	if _, ok := w.cm.compiled.ExportedFunctions()["_initialize"]; ok {
		if _, err := w.call(ctx, nil, "_initialize"); err != nil {
			_ = w.mod.Close(ctx)
			return nil, fmt.Errorf("isolate: wasm _initialize: %w", err)
		}
	}
	return w, nil
}

func (r *Runtime) instantiateWasm(ctx context.Context, spec WasmSpec) (*WasmIsolate, error) {
	if spec.MemoryMiB == 0 {
		spec.MemoryMiB = r.cfg.DefaultMemoryMiB
	}
	if spec.MemoryMiB < MinWasmMemoryMiB || spec.MemoryMiB > r.cfg.MaxMemoryMiB {
		return nil, fmt.Errorf("%w: memory of %d MiB is outside [%d, %d]", ErrMemoryRange, spec.MemoryMiB, MinWasmMemoryMiB, r.cfg.MaxMemoryMiB)
	}
	cm, err := r.compileWasm(ctx, spec.Module)
	if err != nil {
		return nil, err
	}
	if need := uint64(cm.minPages) * wasmPage; need > uint64(spec.MemoryMiB)<<20 {
		return nil, fmt.Errorf("%w: the module declares %d wasm pages (%.2f MiB) of initial memory, more than the limit of %d MiB",
			ErrMemoryRange, cm.minPages, float64(need)/(1<<20), spec.MemoryMiB)
	}
	w := &WasmIsolate{rt: r, spec: spec, cm: cm, fns: map[string]api.Function{}}
	ictx := experimental.WithMemoryAllocator(ctx, allocator(uint64(spec.MemoryMiB)<<20, &w.lin, nil))
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions().
		WithSysWalltime().WithSysNanotime().WithRandSource(rand.Reader)
	r.wasmMu.Lock()
	ar := r.ar // set by compileWasm above
	r.wasmMu.Unlock()
	if w.mod, err = ar.InstantiateModule(ictx, cm.compiled, cfg); err != nil {
		return nil, fmt.Errorf("isolate: instantiate wasm module: %w", w.classify(err))
	}
	g, ok := w.mod.ExportedGlobal(stopGlobalName).(api.MutableGlobal)
	if !ok {
		_ = w.mod.Close(ctx)
		return nil, errors.New("isolate: instrumented wasm module lacks its stop global")
	}
	w.pre.stop = g
	w.pre.tick, _ = w.mod.ExportedGlobal(tickGlobalName).(api.MutableGlobal)
	return w, nil
}

// wasmCall is the state of the Go call running in a WasmIsolate.
type wasmCall struct {
	w    *WasmIsolate
	host Host
	ctx  context.Context
}

type wasmCallKey struct{}

// call runs export name; h may be nil outside Fetch and Alarm.
func (w *WasmIsolate) call(ctx context.Context, h Host, name string, args ...uint64) ([]uint64, error) {
	if h == nil {
		h = initHost{log: w.rt.log}
	}
	cctx := context.WithValue(ctx, wasmCallKey{}, &wasmCall{w: w, host: h, ctx: ctx})
	disarm := w.pre.arm(ctx)
	defer disarm()
	return w.callIn(cctx, name, args...)
}

// callIn calls an export with a context that already carries the call.
func (w *WasmIsolate) callIn(ctx context.Context, name string, args ...uint64) ([]uint64, error) {
	f := w.fns[name]
	if f == nil {
		if f = w.mod.ExportedFunction(name); f == nil {
			return nil, fmt.Errorf("%w: wasm module does not export %s", ErrNoHandler, name)
		}
		w.fns[name] = f
	}
	res, err := f.Call(ctx, args...)
	if err != nil {
		return nil, w.classify(err)
	}
	return res, nil
}

func (w *WasmIsolate) classify(err error) error {
	if errors.Is(err, errHostAbort) {
		return err
	}
	if w.pre.fired.Load() {
		return fmt.Errorf("%w: preempted: %w", ErrTimeout, context.DeadlineExceeded)
	}
	var ee *sys.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("%w: guest exited with code %d", ErrCrashed, ee.ExitCode())
	}
	if w.lin != nil && w.lin.hit {
		return fmt.Errorf("%w: %w", ErrMemoryExceeded, err)
	}
	return fmt.Errorf("%w: %w", ErrCrashed, err)
}

func (w *WasmIsolate) begin() error {
	w.mu.Lock()
	if w.dead != nil {
		err := w.dead
		w.mu.Unlock()
		return fmt.Errorf("%w: %w", ErrDead, err)
	}
	return nil
}

func (w *WasmIsolate) end(ctx context.Context, err error) {
	if err != nil && (isFatal(err) || errors.Is(err, context.Canceled)) {
		w.dead = err
		w.rt.met.killed("wasm", err)
		_ = w.mod.Close(context.WithoutCancel(ctx))
	}
	w.mu.Unlock()
}

// wasmRequest is the request JSON of ABI.md.
type wasmRequest struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers [][2]string       `json:"headers"`
	Session map[string]string `json:"session,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
}

// encodeWire builds "u32 LE json_len | json | body".
func encodeWire(meta any, body []byte) []byte {
	j, _ := json.Marshal(meta)
	out := make([]byte, 4, 4+len(j)+len(body))
	binary.LittleEndian.PutUint32(out, uint32(len(j)))
	out = append(out, j...)
	return append(out, body...)
}

// decodeWire splits a wire buffer into its JSON and body.
func decodeWire(b []byte, meta any) ([]byte, error) {
	if len(b) < 4 {
		return nil, errors.New("short buffer")
	}
	n := binary.LittleEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, errors.New("json length out of range")
	}
	if err := json.Unmarshal(b[4:4+n], meta); err != nil {
		return nil, err
	}
	return b[4+n:], nil
}

// Fetch sends req to the module's ac_fetch.
func (w *WasmIsolate) Fetch(ctx context.Context, req Request, h Host) (resp Response, err error) {
	if err := w.begin(); err != nil {
		return Response{}, err
	}
	defer func() { w.end(ctx, err) }()
	if req.Method == "" {
		req.Method = "GET"
	}
	if len(req.Body) > w.rt.cfg.MaxBodyBytes {
		return Response{}, fmt.Errorf("%w: %w", ErrRequestTooLarge, &SizeError{Size: int64(len(req.Body)), Limit: int64(w.rt.cfg.MaxBodyBytes)})
	}
	hdrs := req.Headers
	if hdrs == nil {
		hdrs = [][2]string{}
	}
	in := encodeWire(wasmRequest{Method: req.Method, URL: req.URL, Headers: hdrs,
		Session: map[string]string{"id": w.spec.SessionID, "agent": w.spec.Agent}, Env: w.spec.Env}, req.Body)
	cctx := context.WithValue(ctx, wasmCallKey{}, &wasmCall{w: w, host: h, ctx: ctx})
	disarm := w.pre.arm(ctx)
	defer disarm()
	p, err := w.putBytes(cctx, in)
	if err != nil {
		return Response{}, err
	}
	res, err := w.callIn(cctx, "ac_fetch", uint64(p), uint64(len(in)))
	if err != nil {
		return Response{}, err
	}
	_, _ = w.callIn(cctx, "ac_free", uint64(p))
	rp, rn := uint32(res[0]>>32), uint32(res[0])
	if uint64(rn) > uint64(w.rt.cfg.MaxBodyBytes) {
		// Refused by its length; the guest still owns the buffer.
		_, ferr := w.callIn(cctx, "ac_free", uint64(rp))
		return Response{}, errors.Join(fmt.Errorf("%w: %w", ErrResponseTooLarge, &SizeError{Size: int64(rn), Limit: int64(w.rt.cfg.MaxBodyBytes)}), ferr)
	}
	out, ok := w.mod.Memory().Read(rp, rn)
	if !ok {
		return Response{}, fmt.Errorf("%w: ac_fetch returned out-of-range buffer %#x+%d", ErrCrashed, rp, rn)
	}
	var meta wireResponse
	body, err := decodeWire(out, &meta)
	if err != nil {
		return Response{}, fmt.Errorf("%w: bad response: %w", ErrCrashed, err)
	}
	resp = Response{Status: meta.Status, StatusText: meta.StatusText, Headers: meta.Headers, Body: append([]byte{}, body...)}
	if resp.Headers == nil {
		resp.Headers = [][2]string{}
	}
	_, err = w.callIn(cctx, "ac_free", uint64(rp))
	return resp, err
}

// Alarm calls the module's ac_alarm.
func (w *WasmIsolate) Alarm(ctx context.Context, h Host) (err error) {
	if err := w.begin(); err != nil {
		return err
	}
	defer func() { w.end(ctx, err) }()
	if !w.cm.hasAlarm {
		return fmt.Errorf("%w: ac_alarm", ErrNoHandler)
	}
	res, err := w.call(ctx, h, "ac_alarm")
	if err != nil {
		return err
	}
	if len(res) > 0 && int32(res[0]) < 0 {
		return fmt.Errorf("isolate: ac_alarm returned %d", int32(res[0]))
	}
	return nil
}

// putBytes copies b into guest memory allocated with ac_alloc.
func (w *WasmIsolate) putBytes(ctx context.Context, b []byte) (uint32, error) {
	res, err := w.callIn(ctx, "ac_alloc", uint64(len(b)))
	if err != nil {
		return 0, err
	}
	p := uint32(res[0])
	if p == 0 && len(b) > 0 {
		return 0, fmt.Errorf("%w: ac_alloc(%d) failed", ErrMemoryExceeded, len(b))
	}
	if !w.mod.Memory().Write(p, b) {
		return 0, fmt.Errorf("%w: ac_alloc returned out-of-range %#x", ErrCrashed, p)
	}
	return p, nil
}

// Close releases the instance.
func (w *WasmIsolate) Close(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dead != nil {
		return nil
	}
	w.dead = errors.New("closed")
	return w.mod.Close(ctx)
}

// Err returns nil while the isolate is usable, else why it is not.
func (w *WasmIsolate) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dead
}

// MemoryBytes is the current size of the module's linear memory.
func (w *WasmIsolate) MemoryBytes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dead != nil {
		return 0
	}
	return int(w.mod.Memory().Size())
}

// mutableGlobals lists the module's exported mutable globals, sorted.
func (w *WasmIsolate) mutableGlobals() []string {
	var names []string
	for _, name := range w.cm.globals {
		if _, ok := w.mod.ExportedGlobal(name).(api.MutableGlobal); ok {
			names = append(names, name)
		}
	}
	return names
}

// exportedGlobalNames lists the global exports of wasm binary b, sorted
// (nil if b does not parse; compilation reports that).
func exportedGlobalNames(b []byte) []string {
	if len(b) < 8 {
		return nil
	}
	r := &wasmReader{b: b, p: 8}
	var names []string
	for r.p < len(r.b) && r.err == nil {
		id := r.byte()
		size := int(r.u32())
		if r.err != nil || r.p+size > len(r.b) {
			return nil
		}
		if id != 7 {
			r.p += size
			continue
		}
		er := &wasmReader{b: r.b[r.p : r.p+size]}
		n := er.u32()
		for i := uint32(0); i < n && er.err == nil; i++ {
			l := int(er.u32())
			start := er.p
			er.skip(l)
			if er.err != nil {
				return nil
			}
			name := string(er.b[start:er.p])
			if kind := er.byte(); kind == 0x03 {
				names = append(names, name)
			}
			er.u32()
		}
		break
	}
	sort.Strings(names)
	return names
}
