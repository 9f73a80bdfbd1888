// Package testdeps is for tests that need a tool from outside Go (node and
// npm packages, workerd, tsc, chromium, clang, mmdebstrap): on a
// developer's machine without it they skip, saying how to install it; in
// CI, where scripts/deps.sh installs every one of them, they fail instead,
// so that a test cannot pass there without having run.
package testdeps

import (
	"os"
	"testing"
)

// Env is the environment variable that makes a missing tool a failure
// (.ci/run sets it to 1).
const Env = "AGENTCLOUD_TEST_DEPS_REQUIRED"

// Required reports whether a missing tool fails the test (Env is 1).
func Required() bool { return os.Getenv(Env) == "1" }

// Missing ends t because a tool it needs is not installed: a skip with
// the message, or a failure when Required.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf(Env+"=1, and a tool this test needs is missing: "+format, args...)
	}
	t.Skipf(format, args...)
}
