// Package srcsum sums a Go package's sources, so that a generated artifact
// built from them (the process tier's embedded sandbox init) can be checked
// against the sources it came from.
package srcsum

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// Sum is the SHA-256 (hex) of the Go files in dir, test files left out,
// each as its base name, a newline and its contents, in name order.
func Sum(dir string) (string, error) {
	s, err := SumFS(os.DirFS(dir), ".")
	if err != nil {
		return "", fmt.Errorf("sum %s: %w", dir, err)
	}
	return s, nil
}

// SumFS is Sum of the directory dir in fsys (an embedded copy of the
// sources, for one).
func SumFS(fsys fs.FS, dir string) (string, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.go"))
	if err != nil {
		return "", err
	}
	names = slices.DeleteFunc(names, func(n string) bool { return strings.HasSuffix(n, "_test.go") })
	if len(names) == 0 {
		return "", fmt.Errorf("no Go files in %s", dir)
	}
	slices.Sort(names)
	h := sha256.New()
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return "", err
		}
		h.Write([]byte(path.Base(n) + "\n"))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
