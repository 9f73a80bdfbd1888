package isolate

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"time"

	"github.com/tetratelabs/wazero/api"
)

// Host imports of the raw wasm ABI (module "agentcloud", see ABI.md). Each
// returns an i32 status: 0 ok, 1 not found, negative error.

const (
	abiOK       = 0
	abiNotFound = 1
	abiErr      = -1 // the host failed (state backend, egress denied...)
	abiBadArgs  = -2 // pointers out of range or malformed input
)

const i64 = api.ValueTypeI64

// wasmRuntime is the wazero runtime raw wasm agents run in, made on first
// use with WASI and the "agentcloud" host module. Caller holds r.wasmMu.
//
// compileWasm adds an import of wasmYield to every agent module for its
// loop checks to call into Go (instrument_import.go): Go cannot stop a
// goroutine inside compiled code, and without those calls a module's
// endless loop would hold every GC's stop-the-world, and the whole process,
// for good. So, as for the engine, the runtime does not close modules when
// their call's context ends (WithCloseOnContextDone), which would leave
// compiled code for Go at every loop header.
func (r *Runtime) wasmRuntime(ctx context.Context) (wazero.Runtime, error) {
	if r.ar != nil {
		return r.ar, nil
	}
	rc := wazero.NewRuntimeConfigCompiler()
	if r.cache != nil {
		rc = rc.WithCompilationCache(r.cache)
	}
	ar := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, ar); err != nil {
		_ = ar.Close(ctx)
		return nil, fmt.Errorf("isolate: instantiate wasi for wasm agents: %w", err)
	}
	b := ar.NewHostModuleBuilder(wasmHostModule)
	fn := func(name string, f api.GoModuleFunc, params ...api.ValueType) {
		b.NewFunctionBuilder().WithGoModuleFunction(f, params, []api.ValueType{i32}).Export(name)
	}
	fn("state_get", abiStateGet, i32, i32, i32, i32)
	fn("state_put", abiStatePut, i32, i32, i32, i32)
	fn("state_delete", abiStateDelete, i32, i32)
	fn("state_list", abiStateList, i32, i32, i32, i32, i32)
	fn("alarm_set", abiAlarmSet, i64)
	fn("alarm_get", abiAlarmGet, i32)
	fn("alarm_delete", abiAlarmDelete)
	fn("fetch", abiFetch, i32, i32, i32, i32)
	fn("log", abiLog, i32, i32, i32)
	fn(wasmYield.name, abiYield)
	if _, err := b.Instantiate(ctx); err != nil {
		_ = ar.Close(ctx)
		return nil, fmt.Errorf("isolate: instantiate %s host module: %w", wasmHostModule, err)
	}
	r.ar = ar
	return ar, nil
}

// wasmYield is the function compileWasm imports into agent modules for
// their loop checks to call (the call into Go is the point, see
// yieldEvery; a Yielder host hears of it). Its name is reserved in ABI.md.
var wasmYield = importRef{wasmHostModule, "__ac_yield"}

// abiYield is wasmYield: a Yielder host hears of it (see Yielder); its
// result is dropped (the stop global decides).
func abiYield(ctx context.Context, _ api.Module, s []uint64) {
	s[0] = 0
	if c, _ := ctx.Value(wasmCallKey{}).(*wasmCall); c != nil {
		if y, ok := c.host.(Yielder); ok {
			y.Yield()
		}
	}
}

func currentWasmCall(ctx context.Context) *wasmCall {
	c, _ := ctx.Value(wasmCallKey{}).(*wasmCall)
	if c == nil {
		panic("isolate: agentcloud host call outside a wasm isolate call")
	}
	return c
}

func setStatus(s []uint64, st int32) { s[0] = uint64(uint32(st)) }

// guestBytes returns a view of n bytes at ptr, refusing by length (before
// anything is copied) more than the runtime's MaxBodyBytes; ok is false
// when out of range or too long.
func (c *wasmCall) guestBytes(m api.Module, ptr, n uint64) ([]byte, bool) {
	size := uint32(n) // an i32 parameter: the stack slot's upper half is not part of it
	if uint64(size) > uint64(c.w.rt.cfg.MaxBodyBytes) {
		c.host.Log("error", fmt.Sprintf("agentcloud host call: an argument is %v bytes", &SizeError{Size: int64(size), Limit: int64(c.w.rt.cfg.MaxBodyBytes)}))
		return nil, false
	}
	return m.Memory().Read(uint32(ptr), size)
}

// guestString copies n bytes at ptr (see guestBytes).
func (c *wasmCall) guestString(m api.Module, ptr, n uint64) (string, bool) {
	b, ok := c.guestBytes(m, ptr, n)
	return string(b), ok
}

// reply places b in guest memory and writes its pointer and length to the
// i32 slots at outPtr and outLen. A reply over MaxBodyBytes is an error.
func (c *wasmCall) reply(ctx context.Context, m api.Module, b []byte, outPtr, outLen uint64) int32 {
	if len(b) > c.w.rt.cfg.MaxBodyBytes {
		return c.logErr("reply", &SizeError{Size: int64(len(b)), Limit: int64(c.w.rt.cfg.MaxBodyBytes)})
	}
	p, err := c.w.putBytes(ctx, b)
	if err != nil {
		panic(err) // fatal: unwinds the guest
	}
	if !m.Memory().WriteUint32Le(uint32(outPtr), p) || !m.Memory().WriteUint32Le(uint32(outLen), uint32(len(b))) {
		return abiBadArgs
	}
	return abiOK
}

func (c *wasmCall) logErr(op string, err error) int32 {
	c.host.Log("error", fmt.Sprintf("agentcloud.%s: %v", op, err))
	return abiErr
}

func abiStateGet(ctx context.Context, m api.Module, s []uint64) {
	c := currentWasmCall(ctx)
	key, ok := c.guestString(m, s[0], s[1])
	if !ok {
		setStatus(s, abiBadArgs)
		return
	}
	val, found, err := c.host.StateGet(key)
	switch {
	case err != nil:
		setStatus(s, c.logErr("state_get", err))
	case !found:
		setStatus(s, abiNotFound)
	default:
		setStatus(s, c.reply(ctx, m, val, s[2], s[3]))
	}
}

func abiStatePut(ctx context.Context, m api.Module, s []uint64) {
	c := currentWasmCall(ctx)
	key, ok1 := c.guestString(m, s[0], s[1])
	val, ok2 := c.guestString(m, s[2], s[3])
	if !ok1 || !ok2 || !json.Valid([]byte(val)) {
		setStatus(s, abiBadArgs)
		return
	}
	if err := c.host.StatePut(key, []byte(val)); err != nil {
		setStatus(s, c.logErr("state_put", err))
		return
	}
	setStatus(s, abiOK)
}

func abiStateDelete(ctx context.Context, m api.Module, s []uint64) {
	c := currentWasmCall(ctx)
	key, ok := c.guestString(m, s[0], s[1])
	if !ok {
		setStatus(s, abiBadArgs)
		return
	}
	if err := c.host.StateDelete(key); err != nil {
		setStatus(s, c.logErr("state_delete", err))
		return
	}
	setStatus(s, abiOK)
}

func abiStateList(ctx context.Context, m api.Module, s []uint64) {
	c := currentWasmCall(ctx)
	prefix, ok := c.guestString(m, s[0], s[1])
	if !ok {
		setStatus(s, abiBadArgs)
		return
	}
	kvs, err := c.host.StateList(prefix, int(int32(s[2])))
	if err != nil {
		setStatus(s, c.logErr("state_list", err))
		return
	}
	setStatus(s, c.reply(ctx, m, []byte(encodeStateList(kvs)), s[3], s[4]))
}

func abiAlarmSet(ctx context.Context, m api.Module, s []uint64) {
	c := currentWasmCall(ctx)
	if err := c.host.SetAlarm(time.UnixMilli(int64(s[0]))); err != nil {
		setStatus(s, c.logErr("alarm_set", err))
		return
	}
	setStatus(s, abiOK)
}

func abiAlarmGet(ctx context.Context, m api.Module, s []uint64) {
	c := currentWasmCall(ctx)
	at, ok, err := c.host.GetAlarm()
	switch {
	case err != nil:
		setStatus(s, c.logErr("alarm_get", err))
	case !ok:
		setStatus(s, abiNotFound)
	case !m.Memory().WriteUint64Le(uint32(s[0]), uint64(at.UnixMilli())):
		setStatus(s, abiBadArgs)
	default:
		setStatus(s, abiOK)
	}
}

func abiAlarmDelete(ctx context.Context, m api.Module, s []uint64) {
	c := currentWasmCall(ctx)
	if err := c.host.DeleteAlarm(); err != nil {
		setStatus(s, c.logErr("alarm_delete", err))
		return
	}
	setStatus(s, abiOK)
}

func abiFetch(ctx context.Context, m api.Module, s []uint64) {
	c := currentWasmCall(ctx)
	in, ok := c.guestBytes(m, s[0], s[1])
	if !ok {
		setStatus(s, abiBadArgs)
		return
	}
	var wr wireRequest
	body, err := decodeWire(in, &wr)
	if err != nil {
		setStatus(s, abiBadArgs)
		return
	}
	resp, err := c.host.Fetch(c.ctx, Request{Method: wr.Method, URL: wr.URL, Headers: wr.Headers, Body: append([]byte(nil), body...)})
	if err != nil {
		if c.ctx.Err() != nil {
			panic(fmt.Errorf("%w: %w", ErrTimeout, c.ctx.Err()))
		}
		setStatus(s, c.logErr("fetch", err))
		return
	}
	out := encodeWire(wireResponse{Status: resp.Status, StatusText: resp.StatusText, Headers: resp.Headers}, resp.Body)
	setStatus(s, c.reply(ctx, m, out, s[2], s[3]))
}

var logLevels = [...]string{"debug", "info", "log", "warn", "error"}

func abiLog(ctx context.Context, m api.Module, s []uint64) {
	c := currentWasmCall(ctx)
	msg, ok := c.guestString(m, s[1], s[2])
	if !ok {
		setStatus(s, abiBadArgs)
		return
	}
	level := "log"
	if l := int32(s[0]); l >= 0 && int(l) < len(logLevels) {
		level = logLevels[l]
	}
	c.host.Log(level, msg)
	setStatus(s, abiOK)
}

// Snapshots of raw wasm isolates (before zstd):
//
//	"ACWS" | version 1 | 3 reserved | u32 memory size | module sha256 |
//	u32 n | n × (u16 name length | name | u64 value) | byte runs vs zeros
//
// The globals are __stack_pointer and every other exported mutable
// global; unexported mutable globals are not captured (see ABI.md).
const (
	wasmSnapMagic   = "ACWS"
	wasmSnapVersion = 1
)

// Snapshot captures the instance's memory and exported mutable globals.
func (w *WasmIsolate) Snapshot() ([]byte, error) {
	if err := w.begin(); err != nil {
		return nil, err
	}
	defer w.mu.Unlock()
	mem, ok := w.mod.Memory().Read(0, w.mod.Memory().Size())
	if !ok {
		return nil, fmt.Errorf("%w: memory unreadable", ErrCrashed)
	}
	out := append([]byte(wasmSnapMagic), wasmSnapVersion, 0, 0, 0)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(mem)))
	out = append(out, w.cm.hash[:]...)
	names := w.mutableGlobals()
	out = binary.LittleEndian.AppendUint32(out, uint32(len(names)))
	for _, n := range names {
		out = binary.LittleEndian.AppendUint16(out, uint16(len(n)))
		out = append(out, n...)
		out = binary.LittleEndian.AppendUint64(out, w.mod.ExportedGlobal(n).Get())
	}
	out = diffImage(out, mem, nil, 0)
	return w.rt.enc.EncodeAll(out, nil), nil
}

// RestoreWasm makes a WasmIsolate from a WasmIsolate.Snapshot of the same
// module; _initialize is not run again.
func (r *Runtime) RestoreWasm(ctx context.Context, spec WasmSpec, snapshot []byte) (*WasmIsolate, error) {
	raw, err := r.dec.DecodeAll(snapshot, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	if len(raw) < 48 || string(raw[:4]) != wasmSnapMagic || raw[4] != wasmSnapVersion {
		return nil, fmt.Errorf("%w: not a wasm isolate snapshot", ErrBadSnapshot)
	}
	size := int(binary.LittleEndian.Uint32(raw[8:]))
	w, err := r.instantiateWasm(ctx, spec)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*WasmIsolate, error) {
		_ = w.mod.Close(ctx)
		return nil, err
	}
	if string(raw[12:44]) != string(w.cm.hash[:]) {
		return fail(fmt.Errorf("%w: snapshot of a different wasm module", ErrBadSnapshot))
	}
	if size%wasmPage != 0 || uint64(size) > uint64(spec.MemoryMiB)<<20 && spec.MemoryMiB != 0 {
		return fail(fmt.Errorf("%w: bad memory size %d", ErrBadSnapshot, size))
	}
	n := binary.LittleEndian.Uint32(raw[44:])
	p := 48
	for range n {
		if p+2 > len(raw) {
			return fail(fmt.Errorf("%w: truncated globals", ErrBadSnapshot))
		}
		l := int(binary.LittleEndian.Uint16(raw[p:]))
		if p+2+l+8 > len(raw) {
			return fail(fmt.Errorf("%w: truncated globals", ErrBadSnapshot))
		}
		name := string(raw[p+2 : p+2+l])
		g, ok := w.mod.ExportedGlobal(name).(api.MutableGlobal)
		if !ok {
			return fail(fmt.Errorf("%w: module has no mutable global %q", ErrBadSnapshot, name))
		}
		g.Set(binary.LittleEndian.Uint64(raw[p+2+l:]))
		p += 2 + l + 8
	}
	patches, err := parseRuns(raw[p:], size)
	if err != nil {
		return fail(err)
	}
	mem := w.mod.Memory()
	if cur := mem.Size(); uint32(size) > cur {
		if _, ok := mem.Grow((uint32(size) - cur) / wasmPage); !ok {
			return fail(fmt.Errorf("%w: grow to %d bytes", ErrMemoryExceeded, size))
		}
	}
	buf, _ := mem.Read(0, mem.Size())
	if err := w.lin.zero(0, len(buf)); err != nil {
		return fail(err)
	}
	for _, pt := range patches {
		copy(buf[pt.off:], pt.data)
	}
	return w, nil
}
