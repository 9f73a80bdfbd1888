package bench

import (
	"context"
	"time"
)

// interleaved times python3 on the host and create + first python3 in a
// new sandbox turn about, r.N rounds, the host first in even rounds and
// second in odd ones. The back-to-back host loop of warmExec runs python
// with its pages and the CPU caches warm from the run before, which no
// create + first command after other work can have; taken in turns, both
// meet the same machine. Both ratios are reported (docs/PERFORMANCE.md).
func (r *sandboxRun) interleaved(ctx context.Context, res *SandboxResult) {
	if res.BaselinePython == "" {
		return
	}
	var sbx, host []time.Duration
	hostOnce := func() {
		if d, ok := r.hostPython(ctx, res.BaselinePython); ok {
			host = append(host, d)
		}
	}
	sandboxOnce := func() {
		if _, first, ok := r.createFirst(ctx); ok {
			sbx = append(sbx, first)
		}
	}
	for i := range r.N {
		if i%2 == 0 {
			hostOnce()
			sandboxOnce()
		} else {
			sandboxOnce()
			hostOnce()
		}
	}
	res.ExecPythonInterleavedP50Ms, res.BaselinePythonInterleavedP50Ms = ms(pct(sbx, 50)), ms(pct(host, 50))
	if res.BaselinePythonInterleavedP50Ms > 0 {
		res.ExecPythonHostRatioInterleaved = float64(int(res.ExecPythonInterleavedP50Ms/res.BaselinePythonInterleavedP50Ms*100)) / 100
	}
}
