package isolate

import (
	"fmt"
)

// Export dispatch.
//
// Every api.Function wazero hands out owns a call engine with its own
// machine stack (10 KiB to start, grown on demand and kept). Binding the ~40
// QuickJS exports an isolate calls would cost hundreds of KiB of Go heap per
// live isolate, so the module is given one more export, dispatchName,
// taking (index i32, a0..a4 i64) and returning i64: it calls the index-th
// export of rewriteOpts.dispatch with its arguments narrowed to their
// declared types and widens the result. An isolate binds it twice (one
// engine for calls from Go, one for calls made inside host callbacks).

const (
	dispatchName    = "__ac_dispatch"
	dispatchMaxArgs = 5
)

// addDispatch appends the dispatcher's type, function, export and body.
// find must return the type, function, export and code sections.
func addDispatch(find func(byte) *wasmSection, importedFuncs uint32, names []string) error {
	typeSec, funcSec, expSec, codeSec := find(1), find(3), find(7), find(10)
	types, err := parseFuncTypes(typeSec.body)
	if err != nil {
		return err
	}
	nfuncs, funcRest, err := vecHead(funcSec.body)
	if err != nil {
		return err
	}
	fr := &wasmReader{b: funcRest}
	funcTypes := make([]uint32, nfuncs)
	for i := range funcTypes {
		funcTypes[i] = fr.u32()
	}
	nexp, expRest, err := vecHead(expSec.body)
	if err != nil {
		return err
	}
	exported := map[string]uint32{}
	er := &wasmReader{b: expRest}
	for i := uint32(0); i < nexp && er.err == nil; i++ {
		n := int(er.u32())
		start := er.p
		er.skip(n)
		if er.err != nil {
			break
		}
		name := string(er.b[start:er.p])
		kind := er.byte()
		idx := er.u32()
		if kind == 0 {
			exported[name] = idx
		}
	}
	if fr.err != nil || er.err != nil {
		return fmt.Errorf("%w: bad function or export section", errInstrument)
	}

	ntypes, typeRest, err := vecHead(typeSec.body)
	if err != nil {
		return err
	}
	dispType := ntypes
	tb := appendU32(nil, ntypes+1)
	tb = append(tb, typeRest...)
	tb = append(tb, 0x60, 1+dispatchMaxArgs, 0x7f)
	for range dispatchMaxArgs {
		tb = append(tb, 0x7e)
	}
	tb = append(tb, 1, 0x7e)
	typeSec.body = tb

	fb := appendU32(nil, nfuncs+1)
	fb = append(fb, funcRest...)
	funcSec.body = appendU32(fb, dispType)
	dispIdx := importedFuncs + nfuncs
	expSec.body = appendExport(expRest, nexp, dispatchName, 0x00, dispIdx)

	// Body: N+1 nested blocks, a br_table on the index, then per target
	// "end; narrow args; call; widen result; return".
	body := []byte{0x00} // no locals
	for range len(names) + 1 {
		body = append(body, 0x02, 0x40)
	}
	body = append(body, 0x20, 0x00, 0x0e)
	body = appendU32(body, uint32(len(names)))
	for i := range names {
		body = appendU32(body, uint32(i))
	}
	body = appendU32(body, uint32(len(names)))
	for _, name := range names {
		fi, ok := exported[name]
		if !ok || fi < importedFuncs || fi-importedFuncs >= nfuncs {
			return fmt.Errorf("%w: no exported function %q", errInstrument, name)
		}
		ti := funcTypes[fi-importedFuncs]
		if int(ti) >= len(types) {
			return fmt.Errorf("%w: bad type index", errInstrument)
		}
		ft := types[ti]
		if len(ft.params) > dispatchMaxArgs || len(ft.results) > 1 {
			return fmt.Errorf("%w: %s has an unsupported signature", errInstrument, name)
		}
		body = append(body, 0x0b)
		for j, p := range ft.params {
			body = append(body, 0x20)
			body = appendU32(body, uint32(j+1))
			switch p {
			case 0x7f: // i32
				body = append(body, 0xa7)
			case 0x7e: // i64
			case 0x7d: // f32
				body = append(body, 0xa7, 0xbe)
			case 0x7c: // f64
				body = append(body, 0xbf)
			default:
				return fmt.Errorf("%w: %s takes a %#x", errInstrument, name, p)
			}
		}
		body = append(body, 0x10)
		body = appendU32(body, fi)
		switch {
		case len(ft.results) == 0:
			body = append(body, 0x42, 0x00)
		case ft.results[0] == 0x7f:
			body = append(body, 0xad) // i64.extend_i32_u
		case ft.results[0] == 0x7e:
		case ft.results[0] == 0x7d:
			body = append(body, 0xbc, 0xad)
		case ft.results[0] == 0x7c:
			body = append(body, 0xbd)
		default:
			return fmt.Errorf("%w: %s returns a %#x", errInstrument, name, ft.results[0])
		}
		body = append(body, 0x0f)
	}
	body = append(body, 0x0b, 0x00, 0x0b) // default: unreachable

	ncode, codeRest, err := vecHead(codeSec.body)
	if err != nil {
		return err
	}
	if ncode != nfuncs {
		return fmt.Errorf("%w: %d bodies for %d functions", errInstrument, ncode, nfuncs)
	}
	cb := appendU32(nil, ncode+1)
	cb = append(cb, codeRest...)
	cb = appendU32(cb, uint32(len(body)))
	codeSec.body = append(cb, body...)
	return nil
}

type funcType struct{ params, results []byte }

func parseFuncTypes(body []byte) ([]funcType, error) {
	r := &wasmReader{b: body}
	n := r.u32()
	out := make([]funcType, 0, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		if r.byte() != 0x60 {
			return nil, fmt.Errorf("%w: non-function type", errInstrument)
		}
		var ft funcType
		np := int(r.u32())
		start := r.p
		r.skip(np)
		if r.err != nil {
			break
		}
		ft.params = r.b[start:r.p]
		nr := int(r.u32())
		start = r.p
		r.skip(nr)
		if r.err != nil {
			break
		}
		ft.results = r.b[start:r.p]
		out = append(out, ft)
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: bad type section", errInstrument)
	}
	return out, nil
}

// stripDataSegments keeps every data segment's kind and offset but drops
// its bytes.
func stripDataSegments(body []byte) ([]byte, error) {
	r := &wasmReader{b: body}
	n := r.u32()
	out := appendU32(nil, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		start := r.p
		switch flags := r.u32(); flags {
		case 0:
			r.constExpr()
		case 1:
		case 2:
			r.u32()
			r.constExpr()
		default:
			return nil, fmt.Errorf("%w: data segment kind %d", errInstrument, flags)
		}
		out = append(out, r.b[start:r.p]...)
		out = append(out, 0)
		r.skip(int(r.u32()))
	}
	if r.err != nil || r.p != len(r.b) {
		return nil, fmt.Errorf("%w: bad data section", errInstrument)
	}
	return out, nil
}

// constExpr skips a constant expression up to and including its end.
func (r *wasmReader) constExpr() {
	for r.err == nil {
		switch op := r.byte(); op {
		case 0x0b:
			return
		case 0x41, 0x42:
			r.sleb()
		case 0x43:
			r.skip(4)
		case 0x44:
			r.skip(8)
		case 0x23, 0xd2:
			r.u32()
		case 0xd0:
			r.byte()
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended-const arithmetic
		default:
			r.err = fmt.Errorf("opcode %#x in constant expression", op)
		}
	}
}
