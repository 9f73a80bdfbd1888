//go:build linux

package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// FromOCI makes template name from the archive at file: a `docker save`
// archive (manifest.json) or an OCI image layout packed in a tar
// (oci-layout, index.json, blobs/). Each layer is unpacked with the checks
// of extractLayer and must match the diff id the image's config names.
func (s *Store) FromOCI(ctx context.Context, name, file string) (Template, error) {
	if err := s.reserve(name); err != nil {
		return Template{}, err
	}
	defer s.unreserve(name)
	img, cleanup, err := s.openArchive(file)
	if err != nil {
		return Template{}, err
	}
	defer cleanup()
	layers, err := img.Layers()
	if err != nil {
		return Template{}, invalid("reading the image's layers: %v", err)
	}
	if len(layers) > s.limits.MaxLayers {
		return Template{}, invalid("the image has %d layers; the limit is %d (image_max_layers)", len(layers), s.limits.MaxLayers)
	}
	srcs := make([]layerSource, len(layers))
	for i, l := range layers {
		diff, err := l.DiffID()
		if err != nil {
			return Template{}, invalid("layer %d: %v", i+1, err)
		}
		if diff.Algorithm != "sha256" {
			return Template{}, invalid("layer %d: digest algorithm %q (want sha256)", i+1, diff.Algorithm)
		}
		srcs[i] = layerSource{open: l.Uncompressed, want: diff.Hex}
	}
	return s.build(ctx, name, "oci", srcs)
}

// openArchive reads a docker save archive, or else an OCI layout tar.
func (s *Store) openArchive(file string) (v1.Image, func(), error) {
	none := func() {}
	f, err := os.Open(file)
	if err != nil {
		return nil, none, invalid("--from-oci: %v", err)
	}
	fi, err := f.Stat()
	f.Close()
	if err != nil || !fi.Mode().IsRegular() {
		return nil, none, invalid("--from-oci %s is not a regular file", file)
	}
	if img, err := tarball.ImageFromPath(file, nil); err == nil {
		if _, err := img.Manifest(); err == nil {
			return img, none, nil
		}
	}
	dir, err := os.MkdirTemp(s.tmpDir(), "oci-")
	if err != nil {
		return nil, none, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	if err := s.unpackLayout(file, dir); err != nil {
		cleanup()
		return nil, none, err
	}
	img, err := layoutImage(dir)
	if err != nil {
		cleanup()
		return nil, none, err
	}
	return img, cleanup, nil
}

// layoutEntry is every name an OCI layout may hold.
var layoutEntry = regexp.MustCompile(`^(oci-layout|index\.json|blobs/?|blobs/sha256/?|blobs/sha256/[0-9a-f]{64})$`)

// unpackLayout copies an OCI layout's files out of the tar at file into
// dir: only regular files and dirs at the layout's own names, within the
// image size limit.
func (s *Store) unpackLayout(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	b := &budget{bytes: s.limits.MaxBytes, entries: s.limits.MaxEntries}
	tr := tar.NewReader(&countingReader{r: f, b: b})
	found := false
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if errors.Is(err, ErrInvalid) {
				return err
			}
			return invalid("--from-oci: not a docker save archive or an OCI layout tar: %v", err)
		}
		name := path.Clean(hdr.Name)
		if name == "." {
			continue
		}
		if !layoutEntry.MatchString(name) {
			return invalid("--from-oci: entry %q is not part of an OCI image layout", hdr.Name)
		}
		b.entries--
		if b.entries < 0 {
			return invalid("the archive has more entries than its limit")
		}
		dst := filepath.Join(dir, filepath.FromSlash(name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return err
			}
			out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return invalid("--from-oci: entry %q: %v", hdr.Name, err)
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				if errors.Is(err, ErrInvalid) {
					return err
				}
				return invalid("--from-oci: entry %q: %v", hdr.Name, err)
			}
			found = found || name == "index.json"
		default:
			return invalid("--from-oci: entry %q is not a regular file or directory", hdr.Name)
		}
	}
	if !found {
		return invalid("--from-oci: the archive has neither manifest.json (docker save) nor index.json (OCI layout)")
	}
	return nil
}

// layoutImage picks the image of an OCI layout: the first manifest of its
// index (following one nested index).
func layoutImage(dir string) (v1.Image, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, invalid("OCI layout: %v", err)
	}
	for range 2 {
		m, err := idx.IndexManifest()
		if err != nil {
			return nil, invalid("OCI layout index: %v", err)
		}
		if len(m.Manifests) == 0 {
			return nil, invalid("OCI layout: the index lists no image")
		}
		d := m.Manifests[0]
		if d.MediaType.IsIndex() {
			if idx, err = idx.ImageIndex(d.Digest); err != nil {
				return nil, invalid("OCI layout: %v", err)
			}
			continue
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, invalid("OCI layout: %v", err)
		}
		return img, nil
	}
	return nil, fmt.Errorf("%w: OCI layout: indexes nested too deep", ErrInvalid)
}
