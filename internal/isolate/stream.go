package isolate

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"io"
)

// Streamed response bodies. A fetch handler may answer with a Response
// whose body is a ReadableStream; respond (prelude.js) then hands Go a step
// function, and Fetch pulls the stream chunk by chunk within the same call,
// running timers and microtasks between chunks as settle does for any
// promise. With a BodySink (Request.Sink) each chunk goes to it as soon as it
// is produced; without one the chunks are gathered into Response.Body. Either
// way the call's limits hold for the whole stream: MaxBodyBytes for the sum
// of the chunks, the call's context for its time.

// BodySink receives a streamed response body as the agent produces it.
type BodySink interface {
	// Start is called once, with the response head (Body empty), before the
	// first chunk. An error cancels the stream.
	Start(resp Response) error
	// Write passes one chunk on (and flushes it). An error means the
	// client is gone: the stream is canceled and the call ends normally.
	Write(chunk []byte) error
	// Gone is closed when the client went away; a stream waiting for a
	// timer is then canceled at once rather than at its next chunk.
	Gone() <-chan struct{}
}

// ErrClientGone is what settle returns when the sink's client went away
// while the stream waited; the isolate is intact (no guest code was
// interrupted).
var ErrClientGone = errors.New("isolate: the client of a streamed response went away")

// pullStream pulls the response body stream behind step until it ends,
// into sink or, when sink is nil, into resp.Body.
func (i *Isolate) pullStream(ctx context.Context, resp Response, step uint32, sink BodySink) (Response, error) {
	v := i.vm
	max := i.rt.cfg.MaxBodyBytes
	if sink != nil {
		if err := sink.Start(resp); err != nil {
			return resp, i.cancelStream(ctx, step, "the response could not be sent", nil)
		}
		resp.Streamed = true
		i.gone = sink.Gone()
		defer func() { i.gone = nil }()
	}
	total := 0
	for {
		p, err := v.callFn(ctx, step)
		if err != nil {
			return resp, err
		}
		chunk, err := i.settle(ctx, p)
		_ = v.free(ctx, p)
		if errors.Is(err, ErrClientGone) {
			return resp, i.cancelStream(ctx, step, "the client went away", nil)
		}
		if err != nil {
			return resp, err
		}
		if u, err := v.call(ctx, v.f.isUndefined, uint64(chunk)); err != nil || u != 0 {
			_ = v.free(ctx, chunk)
			return resp, err
		}
		b, err := v.arrayBuffer(ctx, false, chunk, max-total)
		_ = v.free(ctx, chunk)
		if err != nil {
			var se *SizeError
			if errors.As(err, &se) {
				se.Size += int64(total)
				se.Limit = int64(max)
				return resp, i.cancelStream(ctx, step, "the response body is over the size limit", fmt.Errorf("%w: %w", ErrResponseTooLarge, se))
			}
			return resp, err
		}
		total += len(b)
		if sink == nil {
			resp.Body = append(resp.Body, b...)
			continue
		}
		if err := sink.Write(b); err != nil {
			return resp, i.cancelStream(ctx, step, "the client went away", nil)
		}
	}
}

// cancelStream cancels the stream behind step with reason (its source's
// cancel runs) and returns cause. A fatal error while canceling wins.
func (i *Isolate) cancelStream(ctx context.Context, step uint32, reason string, cause error) error {
	v := i.vm
	i.gone = nil
	rb, err := v.newString(ctx, false, reason)
	if err != nil {
		return errors.Join(cause, err)
	}
	p, err := v.callFn(ctx, step, rb)
	_ = v.free(ctx, rb)
	if err != nil {
		if isFatal(err) {
			return err
		}
		return cause
	}
	r, err := i.settle(ctx, p)
	_ = v.free(ctx, p)
	if err != nil && isFatal(err) {
		return err
	}
	_ = v.free(ctx, r)
	return cause
}

// zcall is the host op behind CompressionStream ("compress") and
// DecompressionStream ("decompress"): format is gzip, deflate (zlib) or
// deflate-raw. Decompressed output over max bytes is refused (a RangeError),
// so a small bomb cannot fill the heap.
func zcall(op, format string, in []byte, max int) ([]byte, error) {
	if op == "compress" {
		var buf bytes.Buffer
		var w io.WriteCloser
		switch format {
		case "gzip":
			w = gzip.NewWriter(&buf)
		case "deflate":
			w = zlib.NewWriter(&buf)
		case "deflate-raw":
			w, _ = flate.NewWriter(&buf, flate.DefaultCompression)
		default:
			return nil, HostErrorf("TypeError", "unsupported compression format %q", format)
		}
		_, _ = w.Write(in)
		_ = w.Close()
		if buf.Len() > max {
			return nil, HostErrorf("RangeError", "CompressionStream: output is %v bytes", &SizeError{Size: int64(buf.Len()), Limit: int64(max)})
		}
		return buf.Bytes(), nil
	}
	var r io.Reader
	var err error
	switch format {
	case "gzip":
		r, err = gzip.NewReader(bytes.NewReader(in))
	case "deflate":
		r, err = zlib.NewReader(bytes.NewReader(in))
	case "deflate-raw":
		r = flate.NewReader(bytes.NewReader(in))
	default:
		return nil, HostErrorf("TypeError", "unsupported compression format %q", format)
	}
	if err != nil {
		return nil, HostErrorf("TypeError", "DecompressionStream: %v", err)
	}
	out, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, HostErrorf("TypeError", "DecompressionStream: %v", err)
	}
	if len(out) > max {
		return nil, HostErrorf("RangeError", "DecompressionStream: output is over %d bytes", max)
	}
	return out, nil
}
