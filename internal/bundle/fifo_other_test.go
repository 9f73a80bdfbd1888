//go:build !unix

package bundle

import "testing"

func mkfifo(t *testing.T, _ string) { t.Skip("named pipes need a unix system") }
