package isolate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/tetratelabs/wazero"
)

// Snapshot format (before zstd):
//
//	off  size  field
//	0    4     magic "ACQS"
//	4    1     version (2; 1 is still read)
//	5    1     flags: bit 0 = delta against a template
//	6    2     reserved
//	8    4     memory size in bytes (LE)
//	12   4     v1: page size (snapPage); v2: 0
//	16   S     vmState (vmStateSize bytes, LE u32s)
//	..   32    sha256 of quickjs.wasm (restore refuses another engine build)
//	..   32    sha256 of the template image (zero unless delta)
//	..         v2: byte runs that differ from the reference (see snapdiff.go)
//	..         v1: page bitmap, one bit per page, LSB first, then the
//	..             stored pages in order
//
// The reference is the template's image (delta) or zeros (full; also past
// the template's end). Images are canonical: the dead C stack below the
// resting stack pointer reads as zero, so stack garbage never differs.
const (
	snapMagic   = "ACQS"
	snapVersion = 2
	snapV1      = 1
	snapPage    = 4096
	flagDelta   = 1
	// stackTop is where the binary's stack-first layout puts the initial
	// stack pointer; everything below a resting stack pointer is dead.
	stackTop = 1 << 20
)

// Template is a post-initialization image of one Spec (agent version): the
// base that sessions start from and that delta snapshots are relative to.
// It is immutable and safe to share.
type Template struct {
	image []byte // canonical memory image (file's mapping when file != nil)
	file  *imageFile
	st    vmState
	hash  [32]byte
	spec  Spec
	hot   atomic.Pointer[hotPages] // hotpages.go
}

func newTemplate(img []byte, st vmState, spec Spec) *Template {
	t := &Template{st: st, hash: sha256.Sum256(img), spec: spec}
	t.attachImage(img)
	return t
}

// ID identifies the template's image (hex sha256).
func (t *Template) ID() string { return hex.EncodeToString(t.hash[:]) }

// Size is the template image's size in bytes (uncompressed).
func (t *Template) Size() int { return len(t.image) }

// Template boots a fresh isolate for spec and keeps its memory image. Store
// it with Marshal; every session of the same agent version can then start
// with Restore(ctx, spec, nil, tmpl) and hibernate as a small delta.
func (r *Runtime) Template(ctx context.Context, spec Spec) (*Template, error) {
	iso, err := r.New(ctx, spec)
	if err != nil {
		return nil, err
	}
	defer iso.Close(ctx) //nolint:errcheck
	iso.mu.Lock()
	defer iso.mu.Unlock()
	return newTemplate(iso.canonicalImage(), iso.vm.st, iso.spec), nil
}

// Marshal encodes the template as a full snapshot.
func (t *Template) Marshal(r *Runtime) []byte {
	b := r.encodeLive(r.tplEnc, t.image, t.st, nil, nil, 0, nil)
	runtime.KeepAlive(t) // t.image may be a mapping its cleanup unmaps
	return b
}

// LoadTemplate decodes a template from Template.Marshal output (or any full
// snapshot).
func (r *Runtime) LoadTemplate(b []byte) (*Template, error) {
	im, err := r.decode(b, nil)
	if err != nil {
		return nil, err
	}
	img := make([]byte, im.size)
	im.apply(img)
	return newTemplate(img, im.st, Spec{}), nil
}

// canonicalImage copies linear memory with the dead stack zeroed. Caller
// holds i.mu and the isolate is between calls.
func (i *Isolate) canonicalImage() []byte {
	mem, _ := i.vm.mem.Read(0, i.vm.mem.Size())
	img := make([]byte, len(mem))
	copy(img, mem)
	if sp := i.vm.st.StackPointer; sp <= stackTop && int(sp) <= len(img) {
		clear(img[:sp])
	}
	return img
}

// Snapshot captures the isolate's whole state: linear memory (the JS heap,
// job queue, pending promises, module state) plus the stack pointer and the
// runtime/context pointers. With a non-nil base, only pages that differ
// from base are stored. The result is zstd-compressed. The isolate stays
// usable.
func (i *Isolate) Snapshot(base *Template) ([]byte, error) {
	if err := i.begin(); err != nil {
		return nil, err
	}
	defer i.mu.Unlock()
	mem, ok := i.vm.mem.Read(0, i.vm.mem.Size())
	if !ok {
		return nil, fmt.Errorf("%w: memory unreadable", ErrCrashed)
	}
	var baseImg []byte
	var baseHash *[32]byte
	var priv []bool
	baseZero := 0
	if base != nil {
		baseImg, baseHash = base.image, &base.hash
		if sp := base.st.StackPointer; sp <= stackTop {
			baseZero = int(sp) // canonical: the template's dead stack is zero
		}
		if i.base == base {
			priv = i.vm.lin.private(mem, base)
			// Reads only from a reservation no earlier session used: a
			// reused one keeps every earlier session's read pages mapped.
			base.learnHot(mem, priv, i.vm.lin.noFaultAround && !i.vm.lin.reused)
			i.snapPriv, i.snapGen = priv, i.gen
		}
	}
	snap := i.rt.encodeLive(i.rt.enc, mem, i.vm.st, baseImg, baseHash, baseZero, priv)
	runtime.KeepAlive(base) // base.image may be a mapping its cleanup unmaps
	return snap, nil
}

// encodeLive encodes mem (live or canonical) as a snapshot, treating the
// dead stack as zero; base is zero below baseZero and priv, if not nil,
// names the pages that can differ from base (diffPages).
func (r *Runtime) encodeLive(enc *zstd.Encoder, mem []byte, st vmState, base []byte, baseHash *[32]byte, baseZero int, priv []bool) []byte {
	bp := rawBufs.Get().(*[]byte)
	hdr := (*bp)[:snapHeaderSize]
	clear(hdr) // the buffer held the previous snapshot's diff
	copy(hdr, snapMagic)
	hdr[4] = snapVersion
	if baseHash != nil {
		hdr[5] = flagDelta
		copy(hdr[16+vmStateSize+32:], baseHash[:])
	}
	binary.LittleEndian.PutUint32(hdr[8:], uint32(len(mem)))
	st.marshal(hdr[16:])
	copy(hdr[16+vmStateSize:], r.wasmHash[:])
	dead := 0
	if st.StackPointer <= stackTop {
		dead = int(st.StackPointer)
	}
	raw := diffPages(hdr, mem, base, dead, baseZero, priv)
	out := enc.EncodeAll(raw, make([]byte, 0, len(raw)/2+64))
	if cap(raw) <= maxPooledRaw {
		// A session's heap bytes must not sit in the pool: cleared.
		clear(raw)
		*bp = raw[:0]
		rawBufs.Put(bp)
	}
	return out
}

// snapHeaderSize is a snapshot's uncompressed header: magic, version, flags,
// size, vm state, module hash and base hash.
const snapHeaderSize = 16 + vmStateSize + 64

// rawBufs holds the buffers diffs are built in between snapshots: a
// session's diff is a few kilobytes that zstd copies out, and a new buffer
// for each hibernation grew by doubling from 4 KiB (~30 KB of garbage per
// snapshot). Buffers grown past maxPooledRaw (a template's full image, a
// large heap) are left to the GC.
var rawBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, 32<<10)
	return &b
}}

const maxPooledRaw = 256 << 10

// image is a decoded snapshot: base's image (or zeros) of size bytes with
// patches applied, plus the vm state.
type image struct {
	base    *Template
	size    int
	patches []patch
	st      vmState
}

type patch struct {
	off  int
	data []byte
}

// apply writes im's patches into mem, which already holds the base (or
// zeros).
func (im *image) apply(mem []byte) {
	for _, p := range im.patches {
		copy(mem[p.off:], p.data)
	}
}

// decode parses snapshot b; base is required for delta snapshots.
func (r *Runtime) decode(b []byte, base *Template) (*image, error) {
	im := &image{}
	raw, err := r.dec.DecodeAll(b, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	if len(raw) < snapHeaderSize || string(raw[:4]) != snapMagic {
		return nil, fmt.Errorf("%w: bad header", ErrBadSnapshot)
	}
	version := raw[4]
	if version != snapVersion && version != snapV1 {
		return nil, fmt.Errorf("%w: version %d", ErrBadSnapshot, raw[4])
	}
	size := int(binary.LittleEndian.Uint32(raw[8:]))
	geom := uint32(0)
	if version == snapV1 {
		geom = snapPage
	}
	if binary.LittleEndian.Uint32(raw[12:]) != geom || size%wasmPage != 0 {
		return nil, fmt.Errorf("%w: bad geometry", ErrBadSnapshot)
	}
	im.size = size
	im.st.unmarshal(raw[16:])
	off := 16 + vmStateSize
	if !bytes.Equal(raw[off:off+32], r.wasmHash[:]) {
		return nil, fmt.Errorf("%w: made by a different quickjs.wasm", ErrBadSnapshot)
	}
	if raw[5]&flagDelta != 0 {
		if base == nil {
			return nil, fmt.Errorf("%w: delta snapshot needs its template", ErrBadSnapshot)
		}
		if !bytes.Equal(raw[off+32:off+64], base.hash[:]) {
			return nil, fmt.Errorf("%w: delta made against template %x, not %s", ErrBadSnapshot, raw[off+32:off+40], base.ID()[:16])
		}
		if len(base.image) > size {
			return nil, fmt.Errorf("%w: delta smaller than its template", ErrBadSnapshot)
		}
		im.base = base
	}
	if version == snapVersion {
		if im.patches, err = parseRuns(raw[off+64:], size); err != nil {
			return nil, err
		}
		return im, nil
	}
	npages := (size + snapPage - 1) / snapPage
	bitmap := raw[off+64:]
	if len(bitmap) < (npages+7)/8 {
		return nil, fmt.Errorf("%w: truncated", ErrBadSnapshot)
	}
	data := bitmap[(npages+7)/8:]
	for p := 0; p < npages; p++ {
		if bitmap[p/8]&(1<<(p%8)) == 0 {
			continue
		}
		lo, hi := p*snapPage, min((p+1)*snapPage, size)
		if len(data) < hi-lo {
			return nil, fmt.Errorf("%w: truncated page data", ErrBadSnapshot)
		}
		im.patches = append(im.patches, patch{off: lo, data: data[:hi-lo]})
		data = data[hi-lo:]
	}
	return im, nil
}

// Restore makes an isolate from a snapshot. snapshot may be nil to start
// from base itself (a fresh session of base's agent version), a full
// snapshot (base may be nil), or a delta against base. spec supplies the
// session identity, env vars and limits; its Module is not re-evaluated
// (the code lives in the image), so it must be the Spec the image was made
// from.
func (r *Runtime) Restore(ctx context.Context, spec Spec, snapshot []byte, base *Template) (*Isolate, error) {
	return r.restoreWith(ctx, spec, snapshot, base, r.restoreModule())
}

// restoreWith is Restore instantiating code (bare.go).
func (r *Runtime) restoreWith(ctx context.Context, spec Spec, snapshot []byte, base *Template, code wazero.CompiledModule) (*Isolate, error) {
	spec, err := r.normalize(spec)
	if err != nil {
		return nil, err
	}
	ph := restorePhases(ctx)
	var t time.Time
	if ph != nil {
		t = time.Now()
	}
	var im *image
	switch {
	case snapshot != nil:
		if im, err = r.decode(snapshot, base); err != nil {
			return nil, err
		}
		if ph != nil {
			ph.lap(&ph.Decode, &t)
			for _, p := range im.patches {
				ph.ApplyBytes += len(p.data)
			}
			ph.ApplyRuns += len(im.patches)
		}
	case base != nil:
		im = &image{base: base, size: len(base.image), st: base.st}
	default:
		return nil, fmt.Errorf("isolate: restore needs a snapshot or a template")
	}
	if uint64(im.size) > uint64(spec.MemoryMiB)<<20 {
		return nil, fmt.Errorf("%w: snapshot needs %d MiB, spec allows %d", ErrMemoryExceeded, im.size>>20, spec.MemoryMiB)
	}
	// Only a module without data segments leaves a pooled reservation as
	// the pool reset it until load replaces it (bare.go).
	var pf *imageFile
	if im.base != nil && im.base.file != nil && code != r.qjs {
		pf = im.base.file
	}
	var iso *Isolate
	if pf != nil {
		// A pooled instance of the template: no instantiation (instpool.go).
		if v := r.instGet(code, pf, uint64(spec.MemoryMiB)<<20); v != nil {
			iso = &Isolate{rt: r, spec: spec, vm: v}
		}
	}
	if iso == nil {
		if iso, err = r.instantiate(ctx, spec, code, pf); err != nil {
			return nil, err
		}
	}
	iso.code = code
	if ph != nil {
		ph.lap(&ph.Instantiate, &t)
	}
	lctx, done := iso.enter(ctx, nil)
	err = iso.load(lctx, im)
	done()
	if err != nil {
		_ = iso.vm.mod.Close(ctx)
		return nil, fmt.Errorf("isolate: restore: %w", err)
	}
	if pf != nil {
		r.prefillAfter(code, im.base, spec.MemoryMiB)
	}
	return iso, nil
}

// load replaces a fresh instance's memory with im and re-applies limits
// and session configuration. A template with an image file is mapped
// copy-on-write; otherwise its image is copied.
func (i *Isolate) load(ctx context.Context, im *image) error {
	ph := restorePhases(ctx)
	var t time.Time
	if ph != nil {
		t = time.Now()
	}
	v := i.vm
	cur := v.mem.Size()
	if need := uint32(im.size); need > cur {
		if _, ok := v.mem.Grow((need - cur) / wasmPage); !ok {
			return fmt.Errorf("%w: grow to %d bytes", ErrMemoryExceeded, need)
		}
	}
	mem, ok := v.mem.Read(0, v.mem.Size())
	if !ok {
		return fmt.Errorf("%w: memory unreadable", ErrCrashed)
	}
	baseLen := 0
	if b := im.base; b != nil {
		baseLen = len(b.image)
		switch {
		case v.lin != nil && v.lin.reused && v.lin.pf == b.file && b.file != nil:
			// A pooled reservation: mapped, reset, and its hot pages
			// are already private.
			i.base = b
		case b.file != nil && v.lin != nil && v.lin.mapImage(b.file) == nil:
			i.base = b
			if ph != nil {
				ph.lap(&ph.Map, &t)
			}
			v.lin.populateHot(b)
			if ph != nil {
				ph.lap(&ph.Hot, &t)
			}
		default:
			copy(mem, b.image)
		}
		runtime.KeepAlive(b) // its cleanup closes the file and unmaps image
	}
	if ph != nil {
		ph.lap(&ph.Map, &t)
	}
	if v.lin != nil {
		if err := v.lin.zero(baseLen, len(mem)); err != nil {
			return err
		}
	} else {
		clear(mem[baseLen:])
	}
	if ph != nil {
		ph.lap(&ph.Zero, &t)
	}
	im.apply(mem)
	if ph != nil {
		ph.lap(&ph.Apply, &t)
	}
	if err := v.restoreState(ctx, im.st); err != nil {
		return err
	}
	if ph != nil {
		ph.lap(&ph.State, &t)
	}
	if err := i.applyLimits(ctx); err != nil {
		return err
	}
	err := i.configure(ctx)
	if ph != nil {
		ph.lap(&ph.Configure, &t)
	}
	return err
}
