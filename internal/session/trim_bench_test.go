package session

import (
	"bytes"
	"os"
	"runtime/debug"
	"strconv"
	"testing"
	"time"
)

// BenchmarkLiveSessionMemory creates 200 live sessions (one request each)
// and reports the process RSS they add, per session, right after (some
// already trimmed) and once every fresh-session trim has run.
func BenchmarkLiveSessionMemory(b *testing.B) {
	m := openManager(b, b.TempDir(), func(c *testConfig) { c.TrimAfter = time.Hour })
	deploy(b, m, counterManifest, `export default { fetch() { return new Response("hello") } }`)
	mustCall(b, m, "counter", "warm", "/")
	const n = 200
	for i := 0; b.Loop(); i++ {
		debug.FreeOSMemory()
		r0 := rssKiB()
		trims0 := m.Stats().Trims
		for k := range n {
			mustCall(b, m, "counter", "s"+strconv.Itoa(i)+"-"+strconv.Itoa(k), "/")
		}
		debug.FreeOSMemory()
		r1 := rssKiB()
		deadline := time.Now().Add(10 * time.Second)
		for m.Stats().Trims-trims0 < n && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		debug.FreeOSMemory()
		r2 := rssKiB()
		b.ReportMetric(float64(r1-r0)/n, "rss-KiB/session-after-requests")
		b.ReportMetric(float64(r2-r0)/n, "rss-KiB/session-trimmed")
		for k := range n {
			_ = m.Hibernate(b.Context(), "counter", "s"+strconv.Itoa(i)+"-"+strconv.Itoa(k))
		}
	}
}

// rssKiB is this process's resident set size.
func rssKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			kb, _ := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(v), []byte("kB")))), 10, 64)
			return kb
		}
	}
	return 0
}
