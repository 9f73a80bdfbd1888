package bench

import "testing"

// TestCPUAcctDirClass: the pooled burst's CPU is read only from a cpuacct
// cgroup of the benchmark's own: none, the root (every process of the
// host), a v2-only line, a malformed line or a path that climbs out of
// the hierarchy give no figure rather than a wrong one.
func TestCPUAcctDirClass(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"2:cpuacct:/b3\n1:cpu:/\n0::/\n", "/b3", true},
		{"3:cpu,cpuacct:/a/b\n", "/a/b", true},
		{"2:cpuacct:/\n", "", false},
		{"0::/x\n", "", false},
		{"", "", false},
		{"garbage\n2:cpuacct\n", "", false},
		{"2:cpuacct:/../../etc\n", "", false},
		{"2:cpuacct:b/c\n", "", false},
		{"2:cpuacctx:/b\n", "", false},
	} {
		got, ok := cpuacctDir(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("cpuacctDir(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
