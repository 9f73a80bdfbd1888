package isolate

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// hostFnName is the one host function the prelude calls; the name is baked
// into the heap (and so into snapshots), which is how QuickJS finds the host
// callback again after a restore.
const hostFnName = "__ac_host"

type callKey struct{}

// callCtx is the state of the Go call currently running in an isolate. It
// travels in the context passed to wazero so host callbacks can find it.
type callCtx struct {
	iso  *Isolate
	host Host
	ctx  context.Context // the caller's context, for deadline checks
}

// callValue is the context of a call into an isolate: the caller's, with
// the call's callCtx as the value of callKey. It is what
// context.WithValue(ctx, callKey{}, &callCtx{...}) would make, in one
// allocation instead of two.
type callValue struct {
	context.Context
	c callCtx
}

// Value implements context.Context.
func (v *callValue) Value(key any) any {
	if _, ok := key.(callKey); ok {
		return &v.c
	}
	return v.Context.Value(key)
}

func currentCall(ctx context.Context) *callCtx {
	if v, ok := ctx.(*callValue); ok {
		return &v.c // the common case: no walk up the chain
	}
	c, _ := ctx.Value(callKey{}).(*callCtx)
	return c
}

// hostCall implements env.host_call(name, name_len, this, argc, argv) -> JSValue*.
// A zero result means an exception was thrown into the guest.
func hostCall(ctx context.Context, m api.Module, s []uint64) {
	c := currentCall(ctx)
	if c == nil {
		panic("isolate: host_call outside an isolate call")
	}
	name, ok := m.Memory().Read(uint32(s[0]), uint32(s[1]))
	argc, argv := uint32(s[3]), uint32(s[4])
	var res any
	var err error
	if !ok || string(name) != hostFnName {
		err = fmt.Errorf("unknown host function %q", name)
	} else {
		res, err = c.dispatch(ctx, argc, argv)
	}
	var box uint32
	if err == nil {
		box, err = c.toJS(ctx, res)
	}
	if err != nil {
		if isFatal(err) {
			panic(err) // unwinds the guest; surfaces from the outer call
		}
		box = 0
		if terr := c.throw(ctx, err); terr != nil {
			panic(terr)
		}
	}
	s[0] = uint64(box)
}

func isFatal(err error) bool {
	return errors.Is(err, ErrCrashed) || errors.Is(err, ErrMemoryExceeded) || errors.Is(err, ErrTimeout)
}

// throw raises err in the guest: an Error with err's message and, for a
// HostError with a name, that name as an own property, which the prelude's
// host wrapper turns into an instance of TypeError, RangeError or
// SyntaxError (see HostError).
func (c *callCtx) throw(ctx context.Context, err error) error {
	name, msg := guestError(err)
	v := c.iso.vm
	e, err := v.hcall(ctx, v.h.newError)
	if err != nil {
		return err
	}
	if err := c.setString(ctx, e, "message", msg); err != nil {
		return err
	}
	if name != "" {
		if err := c.setString(ctx, e, "name", name); err != nil {
			return err
		}
	}
	if _, err := v.hcall(ctx, v.h.throw, uint64(e)); err != nil {
		return err
	}
	_, err = v.hcall(ctx, v.h.freeValue, uint64(e))
	return err
}

// setString sets obj[prop] to the string s.
func (c *callCtx) setString(ctx context.Context, obj uint32, prop, s string) error {
	v := c.iso.vm
	ms, err := v.newString(ctx, true, s)
	if err != nil {
		return err
	}
	key, err := v.writeBytes(ctx, true, []byte(prop))
	if err != nil {
		return err
	}
	if _, err := v.hcall(ctx, v.h.setPropString, uint64(obj), uint64(key), uint64(ms)); err != nil {
		return err
	}
	_, _ = v.hcall(ctx, v.h.free, uint64(key))
	_, err = v.hcall(ctx, v.h.freeValue, uint64(ms))
	return err
}

// args reads the guest arguments after the op name. A string or buffer
// over the isolate's MaxBodyBytes is refused by its length (a RangeError in
// the guest) before the host copies it.
func (c *callCtx) args(ctx context.Context, argc, argv uint32) ([]any, error) {
	v := c.iso.vm
	max := c.iso.rt.cfg.MaxBodyBytes
	tooLarge := func(err error) error {
		var se *SizeError
		if errors.As(err, &se) {
			return HostErrorf("RangeError", "a host call argument is %v bytes", se)
		}
		return err
	}
	out := make([]any, argc)
	for i := uint32(0); i < argc; i++ {
		box := v.u32(argv + 4*i)
		if ok, err := v.hcall(ctx, v.h.isString, uint64(box)); err != nil {
			return nil, err
		} else if ok != 0 {
			if out[i], err = v.str(ctx, true, box, max, false); err != nil {
				return nil, tooLarge(err)
			}
			continue
		}
		if ok, err := v.hcall(ctx, v.h.isArrayBuffer, uint64(box)); err != nil {
			return nil, err
		} else if ok != 0 {
			if out[i], err = v.arrayBuffer(ctx, true, box, max); err != nil {
				return nil, tooLarge(err)
			}
			continue
		}
		if ok, err := v.hcall(ctx, v.h.isNumber, uint64(box)); err != nil {
			return nil, err
		} else if ok != 0 {
			if out[i], err = v.float(ctx, true, box); err != nil {
				return nil, err
			}
			continue
		}
		out[i] = nil // undefined, null and anything else
	}
	return out, nil
}

// toJS converts a host result to a new box owned by the caller.
func (c *callCtx) toJS(ctx context.Context, res any) (uint32, error) {
	v := c.iso.vm
	switch x := res.(type) {
	case nil:
		return v.hcall(ctx, v.h.dupValue, uint64(v.st.Undefined))
	case string:
		return v.newString(ctx, true, x)
	case []byte:
		return v.newArrayBuffer(ctx, true, x)
	case float64:
		return v.hcall(ctx, v.h.newNumber, math.Float64bits(x))
	case []any:
		arr, err := v.hcall(ctx, v.h.newArray)
		if err != nil {
			return 0, err
		}
		for i, el := range x {
			b, err := c.toJS(ctx, el)
			if err != nil {
				return 0, err
			}
			if _, err := v.hcall(ctx, v.h.setPropUint32, uint64(arr), uint64(i), uint64(b)); err != nil {
				return 0, err
			}
			if _, err := v.hcall(ctx, v.h.freeValue, uint64(b)); err != nil {
				return 0, err
			}
		}
		return arr, nil
	}
	return 0, fmt.Errorf("%w: host result of type %T", ErrCrashed, res)
}

func argString(a []any, i int) string {
	if i < len(a) {
		if s, ok := a[i].(string); ok {
			return s
		}
	}
	return ""
}

func argBytes(a []any, i int) []byte {
	if i < len(a) {
		if b, ok := a[i].([]byte); ok {
			return b
		}
	}
	return nil
}

func argNumber(a []any, i int) (float64, bool) {
	if i < len(a) {
		if f, ok := a[i].(float64); ok {
			return f, true
		}
	}
	return 0, false
}

// wireRequest / wireResponse are the JSON shapes of outbound fetch metadata
// (prelude fetch() and the raw wasm ABI's fetch import; bodies travel
// separately). Calls into the isolate use wire.go's format instead.
type wireRequest struct {
	Method  string      `json:"method"`
	URL     string      `json:"url"`
	Headers [][2]string `json:"headers"`
}

type wireResponse struct {
	Status     int         `json:"status"`
	StatusText string      `json:"statusText"`
	Headers    [][2]string `json:"headers"`
}

// maxRandom bounds one crypto.getRandomValues call, as in browsers.
const maxRandom = 65536

func (c *callCtx) dispatch(ctx context.Context, argc, argv uint32) (any, error) {
	if argc == 0 {
		return nil, errors.New("host call without op")
	}
	a, err := c.args(ctx, argc, argv)
	if err != nil {
		return nil, err
	}
	op, a := argString(a, 0), a[1:]
	h := c.host
	switch op {
	case "log":
		h.Log(argString(a, 0), argString(a, 1))
		return nil, nil
	case "utf8.encode":
		return []byte(argString(a, 0)), nil
	case "utf8.decode":
		fatal, _ := argNumber(a, 1)
		s, _, err := decodeUTF8(argBytes(a, 0), fatal != 0, false)
		if err != nil {
			return nil, err
		}
		return s, nil
	case "text.label": // TextDecoder's label: the encoding's name or undefined
		if name, ok := textEncoding(argString(a, 0)); ok {
			return name, nil
		}
		return nil, nil
	case "text.decode": // encoding, bytes, flags (1 fatal, 2 stream): text or [text, rest]
		flags, _ := argNumber(a, 2)
		s, rest, err := decodeText(argString(a, 0), argBytes(a, 1), int(flags)&1 != 0, int(flags)&2 != 0)
		if err != nil {
			return nil, err
		}
		if rest > 0 {
			return []any{s, float64(rest)}, nil
		}
		return s, nil
	case "random":
		n, _ := argNumber(a, 0)
		if n < 0 || n > maxRandom {
			return nil, HostErrorf("QuotaExceededError", "getRandomValues: %v bytes requested, max %d", n, maxRandom)
		}
		b := make([]byte, int(n))
		_, _ = rand.Read(b)
		return b, nil
	case "digest":
		data := argBytes(a, 1)
		switch strings.ToUpper(argString(a, 0)) {
		case "SHA-1":
			s := sha1.Sum(data)
			return s[:], nil
		case "SHA-256":
			s := sha256.Sum256(data)
			return s[:], nil
		case "SHA-384":
			s := sha512.Sum384(data)
			return s[:], nil
		case "SHA-512":
			s := sha512.Sum512(data)
			return s[:], nil
		}
		return nil, HostErrorf("NotSupportedError", "digest algorithm %q", argString(a, 0))
	case "preload":
		return preloadLibs(c.iso.spec), nil
	case "lib":
		src, ok := preludeLibs[argString(a, 0)]
		if !ok {
			return nil, fmt.Errorf("no prelude library %q", argString(a, 0))
		}
		return src, nil
	case "url.parse":
		return urlParse(argString(a, 0), argString(a, 1), len(a) > 1 && a[1] != nil)
	case "url.set":
		return urlSet(argString(a, 0), argString(a, 1), argString(a, 2))
	case "cache":
		return c.cacheCall(a)
	case "multipart.parse":
		return parseForm(argString(a, 0), argBytes(a, 1), c.iso.rt.cfg.MaxBodyBytes)
	case "compress", "decompress":
		return zcall(op, argString(a, 0), argBytes(a, 1), c.iso.rt.cfg.MaxBodyBytes)
	case "subtle":
		return subtleCall(argString(a, 0), argString(a, 1), [][]byte{argBytes(a, 2), argBytes(a, 3), argBytes(a, 4), argBytes(a, 5)})
	case "base64.encode":
		return base64.StdEncoding.EncodeToString(argBytes(a, 0)), nil
	case "base64.decode":
		b, err := base64.StdEncoding.DecodeString(argString(a, 0))
		if err != nil {
			return nil, HostErrorf("DataCloneError", "bad base64: %v", err)
		}
		return b, nil
	case "state.get":
		val, ok, err := h.StateGet(argString(a, 0))
		if err != nil || !ok {
			return nil, err
		}
		return string(val), nil
	case "state.put":
		val := argString(a, 1)
		if !json.Valid([]byte(val)) {
			return nil, errors.New("state.put: value is not JSON-serializable")
		}
		return nil, h.StatePut(argString(a, 0), []byte(val))
	case "state.delete":
		return nil, h.StateDelete(argString(a, 0))
	case "state.list":
		limit, _ := argNumber(a, 1)
		kvs, err := h.StateList(argString(a, 0), int(limit))
		if err != nil {
			return nil, err
		}
		return encodeStateList(kvs), nil
	case "alarm.set":
		ms, ok := argNumber(a, 0)
		if !ok || math.IsNaN(ms) {
			return nil, &HostError{Name: "TypeError", Message: "setAlarm needs a Date or a number of milliseconds"}
		}
		return nil, h.SetAlarm(time.UnixMilli(int64(ms)))
	case "alarm.get":
		t, ok, err := h.GetAlarm()
		if err != nil || !ok {
			return nil, err
		}
		return float64(t.UnixMilli()), nil
	case "alarm.delete":
		return nil, h.DeleteAlarm()
	case "invoke":
		args := argString(a, 2)
		if !json.Valid([]byte(args)) {
			return nil, &HostError{Name: "TypeError", Message: "arguments are not JSON-serializable"}
		}
		out, err := h.Invoke(ctx, argString(a, 0), argString(a, 1), []byte(args))
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
			}
			return nil, err
		}
		if len(out) == 0 {
			return nil, nil
		}
		if len(out) > c.iso.rt.cfg.MaxBodyBytes {
			return nil, HostErrorf("RangeError", "env.%s.%s answered %v bytes", argString(a, 0), argString(a, 1), &SizeError{Size: int64(len(out)), Limit: int64(c.iso.rt.cfg.MaxBodyBytes)})
		}
		return string(out), nil
	case "fetch":
		var wr wireRequest
		if err := json.Unmarshal([]byte(argString(a, 0)), &wr); err != nil {
			return nil, fmt.Errorf("fetch: bad request: %w", err)
		}
		resp, err := h.Fetch(ctx, Request{Method: wr.Method, URL: wr.URL, Headers: wr.Headers, Body: argBytes(a, 1)})
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
			}
			return nil, HostErrorf("TypeError", "fetch failed: %w", err)
		}
		if len(resp.Body) > c.iso.rt.cfg.MaxBodyBytes {
			return nil, HostErrorf("TypeError", "fetch failed: the response body is %v bytes", &SizeError{Size: int64(len(resp.Body)), Limit: int64(c.iso.rt.cfg.MaxBodyBytes)})
		}
		meta, _ := json.Marshal(wireResponse{Status: resp.Status, StatusText: resp.StatusText, Headers: resp.Headers})
		body := resp.Body
		if body == nil {
			body = []byte{}
		}
		return []any{string(meta), body}, nil
	}
	return nil, fmt.Errorf("unknown host op %q", op)
}

// hostPromiseRejection implements env.host_promise_rejection; isolates do not
// enable the tracker, but if called it releases the values it was handed.
func hostPromiseRejection(ctx context.Context, m api.Module, s []uint64) {
	c := currentCall(ctx)
	if c == nil {
		return
	}
	v := c.iso.vm
	_, _ = v.hcall(ctx, v.h.freeValue, s[0])
	_, _ = v.hcall(ctx, v.h.freeValue, s[1])
}

// hostModuleNormalize implements env.host_module_normalize(base, name): it
// returns a malloc'd copy of name with any "./" prefix removed.
func hostModuleNormalize(ctx context.Context, m api.Module, s []uint64) {
	c := currentCall(ctx)
	if c == nil {
		s[0] = 0
		return
	}
	name := strings.TrimPrefix(readCString(m.Memory(), uint32(s[1])), "./")
	p, err := c.iso.vm.writeBytes(ctx, true, []byte(name))
	if err != nil {
		panic(err)
	}
	s[0] = uint64(p)
}

// hostModuleLoad implements env.host_module_load(name, *len): the source of
// one of Spec.Modules, malloc'd, or 0 when there is no such module.
func hostModuleLoad(ctx context.Context, m api.Module, s []uint64) {
	c := currentCall(ctx)
	if c == nil {
		s[0] = 0
		return
	}
	src, ok := c.iso.spec.Modules[readCString(m.Memory(), uint32(s[0]))]
	if !ok {
		s[0] = 0
		return
	}
	p, err := c.iso.vm.writeBytes(ctx, true, []byte(src))
	if err != nil {
		panic(err)
	}
	c.iso.vm.putU32(uint32(s[1]), uint32(len(src)))
	s[0] = uint64(p)
}

func readCString(mem api.Memory, p uint32) string {
	var out []byte
	for {
		chunk, ok := mem.Read(p, 256)
		if !ok {
			chunk, _ = mem.Read(p, mem.Size()-p)
			if len(chunk) == 0 {
				return string(out)
			}
		}
		for i, b := range chunk {
			if b == 0 {
				return string(append(out, chunk[:i]...))
			}
		}
		out = append(out, chunk...)
		p += uint32(len(chunk))
		if len(out) > 1<<20 {
			return string(out)
		}
	}
}

// hostInterrupt implements env.host_interrupt, which QuickJS polls during
// execution: a done call context interrupts the guest with an uncatchable
// "interrupted" error, mapped to ErrTimeout. It is also the loop checks'
// yield (instrument.go) and tells a Yielder host.
func hostInterrupt(ctx context.Context, m api.Module, s []uint64) {
	s[0] = 0
	c := currentCall(ctx)
	if c == nil {
		return
	}
	if y, ok := c.host.(Yielder); ok {
		y.Yield()
	}
	if c.ctx.Err() != nil {
		s[0] = 1
	}
}

// encodeStateList renders state entries as the JSON array of [key, value]
// pairs that env.state.list and the wasm ABI's state_list return; a value
// that is not valid JSON reads as null.
func encodeStateList(kvs []KV) string {
	var sb strings.Builder
	sb.WriteByte('[')
	for i, kv := range kvs {
		if i > 0 {
			sb.WriteByte(',')
		}
		k, _ := json.Marshal(kv.Key)
		sb.WriteByte('[')
		sb.Write(k)
		sb.WriteByte(',')
		if json.Valid(kv.Value) {
			sb.Write(kv.Value)
		} else {
			sb.WriteString("null")
		}
		sb.WriteByte(']')
	}
	sb.WriteByte(']')
	return sb.String()
}
