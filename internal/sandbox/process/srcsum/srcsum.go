// Package srcsum sums a Go package's sources, so that a generated artifact
// built from them (the process tier's embedded sandbox init) can be checked
// against the sources it came from.
package srcsum

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Sum is the SHA-256 (hex) of the Go files in dir, test files left out,
// each as its base name, a newline and its contents, in name order.
func Sum(dir string) (string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return "", fmt.Errorf("sum %s: %w", dir, err)
	}
	if len(names) == 0 {
		return "", fmt.Errorf("sum %s: no Go files", dir)
	}
	slices.Sort(names)
	h := sha256.New()
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		b, err := os.ReadFile(n)
		if err != nil {
			return "", fmt.Errorf("sum %s: %w", dir, err)
		}
		h.Write([]byte(filepath.Base(n) + "\n"))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
