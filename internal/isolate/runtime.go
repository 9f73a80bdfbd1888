package isolate

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/agentcloud/agentcloud/internal/isolate/quickjs"
)

// Config configures a Runtime. The zero value works: no on-disk cache, a
// discarding logger and the default limits.
type Config struct {
	// CacheDir holds wazero's compiled-code cache; empty keeps it in memory.
	// With a warm cache NewRuntime skips most of the ~0.5 s compile.
	CacheDir string
	// Logger receives runtime-level events; nil discards.
	Logger *slog.Logger
	// DefaultMemoryMiB applies when Spec.MemoryMiB is 0 (default 64).
	DefaultMemoryMiB int
	// MaxMemoryMiB caps every Spec.MemoryMiB (default DefaultMaxMemoryMiB).
	MaxMemoryMiB int
	// MaxBodyBytes caps each message crossing the isolate boundary: a
	// request body going in, the response coming out, and every host-call
	// argument and result (default DefaultMaxBodyBytes). Outgoing messages
	// are refused by their length, before the host copies them.
	MaxBodyBytes int
	// CooperativeTimeouts enforces call deadlines only through QuickJS's
	// interrupt handler (polled every ~10k bytecodes). A long native
	// operation inside QuickJS (e.g. `new Array(1e9).join("")`) can then
	// overrun its deadline by seconds. Default false: the module is also
	// rewritten to test a stop flag at every loop header (see
	// instrument.go), which costs a few percent rather than the ~3x of
	// wazero's WithCloseOnContextDone, and the first mechanism to fire wins.
	CooperativeTimeouts bool
	// Metrics registers the runtime's collectors (metrics.go); nil: none.
	Metrics prometheus.Registerer
	// Prefill is how many instances of a template in use the runtime keeps
	// ready in the background (prefill.go); 0: none, instances are pooled
	// only when sessions close.
	Prefill int
}

// Defaults.
const (
	defaultMemoryMiB = 64
	defaultStackKiB  = 256
	maxStackKiB      = 512 // half of the binary's 1 MiB C stack
)

// Memory limits an isolate can run with, in MiB (the manifest's
// limits.memory_mib in internal/bundle has the same range). QuickJS starts
// with 18 wasm pages (1.1 MiB) and its heap limit is the memory limit less
// 2 MiB for the C stack and static data, so MinMemoryMiB is the least that
// leaves it a heap; a raw wasm module needs at least the initial memory it
// declares. DefaultMaxMemoryMiB is Config.MaxMemoryMiB's default: wasm32
// could address 4 GiB, but one isolate reserving more than 1 GiB of a node
// is not a session.
const (
	MinMemoryMiB        = 4
	MinWasmMemoryMiB    = 1
	DefaultMaxMemoryMiB = 1024
)

// DefaultMaxBodyBytes is Config.MaxBodyBytes's default.
const DefaultMaxBodyBytes = 32 << 20

// Runtime owns one wazero runtime with QuickJS compiled into it. Create one
// per process; it is safe for concurrent use by many isolates.
type Runtime struct {
	cfg   Config
	log   *slog.Logger
	wr    wazero.Runtime
	cache wazero.CompilationCache
	qjs   wazero.CompiledModule
	code  []byte     // qjs's binary
	bare  bareModule // qjs without data segments, for restores (bare.go)
	// instPoolable: instances of the module restores use may be pooled
	// whole (instpool.go, poolableModule).
	instPoolable bool
	// qjsExports are qjs's exported functions.
	qjsExports map[string]api.FunctionDefinition
	wasmHash   [32]byte
	// preempt: isolates have the stop global of instrument.go.
	preempt bool
	// dispatch: isolates have the export dispatcher of dispatch.go.
	dispatch bool
	enc      *zstd.Encoder // session snapshots
	tplEnc   *zstd.Encoder // template images
	dec      *zstd.Decoder

	// Raw wasm agents (wasm.go): compiled modules by sha256, and their
	// own wazero runtime (made with the "agentcloud" host module on first
	// use; see wasmRuntime). Guarded by wasmMu.
	wasmMu   sync.Mutex
	wasmMods map[[32]byte]*wasmModule
	ar       wazero.Runtime
	vr       wazero.Runtime // an interpreter that validates modules as uploaded (validateWasm)

	met *metrics // nil: no metrics

	fill prefiller // background fillers of the instance pool (prefill.go)
}

// NewRuntime compiles QuickJS (or loads it from cfg.CacheDir) and registers
// the host modules isolates import.
func NewRuntime(ctx context.Context, cfg Config) (*Runtime, error) {
	if cfg.DefaultMemoryMiB <= 0 {
		cfg.DefaultMemoryMiB = defaultMemoryMiB
	}
	if cfg.MaxMemoryMiB <= 0 {
		cfg.MaxMemoryMiB = DefaultMaxMemoryMiB
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	r := &Runtime{cfg: cfg, log: cfg.Logger, wasmHash: sha256.Sum256(engineWasm)}
	var err error
	if r.met, err = newMetrics(cfg.Metrics); err != nil {
		return nil, fmt.Errorf("isolate metrics: %w", err)
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	code, closeOnDone := r.engineCode()
	rc := wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(closeOnDone)
	if cfg.CacheDir != "" {
		if err := os.MkdirAll(cfg.CacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("isolate: cache dir: %w", err)
		}
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("isolate: compilation cache %s: %w", cfg.CacheDir, err)
		}
		r.cache = c
		rc = rc.WithCompilationCache(c)
	}
	r.wr = wazero.NewRuntimeWithConfig(ctx, rc)
	ok := false
	defer func() {
		if !ok {
			_ = r.Close(ctx)
		}
	}()
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r.wr); err != nil {
		return nil, fmt.Errorf("isolate: instantiate wasi: %w", err)
	}
	if err := r.instantiateEnv(ctx); err != nil {
		return nil, err
	}
	m, err := r.wr.CompileModule(ctx, code)
	if err != nil {
		return nil, fmt.Errorf("isolate: compile quickjs: %w", err)
	}
	r.qjs, r.code = m, code
	r.instPoolable = poolableModule(code)
	r.qjsExports = m.ExportedFunctions()
	// Session snapshots are encoded on every hibernation, so on the
	// session-creation path: the default level is ~35× faster than the best
	// one for ~8% more bytes on a typical delta (BenchmarkSnapshotLevel),
	// and one encoder per CPU lets hibernations run side by side. The
	// fastest level costs ~2% more bytes than the default, but its hash
	// table is a quarter of the size: between two hibernations the table
	// has left the CPU caches, and the default level's misses made zstd
	// ~8% of a session creation's CPU (380 µs → 140 µs per snapshot in
	// BenchmarkCreateSession, docs/PERFORMANCE.md).
	if r.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0))); err != nil {
		return nil, fmt.Errorf("isolate: zstd: %w", err)
	}
	// Templates are encoded on the deploy path, once per version: a level
	// that is ~8× faster for ~6% more bytes (BenchmarkTemplateMarshal).
	if r.tplEnc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1)); err != nil {
		return nil, fmt.Errorf("isolate: zstd: %w", err)
	}
	if r.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0)); err != nil {
		return nil, fmt.Errorf("isolate: zstd: %w", err)
	}
	ok = true
	return r, nil
}

// MaxBodyBytes is the most bytes one message may carry across an isolate's
// boundary (Config.MaxBodyBytes).
func (r *Runtime) MaxBodyBytes() int { return r.cfg.MaxBodyBytes }

// Close releases the wazero runtime and every isolate still open on it.
func (r *Runtime) Close(ctx context.Context) error {
	r.fill.closeFill()
	// wazero's close holds its store's lock while it closes each module; a
	// module whose Free pools its reservation could then evict one of this
	// runtime's pooled instances and close it under that lock (a deadlock).
	// They leave the pool first, and poolInstance takes no more (closed).
	poolDropRuntime(r)
	r.bare.wg.Wait()
	var err error
	if r.ar != nil {
		err = r.ar.Close(ctx)
	}
	if r.vr != nil {
		if verr := r.vr.Close(ctx); err == nil {
			err = verr
		}
	}
	if r.wr != nil {
		if werr := r.wr.Close(ctx); err == nil {
			err = werr
		}
	}
	if r.cache != nil {
		if cerr := r.cache.Close(ctx); err == nil {
			err = cerr
		}
	}
	if r.tplEnc != nil {
		_ = r.tplEnc.Close()
	}
	if r.enc != nil {
		_ = r.enc.Close()
	}
	if r.dec != nil {
		r.dec.Close()
	}
	return err
}

// instantiateEnv registers the "env" module QuickJS imports.
func (r *Runtime) instantiateEnv(ctx context.Context) error {
	b := r.wr.NewHostModuleBuilder("env")
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostCall),
		[]api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i32}).Export("host_call")
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostInterrupt), nil, []api.ValueType{i32}).Export("host_interrupt")
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostPromiseRejection),
		[]api.ValueType{i32, i32, i32}, nil).Export("host_promise_rejection")
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostModuleNormalize),
		[]api.ValueType{i32, i32}, []api.ValueType{i32}).Export("host_module_normalize")
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostModuleLoad),
		[]api.ValueType{i32, i32}, []api.ValueType{i32}).Export("host_module_load")
	b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, s []uint64) {
		s[0] = 0 // isolates run in UTC
	}), []api.ValueType{i32, i32}, []api.ValueType{i32}).Export("host_get_timezone_offset")
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("isolate: instantiate env: %w", err)
	}
	return nil
}

const i32 = api.ValueTypeI32

// engineCode rewrites engineWasm for isolates (see instrument.go and
// dispatch.go), falling back to less when a rewrite fails. closeOnDone
// reports that wazero must enforce deadlines itself.
func (r *Runtime) engineCode() (code []byte, closeOnDone bool) {
	o := rewriteOpts{stopLoops: !r.cfg.CooperativeTimeouts, dispatch: dispatchExports, yield: &engineYield}
	if c, err := rewriteWasm(engineWasm, o); err == nil {
		r.preempt, r.dispatch = o.stopLoops, true
		return c, false
	} else {
		r.log.Warn("isolate: cannot add export dispatcher", "err", err)
	}
	if o.stopLoops {
		if c, err := rewriteWasm(engineWasm, rewriteOpts{stopLoops: true, yield: &engineYield}); err == nil {
			r.preempt = true
			return c, false
		} else {
			r.log.Warn("isolate: wasm not instrumented; using WithCloseOnContextDone", "err", err)
		}
	}
	return engineWasm, !r.cfg.CooperativeTimeouts
}

// engineWasm is the QuickJS build isolates run (a variable for tests).
var engineWasm = quickjs.Wasm

// CacheDir is where compiled WebAssembly is kept: configured if set, else
// the user cache dir (compiled code is keyed by module hash and runtime
// version, so every data dir on the machine shares it and a new node
// starts without compiling QuickJS), else <dataDir>/wasm-cache.
func CacheDir(configured, dataDir string) string {
	if configured != "" {
		return configured
	}
	if dir, err := os.UserCacheDir(); err == nil {
		dir = filepath.Join(dir, "agentcloud", "wasm")
		if err := os.MkdirAll(dir, 0o755); err == nil {
			return dir
		}
	}
	return filepath.Join(dataDir, "wasm-cache")
}
