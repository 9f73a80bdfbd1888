package isolate

import (
	"context"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU is the calling thread's CPU time and minor page faults.
func threadCPU() (time.Duration, int64) {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	var ru syscall.Rusage
	_ = syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru)
	return time.Duration(ts.Nano()), ru.Minflt
}

// firstCallSteps are the steps BenchmarkFirstCall times on one restore.
var firstCallSteps = []string{
	"instantiate", "map", "hot", "touch", "state", "limits",
	"configure1", "configure2", "fetch1", "fetch2", "close",
}

// BenchmarkFirstCall restores sessions from a template step by step, with
// the reservation pool (pool.go) off and on, and reports each step's
// thread CPU time in µs and minor faults per restore, so the first call
// into JavaScript after a restore can be told from the second:
//
//	go test -run '^$' -bench BenchmarkFirstCall -benchtime 500x ./internal/isolate
//
// FIRSTCALL_TOUCH=read reads one byte of every template page before the
// first call ("touch"; the evidence for pool.go's why), =populate has
// the kernel map them all (MADV_POPULATE_READ) instead.
func BenchmarkFirstCall(b *testing.B) {
	for _, off := range []bool{true, false} {
		b.Run(map[bool]string{true: "pool=off", false: "pool=on"}[off], func(b *testing.B) {
			poolOff = off
			defer func() { poolOff = false }()
			benchFirstCall(b)
		})
	}
}

func benchFirstCall(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rt, spec, tmpl := benchTemplate(b)
	ctx := context.Background()
	if tmpl.file == nil {
		b.Skip("no memfd template")
	}
	rt.PrepareRestores() // the restore module's compile, out of the figures
	code := rt.restoreModule()
	// Teach the template its hot pages as the session layer does: the
	// first session's snapshot.
	{
		iso, err := rt.Restore(ctx, spec, nil, tmpl)
		if err != nil {
			b.Fatal(err)
		}
		get(b, iso, newMemHost(), "http://x/p?q=1")
		if _, err := iso.Snapshot(tmpl); err != nil {
			b.Fatal(err)
		}
		_ = iso.Close(ctx)
	}
	cpu := make([]time.Duration, len(firstCallSteps))
	flt := make([]int64, len(firstCallSteps))
	h := newMemHost()
	req := Request{Method: "GET", URL: "http://agent/p?q=1"}
	b.ResetTimer()
	for b.Loop() {
		k := 0
		c0, f0 := threadCPU()
		step := func() {
			c, f := threadCPU()
			cpu[k] += c - c0
			flt[k] += f - f0
			k++
			c0, f0 = threadCPU()
		}
		sp := spec
		sp.SessionID = "s"
		sp, _ = rt.normalize(sp)
		iso, err := rt.instantiate(ctx, sp, code, tmpl.file)
		if err != nil {
			b.Fatal(err)
		}
		step()
		lctx, done := iso.enter(ctx, nil)
		v := iso.vm
		if need := uint32(len(tmpl.image)); need > v.mem.Size() {
			v.mem.Grow((need - v.mem.Size()) / wasmPage)
		}
		reused := v.lin.reused
		if !reused {
			if err := v.lin.mapImage(tmpl.file); err != nil {
				b.Fatal(err)
			}
		}
		iso.base = tmpl
		step()
		if !reused {
			v.lin.populateHot(tmpl)
		}
		step()
		switch os.Getenv("FIRSTCALL_TOUCH") {
		case "read":
			var x byte
			for p := 0; p < len(tmpl.image); p += 4096 {
				x += v.lin.buf[p]
			}
			sink = x
		case "populate":
			_ = syscall.Madvise(v.lin.buf[:len(tmpl.image)], 22)
		}
		step()
		if err := v.restoreState(lctx, tmpl.st); err != nil {
			b.Fatal(err)
		}
		step()
		if err := iso.applyLimits(lctx); err != nil {
			b.Fatal(err)
		}
		step()
		if err := iso.configure(lctx); err != nil {
			b.Fatal(err)
		}
		step()
		if err := iso.configure(lctx); err != nil {
			b.Fatal(err)
		}
		step()
		done()
		if _, err := iso.Fetch(ctx, req, h); err != nil {
			b.Fatal(err)
		}
		step()
		if _, err := iso.Fetch(ctx, req, h); err != nil {
			b.Fatal(err)
		}
		step()
		_ = iso.Close(ctx)
		step()
	}
	for k, name := range firstCallSteps {
		b.ReportMetric(float64(cpu[k].Microseconds())/float64(b.N), name+"-us")
		b.ReportMetric(float64(flt[k])/float64(b.N), name+"-flt")
	}
}

var sink byte
