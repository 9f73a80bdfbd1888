package testdeps

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMissingFailsWhenRequired runs a test that calls Missing in a child
// process, with and without Env: it skips without, fails with.
func TestMissingFailsWhenRequired(t *testing.T) {
	if os.Getenv("TESTDEPS_CHILD") == "1" {
		Missing(t, "no %s here", "frobnicator")
		return
	}
	for _, tc := range []struct {
		env      string
		wantFail bool
		want     string
	}{{"0", false, "--- SKIP"}, {"1", true, "--- FAIL"}} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestMissingFailsWhenRequired$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTDEPS_CHILD=1", Env+"="+tc.env)
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.wantFail || !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), "no frobnicator here") {
			t.Errorf("%s=%s: err %v, output:\n%s", Env, tc.env, err, out)
		}
	}
}
