package bench

import "testing"

// TestParseRollupClass checks the smaps_rollup reader behind
// live_session_pss_kib and live_session_private_kib on the kernel's format
// and on text that is not it: lines without a unit, negative, huge or
// non-numeric sizes, and fields it does not count are skipped, never
// counted.
func TestParseRollupClass(t *testing.T) {
	for _, c := range []struct {
		name string
		in   string
		want rollup
	}{
		{"kernel", "55d0c0a00000-7ffc1b7f9000 ---p 00000000 00:00 0    [rollup]\nRss:              129876 kB\nPss:               98765 kB\nPss_Anon:          50000 kB\nShared_Clean:      30000 kB\nPrivate_Clean:      1024 kB\nPrivate_Dirty:     70000 kB\nSwap:                  0 kB\n",
			rollup{pss: 98765 << 10, private: (1024 + 70000) << 10}},
		{"empty", "", rollup{}},
		{"no unit", "Pss: 12\nPrivate_Dirty: 7 MB\n", rollup{}},
		{"negative", "Pss: -5 kB\nPrivate_Dirty: -1 kB\n", rollup{}},
		{"huge", "Pss: 99999999999999999999 kB\nPrivate_Clean: 4398046511105 kB\n", rollup{}},
		{"garbage", "Pss: x kB\n\x00\x01 kB\nPrivate_Dirty:: 4 kB\nPss_Dirty: 8 kB\n", rollup{}},
		{"last wins for Pss", "Pss: 1 kB\nPss: 2 kB\n", rollup{pss: 2 << 10}},
	} {
		if got := parseRollup([]byte(c.in)); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
	if r := memRollup(); r.pss <= 0 || r.private <= 0 {
		t.Errorf("this process's rollup: %+v", r)
	}
}
