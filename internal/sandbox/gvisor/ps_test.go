//go:build linux

package gvisor

import (
	"slices"
	"testing"
)

var psCases = []struct {
	out  string
	pids []int
	cmd0 []string
}{
	{"UID       PID       PPID      C         TTY       STIME     TIME      CMD\n" +
		"65534     1         0         0         ?         07:48     30ms      python3\n" +
		"1000      2         0         4         ?         07:48     20ms      sh -c sleep 9\n", []int{2}, []string{"sh", "-c", "sleep", "9"}},
	// pid 1's relay (initUID) and a root helper are not the sandbox's.
	{"UID PID PPID C TTY STIME TIME CMD\n0 1 0 0 ? 07:48 0s python3\n65534 2 1 0 ? 07:48 0s python3\n" +
		"1000 3 1 0 ? 07:48 0s python3\n0 9 0 0 ? 07:48 0s sh\n1000 7 3 0 ? 07:48 0s sleep\n", []int{3, 7}, []string{"python3"}},
	{"UID PID PPID C STIME TIME CMD\n1000 7 1 0 07:48 0s sleep\n", []int{7}, []string{"sleep"}},
	{"", nil, nil},
	{"UID PID PPID C TTY STIME TIME CMD\n1000 x 1 0 ? 1 1 a\n1000 3\n", nil, nil},
}

// TestParsePS: runsc ps output with and without the TTY column; pid 1, the
// processes of root and initUID, and malformed lines are left out.
func TestParsePS(t *testing.T) {
	for _, tc := range psCases {
		got := parsePS([]byte(tc.out))
		var pids []int
		for _, p := range got {
			pids = append(pids, p.PID)
		}
		if !slices.Equal(pids, tc.pids) || len(got) > 0 && !slices.Equal(got[0].Cmdline, tc.cmd0) {
			t.Errorf("%q: %+v", tc.out, got)
		}
	}
}

func FuzzParsePS(f *testing.F) {
	for _, tc := range psCases {
		f.Add(tc.out)
	}
	f.Fuzz(func(t *testing.T, out string) {
		for _, p := range parsePS([]byte(out)) {
			if p.PID == 1 || len(p.Cmdline) == 0 {
				t.Fatalf("%q: %+v", out, p)
			}
		}
	})
}
