package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"
)

// skipDirs are directories left out when loading: version control and
// package-manager state are never part of a bundle.
var skipDirs = map[string]bool{".git": true, "node_modules": true}

// Archive limits beyond the bundle's own: skipped entries and tar framing
// still have to be read, but not without end. Variables so tests can lower
// them.
var (
	maxArchiveEntries       = 4 * MaxFiles
	maxArchiveBytes   int64 = 2*MaxTotalSize + 16<<20
)

// LoadDir loads the bundle rooted at dir. Directories named .git and
// node_modules are skipped; a symbolic link, device, pipe or socket
// anywhere else is an error, and reads cannot escape dir.
func LoadDir(dir string) (*Bundle, error) { return loadDir(dir, false) }

// LoadSourceDir loads an agent's source directory as LoadDir does, but
// its manifest's entry may also be TypeScript or JSX (IsSourceEntry),
// which a deployable bundle's may not: the result is the input of a build
// (internal/bundle/jsbuild), never a bundle to upload as it is.
func LoadSourceDir(dir string) (*Bundle, error) { return loadDir(dir, true) }

func loadDir(dir string, source bool) (*Bundle, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", dir, err)
	}
	defer root.Close()
	b, err := loadFS(root.FS(), source)
	if err != nil {
		return nil, fmt.Errorf("load bundle %s: %w", dir, err)
	}
	return b, nil
}

// LoadFS loads the bundle rooted at the top of fsys (an embed.FS, say),
// with the same rules as LoadDir.
func LoadFS(fsys fs.FS) (*Bundle, error) { return loadFS(fsys, false) }

func loadFS(fsys fs.FS, source bool) (*Bundle, error) {
	c := newCollector()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && skipDirs[d.Name()] {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("file %q: %w: %s", p, ErrNotRegular, describeMode(d.Type()))
		}
		f, err := fsys.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("file %q: %w: %s", p, ErrNotRegular, describeMode(fi.Mode()))
		}
		return c.add(p, f, fi.Size())
	})
	if err != nil {
		return nil, err
	}
	return newBundleMode(c.files, source)
}

// LoadTarGz loads a bundle from a gzip-compressed tar stream. Entries may
// be prefixed "./"; directory entries are implied by file paths and
// ignored, as are entries under .git and node_modules. Symbolic and hard
// links, devices, absolute paths, ".." elements and repeated paths are
// errors.
func LoadTarGz(r io.Reader) (*Bundle, error) {
	b, err := loadTarGz(r)
	if err != nil {
		return nil, fmt.Errorf("load bundle archive: %w", err)
	}
	return b, nil
}

func loadTarGz(r io.Reader) (*Bundle, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: not gzip-compressed: %w", ErrInvalidArchive, err)
	}
	defer zr.Close()
	zr.Multistream(false) // a bundle is one gzip member; ignore trailing bytes
	lr := &limitedReader{r: zr, n: maxArchiveBytes}
	tr := tar.NewReader(lr)
	c := newCollector()
	c.readErr = ErrInvalidArchive
	for entries := 0; ; entries++ {
		hdr, err := tr.Next()
		if errors.Is(err, tar.ErrInsecurePath) {
			err = nil // checked below, with a clearer message
		}
		switch {
		case err == io.EOF:
			// Read to the end of the gzip member so its checksum is verified.
			if _, err := io.Copy(io.Discard, lr); err != nil {
				if lr.exceeded {
					return nil, fmt.Errorf("%w: archive expands to more than %d bytes", ErrTooLarge, maxArchiveBytes)
				}
				return nil, fmt.Errorf("%w: %w", ErrInvalidArchive, err)
			}
			return newBundle(c.files)
		case lr.exceeded:
			return nil, fmt.Errorf("%w: archive expands to more than %d bytes", ErrTooLarge, maxArchiveBytes)
		case err != nil:
			return nil, fmt.Errorf("%w: %w", ErrInvalidArchive, err)
		case entries >= maxArchiveEntries:
			return nil, fmt.Errorf("%w: more than %d archive entries (leave .git and node_modules out)", ErrTooManyFiles, maxArchiveEntries)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name := hdr.Name
		for strings.HasPrefix(name, "./") {
			name = name[2:]
		}
		if hdr.Typeflag == tar.TypeDir {
			name = strings.TrimSuffix(name, "/")
			if name == "" || name == "." {
				continue
			}
		}
		if why := pathProblem(name); why != "" {
			return nil, fmt.Errorf("tar entry %q: %w: %s", hdr.Name, ErrUnsafePath, why)
		}
		if skipped(name) {
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
		case tar.TypeSymlink:
			return nil, fmt.Errorf("tar entry %q: %w: symbolic link to %q", hdr.Name, ErrNotRegular, hdr.Linkname)
		case tar.TypeLink:
			return nil, fmt.Errorf("tar entry %q: %w: hard link to %q", hdr.Name, ErrNotRegular, hdr.Linkname)
		case tar.TypeChar, tar.TypeBlock:
			return nil, fmt.Errorf("tar entry %q: %w: device", hdr.Name, ErrNotRegular)
		case tar.TypeFifo:
			return nil, fmt.Errorf("tar entry %q: %w: named pipe", hdr.Name, ErrNotRegular)
		default:
			return nil, fmt.Errorf("tar entry %q: %w: unsupported tar type %q", hdr.Name, ErrNotRegular, hdr.Typeflag)
		}
		if err := c.add(name, tr, hdr.Size); err != nil {
			if lr.exceeded {
				return nil, fmt.Errorf("%w: archive expands to more than %d bytes", ErrTooLarge, maxArchiveBytes)
			}
			return nil, err
		}
	}
}

// skipped reports whether p lies under a skipped directory.
func skipped(p string) bool {
	for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
		if skipDirs[path.Base(dir)] {
			return true
		}
	}
	return false
}

// TarGz returns the bundle as a gzip-compressed tar. The output depends
// only on the files: entries are regular files in path order, with mode
// 0644, time zero and no owner.
func (b *Bundle) TarGz() ([]byte, error) {
	var buf bytes.Buffer
	if err := b.WriteTarGz(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteTarGz writes the bundle as TarGz does.
func (b *Bundle) WriteTarGz(w io.Writer) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return fmt.Errorf("write bundle archive: %w", err)
	}
	tw := tar.NewWriter(zw)
	for p, c := range b.All() {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     p,
			Mode:     0o644,
			Size:     int64(len(c)),
			ModTime:  time.Unix(0, 0),
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("write bundle archive: %s: %w", p, err)
		}
		if _, err := tw.Write(c); err != nil {
			return fmt.Errorf("write bundle archive: %s: %w", p, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write bundle archive: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("write bundle archive: %w", err)
	}
	return nil
}

// collector gathers files while enforcing the limits as it reads, so an
// oversized input is refused before it is held in memory.
type collector struct {
	files map[string][]byte
	total int64
	// readErr, if set, is wrapped around read errors (ErrInvalidArchive
	// for a truncated archive).
	readErr error
}

func newCollector() *collector { return &collector{files: map[string][]byte{}} }

func (c *collector) add(p string, r io.Reader, size int64) error {
	if why := pathProblem(p); why != "" {
		return fmt.Errorf("file %q: %w: %s", p, ErrUnsafePath, why)
	}
	if _, dup := c.files[p]; dup {
		return fmt.Errorf("file %q: %w", p, ErrDuplicatePath)
	}
	if len(c.files) >= MaxFiles {
		return fmt.Errorf("%w: more than %d files", ErrTooManyFiles, MaxFiles)
	}
	left := MaxTotalSize - c.total
	if size > left {
		return fmt.Errorf("%w: more than %d bytes (at %s)", ErrTooLarge, MaxTotalSize, p)
	}
	data, err := io.ReadAll(io.LimitReader(r, left+1))
	if err != nil && c.readErr != nil {
		return fmt.Errorf("file %q: %w: %w", p, c.readErr, err)
	}
	if err != nil {
		return fmt.Errorf("file %q: %w", p, err)
	}
	if int64(len(data)) > left {
		return fmt.Errorf("%w: more than %d bytes (at %s)", ErrTooLarge, MaxTotalSize, p)
	}
	c.total += int64(len(data))
	c.files[p] = data
	return nil
}

// limitedReader fails once more than n bytes have been read, and says so.
type limitedReader struct {
	r        io.Reader
	n        int64
	exceeded bool
}

var errArchiveTooLarge = errors.New("archive too large")

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		l.exceeded = true
		return 0, errArchiveTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

func describeMode(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m.IsDir():
		return "directory"
	}
	return "irregular file (" + m.String() + ")"
}
