package isolate

import (
	"bytes"
	"errors"
	"fmt"
)

// Preemption.
//
// wazero can stop a running guest when its context is done
// (WithCloseOnContextDone), but it does so by calling a trampoline at every
// loop header, which makes QuickJS's interpreter loop about three times
// slower. Instead, isolates run a rewritten copy of the module: a new
// mutable i32 global, exported as stopGlobalName, is tested at the top of
// every loop body (with a yield, when the yield countdown reaches zero:
// see yieldEvery), and a set global traps with `unreachable`. Setting it
// from a context.AfterFunc preempts JS and native loops alike (a tight
// `Array.prototype.join` over 1e8 holes, say) at the cost of one load and a
// predictable branch per iteration. QuickJS's own interrupt handler still
// runs too and usually fires first in JS code, with a cleaner error.

const stopGlobalName = "__ac_stop"

// Yielding. Go cannot preempt a goroutine while it runs wazero-compiled
// code (the preemption signal finds no Go function at the interrupted pc),
// so a guest loop that never leaves the guest holds its P: a stop-the-world
// (every GC cycle starts with one) then waits for the loop to end while
// every other goroutine, the one that would raise the stop global among
// them, is already stopped. A native loop of QuickJS's (Array.prototype.join
// over 2^32 holes, say) froze the whole process that way. So the loop
// check counts down a second global (the tick, exported as tickGlobalName)
// and, every yieldEvery loop entries, calls an imported host function: a
// call into Go, where the goroutine can be stopped and the world can run.
// QuickJS's own interrupt poll (env.host_interrupt: no arguments, an i32
// result, no side effect) serves; its answer is dropped (the stop global
// decides).
//
// With a yield, the stop global is read only when the tick reaches zero:
// a loop entry costs one load, one store and one branch. The preempter
// raises stop and then sets the tick to 1, so the next loop entry traps; a
// guest store racing with that write can undo it, which delays the trap by
// at most yieldEvery loop entries (see vm.go, preempter.fire).
const yieldEvery = 1 << 14

// tickGlobalName is the export of the yield countdown.
const tickGlobalName = "__ac_tick"

// importRef names an imported function.
type importRef struct{ module, name string }

// engineYield is the QuickJS build's import the loop checks call.
var engineYield = importRef{"env", "host_interrupt"}

var errInstrument = errors.New("isolate: cannot instrument wasm")

// rewriteOpts selects the changes rewriteWasm makes.
type rewriteOpts struct {
	// stopLoops adds the stop global (exported as stopGlobalName) and a
	// check of it at every loop header.
	stopLoops bool
	// yield, with stopLoops, is an imported function of type () -> i32
	// the loop checks call every yieldEvery loop entries (see yieldEvery);
	// rewriteWasm fails when the module does not import it.
	yield *importRef
	// addYield, with stopLoops and instead of yield, adds an import of
	// this () -> i32 function for the loop checks to call (see
	// instrument_import.go); the host must provide it.
	addYield *importRef
	// dispatch lists exports to make reachable through one added export,
	// dispatchName (see addDispatch).
	dispatch []string
	// stripData empties every data segment, for instances whose memory is
	// replaced by a snapshot right after instantiation.
	stripData bool
}

type wasmSection struct {
	id   byte
	body []byte
}

// rewriteWasm returns a rewritten copy of the wasm binary src. It
// understands the MVP instruction set plus sign-extension, non-trapping
// conversions, bulk memory, reference types and multi-value block types;
// anything else is an error and the caller falls back to the original.
func rewriteWasm(src []byte, o rewriteOpts) ([]byte, error) {
	ws, err := parseSections(src)
	if err != nil {
		return nil, err
	}
	find, ensure := ws.find, ws.ensure
	var importedGlobals, importedFuncs uint32
	yieldFunc := int64(-1)
	if s := find(2); s != nil {
		var err error
		if importedFuncs, importedGlobals, err = countImports(s.body); err != nil {
			return nil, err
		}
		if o.yield != nil {
			if yieldFunc, err = findYield(s.body, find(1), *o.yield); err != nil {
				return nil, err
			}
		}
	}
	shiftFrom := int64(-1)
	if o.stopLoops && o.addYield != nil {
		ensure(1)
		ensure(2)
		var err error
		if yieldFunc, err = addYieldImport(find, importedFuncs, *o.addYield); err != nil {
			return nil, err
		}
		shiftFrom = yieldFunc
		importedFuncs++
		kept := ws.secs[:0]
		for _, s := range ws.secs {
			if s.id == 0 {
				var ok bool
				if s.body, ok = shiftNames(s.body, uint32(shiftFrom)); !ok {
					continue
				}
			}
			kept = append(kept, s)
		}
		ws.secs = kept
	}
	if o.stopLoops {
		if o.yield != nil && yieldFunc < 0 {
			return nil, fmt.Errorf("%w: the module does not import %s.%s", errInstrument, o.yield.module, o.yield.name)
		}
		ensure(6)
		ensure(7)
		if err := addStopLoops(find(6), find(7), find(10), importedGlobals, yieldFunc, shiftFrom); err != nil {
			return nil, err
		}
	}
	if len(o.dispatch) > 0 {
		for _, id := range []byte{1, 3, 7, 10} {
			ensure(id)
		}
		if err := addDispatch(find, importedFuncs, o.dispatch); err != nil {
			return nil, err
		}
	}
	if o.stripData {
		if d := find(11); d != nil {
			body, err := stripDataSegments(d.body)
			if err != nil {
				return nil, err
			}
			d.body = body
		}
	}
	out := append([]byte(nil), src[:8]...)
	for _, s := range ws.secs {
		out = appendSection(out, s.id, s.body)
	}
	return out, nil
}

// wasmSections is a wasm binary's sections in order.
type wasmSections struct{ secs []wasmSection }

// parseSections splits the wasm v1 binary src into its sections.
func parseSections(src []byte) (*wasmSections, error) {
	if len(src) < 8 || !bytes.Equal(src[:8], []byte("\x00asm\x01\x00\x00\x00")) {
		return nil, fmt.Errorf("%w: not a wasm v1 binary", errInstrument)
	}
	ws := &wasmSections{}
	r := &wasmReader{b: src, p: 8}
	for r.p < len(r.b) {
		id := r.byte()
		size := r.u32()
		if r.err != nil || r.p+int(size) > len(r.b) {
			return nil, fmt.Errorf("%w: truncated section", errInstrument)
		}
		ws.secs = append(ws.secs, wasmSection{id, r.b[r.p : r.p+int(size)]})
		r.p += int(size)
	}
	return ws, nil
}

// find returns section id, or nil.
func (ws *wasmSections) find(id byte) *wasmSection {
	for i := range ws.secs {
		if ws.secs[i].id == id {
			return &ws.secs[i]
		}
	}
	return nil
}

// ensure returns section id, inserting an empty one (count 0) in order.
// Inserting moves sections: pointers from earlier calls are stale, so
// callers ensure every section they need before holding any.
func (ws *wasmSections) ensure(id byte) *wasmSection {
	if s := ws.find(id); s != nil {
		return s
	}
	at := len(ws.secs)
	for i, s := range ws.secs {
		if s.id != 0 && sectionOrder(s.id) > sectionOrder(id) {
			at = i
			break
		}
	}
	ws.secs = append(ws.secs[:at], append([]wasmSection{{id, []byte{0}}}, ws.secs[at:]...)...)
	return &ws.secs[at]
}

// addStopLoops adds the stop global (and, with a yield function, its
// countdown) to the global section, exports them and puts the loop check
// at every loop header of the code section (nil: none).
func addStopLoops(globals, exports, code *wasmSection, importedGlobals uint32, yieldFunc, shiftFrom int64) error {
	n, rest, err := vecHead(globals.body)
	if err != nil {
		return err
	}
	stop := importedGlobals + n
	globals.body = appendGlobals(rest, n, yieldFunc >= 0)
	if n, rest, err = vecHead(exports.body); err != nil {
		return err
	}
	exports.body = appendExport(rest, n, stopGlobalName, 0x03, stop)
	if yieldFunc >= 0 {
		n, rest, _ = vecHead(exports.body)
		exports.body = appendExport(rest, n, tickGlobalName, 0x03, stop+1)
	}
	if code != nil {
		if code.body, err = instrumentCode(code.body, loopCheckFn(stop, yieldFunc), shiftFrom, nil); err != nil {
			return err
		}
	}
	return nil
}

// vecHead splits a vector section body into its count and entries.
func vecHead(body []byte) (uint32, []byte, error) {
	r := &wasmReader{b: body}
	n := r.u32()
	if r.err != nil {
		return 0, nil, fmt.Errorf("%w: bad section", errInstrument)
	}
	return n, body[r.p:], nil
}

// appendGlobals encodes a global section: the existing n entries followed by
// the stop global (mutable i32 = 0) and, with tick, the yield countdown
// (mutable i32 = yieldEvery) right after it.
func appendGlobals(entries []byte, n uint32, tick bool) []byte {
	add := uint32(1)
	if tick {
		add++
	}
	b := appendU32(nil, n+add)
	b = append(b, entries...)
	b = append(b, 0x7f, 0x01, 0x41, 0x00, 0x0b)
	if tick {
		b = append(b, 0x7f, 0x01, 0x41)
		b = appendS32(b, yieldEvery)
		b = append(b, 0x0b)
	}
	return b
}

// loopCheckFn makes the loop check (a variable for benchmarks that compare
// checks in one process).
var loopCheckFn = loopCheck

// loopCheck is the code put at every loop header. Without a yield function
// (yieldFunc < 0) it traps when the stop global is set. With one (its
// countdown global follows stop) it counts the tick down and, when it
// reaches zero, traps if stop is set, else resets the tick and calls the
// yield (see yieldEvery).
func loopCheck(stop uint32, yieldFunc int64) []byte {
	if yieldFunc < 0 {
		check := appendU32([]byte{0x23}, stop)       // global.get stop
		return append(check, 0x04, 0x40, 0x00, 0x0b) // if (empty) unreachable end
	}
	tick := stop + 1
	check := appendU32([]byte{0x23}, tick)        // global.get tick
	check = append(check, 0x41, 0x01, 0x6b, 0x24) // i32.const 1, i32.sub, global.set tick
	check = appendU32(check, tick)
	check = appendU32(append(check, 0x23), tick)  // global.get tick
	check = append(check, 0x45, 0x04, 0x40, 0x23) // i32.eqz, if (empty), global.get stop
	check = appendU32(check, stop)
	check = append(check, 0x04, 0x40, 0x00, 0x0b, 0x41) // if (empty) unreachable end, i32.const yieldEvery
	check = appendS32(check, yieldEvery)
	check = appendU32(append(check, 0x24), tick)              // global.set tick
	check = appendU32(append(check, 0x10), uint32(yieldFunc)) // call yield
	return append(check, 0x1a, 0x0b)                          // drop, end
}

// appendS32 appends x as a signed LEB128 (i32.const's immediate).
func appendS32(b []byte, x int32) []byte {
	for {
		c := byte(x & 0x7f)
		x >>= 7
		if (x == 0 && c&0x40 == 0) || (x == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// findYield is the function index of import ref in an import section, -1
// when it is not imported; an import of it whose type (types: the type
// section) is not () -> i32 is an error.
func findYield(imports []byte, types *wasmSection, ref importRef) (int64, error) {
	r := &wasmReader{b: imports}
	n := r.u32()
	var funcs int64
	for i := uint32(0); i < n && r.err == nil; i++ {
		mod := string(r.bytes(int(r.u32())))
		name := string(r.bytes(int(r.u32())))
		switch r.byte() {
		case 0x00:
			typ := r.u32()
			if mod == ref.module && name == ref.name {
				if types == nil || !typeIsNoneToI32(types.body, typ) {
					return -1, fmt.Errorf("%w: %s.%s is not () -> i32", errInstrument, mod, name)
				}
				return funcs, nil
			}
			funcs++
		case 0x01:
			r.byte()
			r.limits()
		case 0x02:
			r.limits()
		case 0x03:
			r.byte()
			r.byte()
		case 0x04:
			r.byte()
			r.u32()
		default:
			return -1, fmt.Errorf("%w: unknown import kind", errInstrument)
		}
	}
	if r.err != nil {
		return -1, fmt.Errorf("%w: bad import section: %w", errInstrument, r.err)
	}
	return -1, nil
}

// typeIsNoneToI32 reports whether entry idx of a type section is the
// function type () -> i32.
func typeIsNoneToI32(body []byte, idx uint32) bool {
	r := &wasmReader{b: body}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		if r.byte() != 0x60 {
			return false
		}
		params := r.bytes(int(r.u32()))
		results := r.bytes(int(r.u32()))
		if i == idx {
			return r.err == nil && len(params) == 0 && len(results) == 1 && results[0] == 0x7f
		}
	}
	return false
}

func appendExport(entries []byte, n uint32, name string, kind byte, idx uint32) []byte {
	b := appendU32(nil, n+1)
	b = append(b, entries...)
	b = appendU32(b, uint32(len(name)))
	b = append(b, name...)
	b = append(b, kind)
	return appendU32(b, idx)
}

func appendSection(out []byte, id byte, body []byte) []byte {
	out = append(out, id)
	out = appendU32(out, uint32(len(body)))
	return append(out, body...)
}

func appendU32(b []byte, x uint32) []byte {
	for {
		c := byte(x & 0x7f)
		x >>= 7
		if x != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func countImports(body []byte) (funcs, globals uint32, err error) {
	r := &wasmReader{b: body}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.skip(int(r.u32())) // module
		r.skip(int(r.u32())) // name
		switch r.byte() {
		case 0x00: // func
			r.u32()
			funcs++
		case 0x01: // table: reftype, limits
			r.byte()
			r.limits()
		case 0x02: // memory
			r.limits()
		case 0x03: // global: valtype, mut
			r.byte()
			r.byte()
			globals++
		case 0x04: // tag
			r.byte()
			r.u32()
		default:
			return 0, 0, fmt.Errorf("%w: unknown import kind", errInstrument)
		}
	}
	if r.err != nil {
		return 0, 0, fmt.Errorf("%w: bad import section: %w", errInstrument, r.err)
	}
	return funcs, globals, nil
}

// instrumentCode rewrites every function body of a code section, putting
// check at every loop header and, with shiftFrom ≥ 0, moving the function
// indices from shiftFrom up by one (see addYieldImport).
// instrumentCode rewrites a code section (see instrumentFunc); if
// tableWrites is not nil, it is set when any function writes a table.
func instrumentCode(body, check []byte, shiftFrom int64, tableWrites *bool) ([]byte, error) {
	r := &wasmReader{b: body}
	n := r.u32()
	out := appendU32(nil, n)
	var fn []byte
	for i := uint32(0); i < n; i++ {
		size := int(r.u32())
		if r.err != nil || r.p+size > len(r.b) {
			return nil, fmt.Errorf("%w: truncated function %d", errInstrument, i)
		}
		f, err := instrumentFunc(fn[:0], r.b[r.p:r.p+size], check, shiftFrom, tableWrites)
		if err != nil {
			return nil, fmt.Errorf("%w (function %d)", err, i)
		}
		fn = f
		r.p += size
		out = appendU32(out, uint32(len(fn)))
		out = append(out, fn...)
	}
	if r.err != nil || r.p != len(r.b) {
		return nil, fmt.Errorf("%w: bad code section", errInstrument)
	}
	return out, nil
}

// instrumentFunc puts check at the top of every loop of one function body
// and shifts function indexes from shiftFrom up by one (-1: none). It sets
// *tableWrites (if not nil) when the body writes a table (table.set,
// table.init, table.copy, table.grow, table.fill).
func instrumentFunc(out, body, check []byte, shiftFrom int64, tableWrites *bool) ([]byte, error) {
	r := &wasmReader{b: body}
	groups := r.u32()
	for i := uint32(0); i < groups; i++ {
		r.u32()
		r.byte()
	}
	out = append(out, body[:r.p]...)
	start := r.p
	for r.p < len(r.b) && r.err == nil {
		op := r.byte()
		switch {
		case op == 0x03: // loop
			r.blockType()
			out = append(out, body[start:r.p]...)
			out = append(out, check...)
			start = r.p
		case op == 0x02 || op == 0x04: // block, if
			r.blockType()
		case op <= 0x01, op == 0x05, op == 0x0b, op == 0x0f, op == 0x1a, op == 0x1b,
			op >= 0x45 && op <= 0xc4, op == 0xd1:
			// no immediates
		case op == 0x10 || op == 0xd2: // call, ref.func
			at := r.p
			if idx := r.u32(); shiftFrom >= 0 && int64(idx) >= shiftFrom && r.err == nil {
				out = append(out, body[start:at]...)
				out = appendU32(out, idx+1)
				start = r.p
			}
		case op == 0x0c, op == 0x0d, op >= 0x20 && op <= 0x26:
			if op == 0x26 && tableWrites != nil {
				*tableWrites = true
			}
			r.u32()
		case op == 0x0e: // br_table
			n := r.u32()
			for j := uint32(0); j <= n && r.err == nil; j++ {
				r.u32()
			}
		case op == 0x11: // call_indirect type table
			r.u32()
			r.u32()
		case op == 0x1c: // select t*
			r.skip(int(r.u32()))
		case op >= 0x28 && op <= 0x3e: // memarg
			if align := r.u32(); align&0x40 != 0 {
				r.u32() // memory index (multi-memory)
			}
			r.u32()
		case op == 0x3f, op == 0x40:
			r.u32()
		case op == 0x41:
			r.sleb()
		case op == 0x42:
			r.sleb()
		case op == 0x43:
			r.skip(4)
		case op == 0x44:
			r.skip(8)
		case op == 0xd0:
			r.byte()
		case op == 0xfc:
			sub := r.u32()
			if (sub == 12 || sub == 14 || sub == 15 || sub == 17) && tableWrites != nil {
				*tableWrites = true
			}
			switch {
			case sub <= 7:
			case sub == 8, sub == 10, sub == 12, sub == 14:
				r.u32()
				r.u32()
			case sub == 9, sub == 11, sub == 13, sub >= 15 && sub <= 17:
				r.u32()
			default:
				return nil, fmt.Errorf("%w: unsupported opcode 0xfc %d", errInstrument, sub)
			}
		default:
			return nil, fmt.Errorf("%w: unsupported opcode %#x", errInstrument, op)
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: %w", errInstrument, r.err)
	}
	return append(out, body[start:]...), nil
}

// wasmReader decodes the binary format; the first error sticks.
type wasmReader struct {
	b   []byte
	p   int
	err error
}

var errTruncated = errors.New("truncated")

func (r *wasmReader) byte() byte {
	if r.p >= len(r.b) {
		r.err = errTruncated
		return 0
	}
	c := r.b[r.p]
	r.p++
	return c
}

func (r *wasmReader) skip(n int) {
	if n < 0 || r.p+n > len(r.b) {
		r.err = errTruncated
		r.p = len(r.b)
		return
	}
	r.p += n
}

// bytes reads the next n bytes (nil when truncated).
func (r *wasmReader) bytes(n int) []byte {
	p := r.p
	r.skip(n)
	if r.err != nil {
		return nil
	}
	return r.b[p:r.p]
}

func (r *wasmReader) u32() uint32 {
	var x uint32
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		x |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return x
		}
	}
	r.err = errTruncated
	return 0
}

func (r *wasmReader) sleb() {
	for i := 0; i < 10; i++ {
		if r.byte()&0x80 == 0 {
			return
		}
	}
	r.err = errTruncated
}

func (r *wasmReader) limits() {
	flags := r.byte()
	r.u32()
	if flags&1 != 0 {
		r.u32()
	}
}

// blockType skips an empty, value-type or s33 type-index block type.
func (r *wasmReader) blockType() {
	if r.p >= len(r.b) {
		r.err = errTruncated
		return
	}
	switch c := r.b[r.p]; c {
	case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		r.p++
	default:
		r.sleb()
	}
}

// sectionOrder is the required position of a known section id.
func sectionOrder(id byte) int {
	switch id {
	case 12: // data count sits between element and code
		return 95
	case 13: // tag sits between memory and global
		return 55
	}
	return int(id) * 10
}
