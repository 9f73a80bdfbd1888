//go:build linux

package image

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrInvalid marks an archive (or directory) refused as an image: a path
// outside the tree, a device node, a hard link out of the tree, an owner
// outside the mapped range, or more bytes, entries or layers than the
// limits allow. Match with errors.Is.
var ErrInvalid = errors.New("invalid image")

// Limits bound what one image may hold.
type Limits struct {
	MaxBytes   int64 // uncompressed bytes over all layers
	MaxLayers  int   // layers per image
	MaxEntries int   // files, dirs and links over all layers
}

// DefaultLimits are used for zero fields.
var DefaultLimits = Limits{MaxBytes: 8 << 30, MaxLayers: 64, MaxEntries: 1 << 20}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultLimits.MaxBytes
	}
	if l.MaxLayers <= 0 {
		l.MaxLayers = DefaultLimits.MaxLayers
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultLimits.MaxEntries
	}
	return l
}

// maxID is the highest uid or gid a layer may name: a sandbox's user
// namespace maps 65536 ids.
const maxID = 65535

// budget is what is left of an image's limits while its layers unpack.
type budget struct {
	bytes   int64
	entries int
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// countingReader fails once more than left bytes have been read: the
// decompression-bomb bound, applied to the uncompressed stream.
type countingReader struct {
	r    io.Reader
	b    *budget
	hash io.Writer
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.b.bytes -= int64(n)
	if c.hash != nil {
		c.hash.Write(p[:n])
	}
	if c.b.bytes < 0 {
		return n, invalid("the image is larger than its limit of uncompressed bytes (image_max_bytes)")
	}
	return n, err
}

// extractLayer unpacks one uncompressed layer tar from r into the new
// directory dest (which must exist and be empty) and returns the sha256 of
// the tar stream (the layer's diff id). Every entry is checked before it
// touches the disk:
//   - names are relative, clean after dropping a leading "./", and never
//     go through "..", and no entry is created through a symlink (each
//     parent is checked with lstat, so a symlink entry cannot redirect a
//     later write out of the tree);
//   - hard links name a regular file already in this layer;
//   - character and block devices are refused; OCI whiteouts (.wh.NAME,
//     .wh..wh..opq) become overlayfs whiteouts (a 0/0 character device,
//     made by us) and opaque-dir xattrs;
//   - setuid, setgid bits are cleared (sandbox roots are nosuid anyway);
//     owners must be within the 65536 ids a sandbox maps;
//   - extended attributes are not applied.
func extractLayer(r io.Reader, dest string, b *budget) (string, error) {
	h := sha256.New()
	cr := &countingReader{r: r, b: b, hash: h}
	tr := tar.NewReader(cr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if errors.Is(err, ErrInvalid) {
				return "", err
			}
			return "", fmt.Errorf("%w: reading the layer: %w", ErrInvalid, err)
		}
		b.entries--
		if b.entries < 0 {
			return "", invalid("the image has more entries than its limit")
		}
		if err := extractEntry(tr, hdr, dest); err != nil {
			return "", err
		}
	}
	// The rest of the stream (tar padding) belongs to the digest.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return "", invalid("reading the layer: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// cleanName checks an entry name and returns it relative to the layer root
// ("" for the root itself).
func cleanName(name string) (string, error) {
	if strings.ContainsRune(name, 0) || len(name) > 4096 {
		return "", invalid("entry name %q is not a usable path", name)
	}
	if strings.HasPrefix(name, "/") {
		return "", invalid("entry %q has an absolute path", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", invalid("entry %q goes up out of the tree (..)", name)
		}
	}
	p := path.Clean(name)
	if p == "." {
		return "", nil
	}
	return p, nil
}

// checkParents refuses a name whose parent directories are not real
// directories inside dest (a symlink, or a file, in the way).
func checkParents(dest, rel string) error {
	dir := dest
	parts := strings.Split(rel, "/")
	for _, part := range parts[:len(parts)-1] {
		dir = filepath.Join(dir, part)
		fi, err := os.Lstat(dir)
		if errors.Is(err, os.ErrNotExist) {
			if err := os.Mkdir(dir, 0o755); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return invalid("entry %q is written through %s, which is not a directory (a symlink?)", rel, strings.TrimPrefix(dir, dest+"/"))
		}
	}
	return nil
}

func extractEntry(tr *tar.Reader, hdr *tar.Header, dest string) error {
	rel, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if hdr.Uid < 0 || hdr.Uid > maxID || hdr.Gid < 0 || hdr.Gid > maxID {
		return invalid("entry %q is owned by %d:%d; owners must be 0 to %d", hdr.Name, hdr.Uid, hdr.Gid, maxID)
	}
	if rel == "" {
		if hdr.Typeflag != tar.TypeDir {
			return invalid("entry %q replaces the root with a non-directory", hdr.Name)
		}
		return setMeta(dest, hdr)
	}
	if err := checkParents(dest, rel); err != nil {
		return err
	}
	target := filepath.Join(dest, rel)
	base := path.Base(rel)
	if strings.HasPrefix(base, ".wh.") {
		return whiteout(dest, rel, base)
	}
	if hdr.Typeflag != tar.TypeDir {
		if err := removeExisting(target); err != nil {
			return err
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		fi, err := os.Lstat(target)
		if err == nil && !fi.IsDir() {
			if err := os.Remove(target); err != nil {
				return err
			}
		}
		if err := os.Mkdir(target, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	case tar.TypeReg: // the reader turns old TypeRegA entries into TypeReg
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			if errors.Is(err, ErrInvalid) {
				return err
			}
			return invalid("entry %q: %v", hdr.Name, err)
		}
	case tar.TypeSymlink:
		if hdr.Linkname == "" || strings.ContainsRune(hdr.Linkname, 0) {
			return invalid("symlink %q has no usable target", hdr.Name)
		}
		return lchown(os.Symlink(hdr.Linkname, target), target, hdr)
	case tar.TypeLink:
		src, err := cleanName(hdr.Linkname)
		if err != nil || src == "" {
			return invalid("hard link %q points out of the tree (%q)", hdr.Name, hdr.Linkname)
		}
		if err := checkParents(dest, src); err != nil {
			return err
		}
		fi, err := os.Lstat(filepath.Join(dest, src))
		if err != nil || !fi.Mode().IsRegular() {
			return invalid("hard link %q points to %q, which is not a regular file earlier in this layer", hdr.Name, hdr.Linkname)
		}
		return os.Link(filepath.Join(dest, src), target)
	case tar.TypeChar, tar.TypeBlock:
		return invalid("entry %q is a device node; images may not carry devices", hdr.Name)
	case tar.TypeFifo:
		if err := unix.Mkfifo(target, 0o600); err != nil {
			return err
		}
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return invalid("entry %q has an unsupported type %q", hdr.Name, string(hdr.Typeflag))
	}
	return setMeta(target, hdr)
}

// removeExisting clears the way for an entry a later one in the same layer
// replaces (tar order wins).
func removeExisting(target string) error {
	if _, err := os.Lstat(target); err == nil {
		return os.RemoveAll(target)
	}
	return nil
}

func lchown(err error, target string, hdr *tar.Header) error {
	if err != nil {
		return err
	}
	return os.Lchown(target, hdr.Uid, hdr.Gid)
}

// setMeta applies owner and mode (without setuid and setgid; the sticky bit
// stays) to a dir, file or fifo.
func setMeta(target string, hdr *tar.Header) error {
	if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	mode := os.FileMode(hdr.Mode) & os.ModePerm
	if hdr.Mode&0o1000 != 0 {
		mode |= os.ModeSticky
	}
	return os.Chmod(target, mode)
}

// whiteout records an OCI whiteout as overlayfs expects it: .wh..wh..opq
// marks its directory opaque; .wh.NAME hides NAME of lower layers with a
// 0/0 character device. Both xattr namespaces are set: user.overlay.* for
// the overlay a sandbox's init mounts in its user namespace, trusted.* for
// one the host mounts.
func whiteout(dest, rel, base string) error {
	dir := filepath.Join(dest, path.Dir(rel))
	if base == ".wh..wh..opq" {
		for _, attr := range []string{"user.overlay.opaque", "trusted.overlay.opaque"} {
			if err := unix.Lsetxattr(dir, attr, []byte("y"), 0); err != nil {
				return fmt.Errorf("opaque dir %s: %w", rel, err)
			}
		}
		return nil
	}
	name := strings.TrimPrefix(base, ".wh.")
	if name == "" || name == "." || name == ".." || strings.HasPrefix(name, ".wh.") {
		return invalid("whiteout %q names nothing", rel)
	}
	target := filepath.Join(dir, name)
	if err := removeExisting(target); err != nil {
		return err
	}
	return unix.Mknod(target, unix.S_IFCHR, 0)
}
