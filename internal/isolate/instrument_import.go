package isolate

import (
	"fmt"
)

// Adding the yield import to a module that has none.
//
// A raw wasm agent imports nothing the loop checks could call into Go, so
// rewriteWasm can add one (rewriteOpts.addYield): a function import of type
// () -> i32, placed after the module's own function imports. Imported
// functions come first in the function index space, so every index of a
// function defined by the module moves up by one; addYieldImport rewrites
// each place that holds one outside the code section (exports, the start
// function, element segments, global initializers and the name section),
// and instrumentFunc rewrites call and ref.func in the code.

// addYieldImport appends ref to the import section as a () -> i32 function
// (adding that type when the module has none) and moves the function
// indices from `from` (the module's imported function count) up by one.
// It returns the new import's function index. Callers ensure sections 1
// and 2 exist.
func addYieldImport(find func(byte) *wasmSection, from uint32, ref importRef) (int64, error) {
	typeSec, importSec := find(1), find(2)
	types, err := parseFuncTypes(typeSec.body)
	if err != nil {
		return -1, err
	}
	typ := -1
	for i, ft := range types {
		if len(ft.params) == 0 && len(ft.results) == 1 && ft.results[0] == 0x7f {
			typ = i
			break
		}
	}
	if typ < 0 {
		n, rest, err := vecHead(typeSec.body)
		if err != nil {
			return -1, err
		}
		typ = int(n)
		tb := appendU32(nil, n+1)
		tb = append(tb, rest...)
		typeSec.body = append(tb, 0x60, 0x00, 0x01, 0x7f)
	}
	n, rest, err := vecHead(importSec.body)
	if err != nil {
		return -1, err
	}
	ib := appendU32(nil, n+1)
	ib = append(ib, rest...)
	ib = appendU32(ib, uint32(len(ref.module)))
	ib = append(ib, ref.module...)
	ib = appendU32(ib, uint32(len(ref.name)))
	ib = append(ib, ref.name...)
	importSec.body = appendU32(append(ib, 0x00), uint32(typ))

	if s := find(7); s != nil {
		if s.body, err = shiftExports(s.body, from); err != nil {
			return -1, err
		}
	}
	if s := find(8); s != nil {
		r := &wasmReader{b: s.body}
		idx := r.u32()
		if r.err != nil || r.p != len(r.b) {
			return -1, fmt.Errorf("%w: bad start section", errInstrument)
		}
		s.body = appendU32(nil, shiftIndex(idx, from))
	}
	if s := find(6); s != nil {
		if s.body, err = shiftGlobals(s.body, from); err != nil {
			return -1, err
		}
	}
	if s := find(9); s != nil {
		if s.body, err = shiftElements(s.body, from); err != nil {
			return -1, err
		}
	}
	return int64(from), nil
}

func shiftIndex(idx, from uint32) uint32 {
	if idx >= from {
		return idx + 1
	}
	return idx
}

// shiftExports moves the function indices of an export section's entries.
func shiftExports(body []byte, from uint32) ([]byte, error) {
	r := &wasmReader{b: body}
	n := r.u32()
	out := appendU32(nil, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		start := r.p
		r.skip(int(r.u32()))
		kind := r.byte()
		if r.err != nil {
			break
		}
		out = append(out, body[start:r.p]...)
		idx := r.u32()
		if kind == 0x00 {
			idx = shiftIndex(idx, from)
		}
		out = appendU32(out, idx)
	}
	if r.err != nil || r.p != len(r.b) {
		return nil, fmt.Errorf("%w: bad export section", errInstrument)
	}
	return out, nil
}

// shiftGlobals moves the function indices in a global section's
// initializers (ref.func).
func shiftGlobals(body []byte, from uint32) ([]byte, error) {
	r := &wasmReader{b: body}
	n := r.u32()
	out := appendU32(nil, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		start := r.p
		r.byte() // valtype
		r.byte() // mut
		if r.err != nil {
			break
		}
		out = append(out, body[start:r.p]...)
		var err error
		if out, err = shiftConstExpr(r, out, from); err != nil {
			return nil, err
		}
	}
	if r.err != nil || r.p != len(r.b) {
		return nil, fmt.Errorf("%w: bad global section", errInstrument)
	}
	return out, nil
}

// shiftElements moves the function indices of an element section: its
// function index vectors and the ref.func of its expressions.
func shiftElements(body []byte, from uint32) ([]byte, error) {
	r := &wasmReader{b: body}
	n := r.u32()
	out := appendU32(nil, n)
	var err error
	for i := uint32(0); i < n && r.err == nil; i++ {
		flags := r.u32()
		out = appendU32(out, flags)
		if flags > 7 {
			return nil, fmt.Errorf("%w: element segment kind %d", errInstrument, flags)
		}
		if flags&2 != 0 && flags&1 == 0 { // explicit table index
			out = appendU32(out, r.u32())
		}
		if flags&1 == 0 { // active: offset expression
			if out, err = shiftConstExpr(r, out, from); err != nil {
				return nil, err
			}
		}
		if flags&3 != 0 { // elemkind or reftype
			out = append(out, r.byte())
		}
		m := r.u32()
		out = appendU32(out, m)
		for j := uint32(0); j < m && r.err == nil; j++ {
			if flags&4 == 0 {
				out = appendU32(out, shiftIndex(r.u32(), from))
			} else if out, err = shiftConstExpr(r, out, from); err != nil {
				return nil, err
			}
		}
	}
	if r.err != nil || r.p != len(r.b) {
		return nil, fmt.Errorf("%w: bad element section", errInstrument)
	}
	return out, nil
}

// shiftNames moves the function indices of a custom section body when it
// is the name section (function, local and label names); ok is false when
// that section is malformed, which the caller then drops (names only label
// traces).
func shiftNames(body []byte, from uint32) (out []byte, ok bool) {
	r := &wasmReader{b: body}
	name := r.bytes(int(r.u32()))
	if r.err != nil || string(name) != "name" {
		return body, true
	}
	out = append(out, body[:r.p]...)
	for r.p < len(r.b) && r.err == nil {
		id := r.byte()
		sub := r.bytes(int(r.u32()))
		if r.err != nil {
			break
		}
		if id < 1 || id > 3 {
			out = appendSection(out, id, sub)
			continue
		}
		sr := &wasmReader{b: sub}
		n := sr.u32()
		nb := appendU32(nil, n)
		for i := uint32(0); i < n && sr.err == nil; i++ {
			nb = appendU32(nb, shiftIndex(sr.u32(), from))
			start := sr.p
			if id == 1 {
				sr.skip(int(sr.u32()))
			} else { // an indirect name map: vec(index, name)
				m := sr.u32()
				for j := uint32(0); j < m && sr.err == nil; j++ {
					sr.u32()
					sr.skip(int(sr.u32()))
				}
			}
			if sr.err == nil {
				nb = append(nb, sub[start:sr.p]...)
			}
		}
		if sr.err != nil || sr.p != len(sub) {
			return nil, false
		}
		out = appendSection(out, id, nb)
	}
	if r.err != nil {
		return nil, false
	}
	return out, true
}

// shiftConstExpr copies a constant expression from r to out, moving the
// index of each ref.func.
func shiftConstExpr(r *wasmReader, out []byte, from uint32) ([]byte, error) {
	for r.err == nil {
		start := r.p
		switch op := r.byte(); op {
		case 0x0b: // end
			return append(out, op), nil
		case 0xd2: // ref.func
			out = appendU32(append(out, op), shiftIndex(r.u32(), from))
			continue
		case 0x41, 0x42: // i32.const, i64.const
			r.sleb()
		case 0x43:
			r.skip(4)
		case 0x44:
			r.skip(8)
		case 0x23: // global.get
			r.u32()
		case 0xd0: // ref.null t
			r.byte()
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended constant arithmetic
		default:
			return nil, fmt.Errorf("%w: opcode %#x in a constant expression", errInstrument, op)
		}
		if r.err == nil {
			out = append(out, r.b[start:r.p]...)
		}
	}
	return nil, fmt.Errorf("%w: bad constant expression: %w", errInstrument, r.err)
}
