package isolate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Snapshot format (before zstd):
//
//	off  size  field
//	0    4     magic "ACQS"
//	4    1     version (1)
//	5    1     flags: bit 0 = delta against a template
//	6    2     reserved
//	8    4     memory size in bytes (LE)
//	12   4     page size (snapPage)
//	16   S     vmState (vmStateSize bytes, LE u32s)
//	..   32    sha256 of quickjs.wasm (restore refuses another engine build)
//	..   32    sha256 of the template image (zero unless delta)
//	..   B     page bitmap, one bit per page, LSB first: page is stored
//	..         stored pages in order
//
// A page that is not stored equals the template's page (delta) or is zero
// (full; also delta pages past the template's end). Images are canonical:
// the dead C stack below the resting stack pointer reads as zero, so stack
// garbage never makes a page differ.
const (
	snapMagic   = "ACQS"
	snapVersion = 1
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
	image []byte // canonical memory image
	st    vmState
	hash  [32]byte
	spec  Spec
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
	img := iso.canonicalImage()
	return &Template{image: img, st: iso.vm.st, hash: sha256.Sum256(img), spec: iso.spec}, nil
}

// Marshal encodes the template as a full snapshot.
func (t *Template) Marshal(r *Runtime) []byte {
	return r.encode(t.image, t.st, nil)
}

// LoadTemplate decodes a template from Template.Marshal output (or any full
// snapshot).
func (r *Runtime) LoadTemplate(b []byte) (*Template, error) {
	img, st, err := r.decode(b, nil)
	if err != nil {
		return nil, err
	}
	return &Template{image: img, st: st, hash: sha256.Sum256(img)}, nil
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
	if base != nil {
		baseImg, baseHash = base.image, &base.hash
	}
	return i.rt.encodeLive(mem, i.vm.st, baseImg, baseHash), nil
}

func (r *Runtime) encode(img []byte, st vmState, base *Template) []byte {
	if base == nil {
		return r.encodeLive(img, st, nil, nil)
	}
	return r.encodeLive(img, st, base.image, &base.hash)
}

// encodeLive encodes mem (live or canonical) as a snapshot, treating the
// dead stack as zero.
func (r *Runtime) encodeLive(mem []byte, st vmState, base []byte, baseHash *[32]byte) []byte {
	npages := (len(mem) + snapPage - 1) / snapPage
	hdr := make([]byte, 16+vmStateSize+64+(npages+7)/8)
	copy(hdr, snapMagic)
	hdr[4] = snapVersion
	if baseHash != nil {
		hdr[5] = flagDelta
		copy(hdr[16+vmStateSize+32:], baseHash[:])
	}
	binary.LittleEndian.PutUint32(hdr[8:], uint32(len(mem)))
	binary.LittleEndian.PutUint32(hdr[12:], snapPage)
	st.marshal(hdr[16:])
	copy(hdr[16+vmStateSize:], r.wasmHash[:])
	bitmap := hdr[16+vmStateSize+64:]
	dead := 0
	if st.StackPointer <= stackTop {
		dead = int(st.StackPointer)
	}
	var zero [snapPage]byte
	var page [snapPage]byte
	var pages bytes.Buffer
	for p := 0; p < npages; p++ {
		lo, hi := p*snapPage, min((p+1)*snapPage, len(mem))
		pg := page[:hi-lo]
		copy(pg, mem[lo:hi])
		if lo < dead {
			clear(pg[:min(dead, hi)-lo])
		}
		var ref []byte
		if lo < len(base) {
			ref = base[lo:min(hi, len(base))]
		} else {
			ref = zero[:hi-lo]
		}
		if bytes.Equal(pg, ref) {
			continue
		}
		bitmap[p/8] |= 1 << (p % 8)
		pages.Write(pg)
	}
	return r.enc.EncodeAll(append(hdr, pages.Bytes()...), nil)
}

// decode returns the canonical image and vm state of snapshot b; base is
// required for delta snapshots.
func (r *Runtime) decode(b []byte, base *Template) ([]byte, vmState, error) {
	var st vmState
	raw, err := r.dec.DecodeAll(b, nil)
	if err != nil {
		return nil, st, fmt.Errorf("%w: %w", ErrBadSnapshot, err)
	}
	if len(raw) < 16+vmStateSize+64 || string(raw[:4]) != snapMagic {
		return nil, st, fmt.Errorf("%w: bad header", ErrBadSnapshot)
	}
	if raw[4] != snapVersion {
		return nil, st, fmt.Errorf("%w: version %d", ErrBadSnapshot, raw[4])
	}
	size := int(binary.LittleEndian.Uint32(raw[8:]))
	if binary.LittleEndian.Uint32(raw[12:]) != snapPage || size%wasmPage != 0 {
		return nil, st, fmt.Errorf("%w: bad geometry", ErrBadSnapshot)
	}
	st.unmarshal(raw[16:])
	off := 16 + vmStateSize
	if !bytes.Equal(raw[off:off+32], r.wasmHash[:]) {
		return nil, st, fmt.Errorf("%w: made by a different quickjs.wasm", ErrBadSnapshot)
	}
	img := make([]byte, size)
	if raw[5]&flagDelta != 0 {
		if base == nil {
			return nil, st, fmt.Errorf("%w: delta snapshot needs its template", ErrBadSnapshot)
		}
		if !bytes.Equal(raw[off+32:off+64], base.hash[:]) {
			return nil, st, fmt.Errorf("%w: delta made against template %x, not %s", ErrBadSnapshot, raw[off+32:off+40], base.ID()[:16])
		}
		copy(img, base.image)
	}
	npages := (size + snapPage - 1) / snapPage
	bitmap := raw[off+64:]
	if len(bitmap) < (npages+7)/8 {
		return nil, st, fmt.Errorf("%w: truncated", ErrBadSnapshot)
	}
	data := bitmap[(npages+7)/8:]
	for p := 0; p < npages; p++ {
		if bitmap[p/8]&(1<<(p%8)) == 0 {
			continue
		}
		lo, hi := p*snapPage, min((p+1)*snapPage, size)
		if len(data) < hi-lo {
			return nil, st, fmt.Errorf("%w: truncated page data", ErrBadSnapshot)
		}
		copy(img[lo:hi], data[:hi-lo])
		data = data[hi-lo:]
	}
	return img, st, nil
}

// Restore makes an isolate from a snapshot. snapshot may be nil to start
// from base itself (a fresh session of base's agent version), a full
// snapshot (base may be nil), or a delta against base. spec supplies the
// session identity, env vars and limits; its Module is not re-evaluated
// (the code lives in the image), so it must be the Spec the image was made
// from.
func (r *Runtime) Restore(ctx context.Context, spec Spec, snapshot []byte, base *Template) (*Isolate, error) {
	spec, err := r.normalize(spec)
	if err != nil {
		return nil, err
	}
	var img []byte
	var st vmState
	switch {
	case snapshot != nil:
		if img, st, err = r.decode(snapshot, base); err != nil {
			return nil, err
		}
	case base != nil:
		img, st = base.image, base.st
	default:
		return nil, fmt.Errorf("isolate: restore needs a snapshot or a template")
	}
	if uint64(len(img)) > uint64(spec.MemoryMiB)<<20 {
		return nil, fmt.Errorf("%w: snapshot needs %d MiB, spec allows %d", ErrMemoryExceeded, len(img)>>20, spec.MemoryMiB)
	}
	iso, err := r.instantiate(ctx, spec)
	if err != nil {
		return nil, err
	}
	lctx, done := iso.enter(ctx, nil)
	err = iso.load(lctx, img, st)
	done()
	if err != nil {
		_ = iso.vm.mod.Close(ctx)
		return nil, fmt.Errorf("isolate: restore: %w", err)
	}
	return iso, nil
}

// load overwrites a fresh instance's memory with img and re-applies limits
// and session configuration.
func (i *Isolate) load(ctx context.Context, img []byte, st vmState) error {
	v := i.vm
	cur := v.mem.Size()
	if need := uint32(len(img)); need > cur {
		if _, ok := v.mem.Grow((need - cur) / wasmPage); !ok {
			return fmt.Errorf("%w: grow to %d bytes", ErrMemoryExceeded, need)
		}
	}
	mem, ok := v.mem.Read(0, v.mem.Size())
	if !ok {
		return fmt.Errorf("%w: memory unreadable", ErrCrashed)
	}
	copy(mem, img)
	clear(mem[len(img):])
	if err := v.restoreState(ctx, st); err != nil {
		return err
	}
	if err := i.applyLimits(ctx); err != nil {
		return err
	}
	return i.configure(ctx)
}
