package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// errCount counts failures and keeps the first.
type errCount struct {
	n     atomic.Int64
	once  sync.Once
	first string
}

func (e *errCount) add(err error) {
	e.n.Add(1)
	e.once.Do(func() { e.first = describe(err) })
}

// parallel runs f(0..n-1) on conc goroutines.
func parallel(conc, n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}

// pct is the p-th percentile of d in whole microseconds.
func pct(d []time.Duration, p int) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[min(len(s)-1, len(s)*p/100)].Microseconds())
}

// pctIn is the p-th percentile of d in units of unit.
func pctIn(d []time.Duration, p int, unit time.Duration) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[min(len(s)-1, len(s)*p/100)]) / float64(unit)
}

// ms turns pct's microseconds into milliseconds.
func ms(us float64) float64 { return float64(int64(us)) / 1000 }

func heapBytes() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// rssBytes is this process's resident set size.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(string(v)), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// rollup is what /proc/self/smaps_rollup says of the process's memory, in
// bytes: its proportional set size and the pages only one of its mappings
// holds.
type rollup struct{ pss, private int64 }

// memRollup reads /proc/self/smaps_rollup (zero where it is unavailable).
func memRollup() rollup {
	b, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		return rollup{}
	}
	return parseRollup(b)
}

// parseRollup reads the Pss and Private_* lines ("Name:  123 kB") of an
// smaps_rollup text; lines it does not understand are skipped.
func parseRollup(b []byte) rollup {
	var r rollup
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || kb < 0 || kb > 1<<40 {
			continue
		}
		switch f[0] {
		case "Pss:":
			r.pss = kb << 10
		case "Private_Clean:", "Private_Dirty:":
			r.private += kb << 10
		}
	}
	return r
}

// dirBytes is the disk space used under dir.
func dirBytes(dir string) int64 {
	if dir == "" {
		return 0
	}
	var total int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			total += fi.Size()
		}
		return nil
	})
	return total
}

// memUsedBytes is the host's MemTotal - MemAvailable.
func memUsedBytes() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var total, avail int64
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		switch k {
		case "MemTotal":
			total = kb
		case "MemAvailable":
			avail = kb
		}
	}
	return (total - avail) << 10
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
