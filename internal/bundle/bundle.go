package bundle

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"iter"
	"maps"
	"path"
	"slices"
	"strings"
)

// Bundle is a validated agent bundle. Treat it as immutable: Digest is
// computed once, over Files as they were loaded.
type Bundle struct {
	// Manifest is the parsed agent.json, with defaults filled in; its
	// fields are promoted (b.Name is b.Manifest.Name).
	Manifest
	// Files maps slash-separated paths relative to the bundle root to
	// contents; agent.json is among them. Use Paths or All to iterate in
	// sorted order.
	Files map[string][]byte
	// Digest is "sha256:<hex>" over the canonical encoding described in the
	// package documentation.
	Digest string
}

// FromFiles builds a bundle from paths and contents, checking the same
// limits and rules as the loaders. The map and the contents are copied.
func FromFiles(files map[string][]byte) (*Bundle, error) {
	cp := make(map[string][]byte, len(files))
	for p, c := range files {
		cp[p] = slices.Clone(c)
		if cp[p] == nil {
			cp[p] = []byte{}
		}
	}
	b, err := newBundle(cp)
	if err != nil {
		return nil, fmt.Errorf("bundle from files: %w", err)
	}
	return b, nil
}

// Paths returns the file paths in byte order.
func (b *Bundle) Paths() []string {
	return slices.Sorted(maps.Keys(b.Files))
}

// All iterates over the files in byte order of their paths.
func (b *Bundle) All() iter.Seq2[string, []byte] {
	return func(yield func(string, []byte) bool) {
		for _, p := range b.Paths() {
			if !yield(p, b.Files[p]) {
				return
			}
		}
	}
}

// Size is the sum of the file sizes in bytes.
func (b *Bundle) Size() int64 {
	var n int64
	for _, c := range b.Files {
		n += int64(len(c))
	}
	return n
}

// EntryFile returns the contents of the manifest's entry file.
func (b *Bundle) EntryFile() []byte { return b.Files[b.Entry] }

// newBundle validates files, which it takes ownership of, and builds the
// bundle.
func newBundle(files map[string][]byte) (*Bundle, error) { return newBundleMode(files, false) }

// newBundleMode is newBundle; source accepts a TypeScript or JSX entry
// (LoadSourceDir).
func newBundleMode(files map[string][]byte, source bool) (*Bundle, error) {
	if len(files) > MaxFiles {
		return nil, fmt.Errorf("%w: %d files, the maximum is %d", ErrTooManyFiles, len(files), MaxFiles)
	}
	var total int64
	for p, c := range files {
		if why := pathProblem(p); why != "" {
			return nil, fmt.Errorf("file %q: %w: %s", p, ErrUnsafePath, why)
		}
		total += int64(len(c))
	}
	if total > MaxTotalSize {
		return nil, fmt.Errorf("%w: %d bytes, the maximum is %d", ErrTooLarge, total, MaxTotalSize)
	}
	if err := checkTree(files); err != nil {
		return nil, err
	}
	data, ok := files[ManifestName]
	if !ok {
		return nil, noManifest(files)
	}
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("%s: %w: %d bytes, the maximum is %d", ManifestName, ErrTooLarge, len(data), MaxManifestSize)
	}
	m, p, err := parseMode(data, source)
	if err != nil {
		return nil, err
	}
	if _, ok := files[m.Entry]; !ok {
		p.add("entry", fmt.Sprintf("file %q is not in the bundle", m.Entry), entryFix(files, m.Runtime))
		return nil, p.err()
	}
	return &Bundle{Manifest: m, Files: files, Digest: digest(files)}, nil
}

// checkTree rejects a path that is both a file and a directory ("a" and
// "a/b"), which no file system can hold.
func checkTree(files map[string][]byte) error {
	for p := range files {
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if _, ok := files[dir]; ok {
				return fmt.Errorf("file %q: %w: %q is also a file", p, ErrDuplicatePath, dir)
			}
		}
	}
	return nil
}

func noManifest(files map[string][]byte) error {
	for _, p := range slices.Sorted(maps.Keys(files)) {
		if path.Base(p) == ManifestName {
			dir := path.Dir(p)
			return fmt.Errorf("%w: found %s; make %s the root (for a tar.gz: tar -czf bundle.tgz -C %s .)", ErrNoManifest, p, dir, dir)
		}
	}
	return fmt.Errorf("%w: add one naming the agent and its entry file", ErrNoManifest)
}

// entryFix suggests files that could be the entry.
func entryFix(files map[string][]byte, rt Runtime) string {
	var cands []string
	for _, p := range slices.Sorted(maps.Keys(files)) {
		ext := path.Ext(p)
		if (rt == RuntimeWASM && ext == ".wasm") || (rt != RuntimeWASM && (ext == ".js" || ext == ".mjs" || IsSourceEntry(p))) {
			cands = append(cands, p)
		}
	}
	switch {
	case len(cands) == 0:
		return "add the file to the bundle"
	case len(cands) > 5:
		cands = append(cands[:5], "...")
	}
	return "add the file, or point entry at one of: " + strings.Join(cands, ", ")
}

// digestDomain starts the canonical encoding; bump it if the encoding
// changes.
const digestDomain = "agentcloud-bundle-v1\n"

func digest(files map[string][]byte) string {
	h := sha256.New()
	var n [8]byte
	u64 := func(v int) {
		binary.BigEndian.PutUint64(n[:], uint64(v))
		h.Write(n[:])
	}
	h.Write([]byte(digestDomain))
	u64(len(files))
	for _, p := range slices.Sorted(maps.Keys(files)) {
		u64(len(p))
		h.Write([]byte(p))
		u64(len(files[p]))
		h.Write(files[p])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
