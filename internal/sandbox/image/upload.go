//go:build linux

package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// FromLayerTar makes template name from one layer tar read from r (what
// `agentcloud template create --from-dir` sends: the directory packed by
// the CLI). The tar goes through extractLayer's checks.
func (s *Store) FromLayerTar(ctx context.Context, name string, r io.Reader) (Template, error) {
	if err := s.reserve(name); err != nil {
		return Template{}, err
	}
	defer s.unreserve(name)
	used := false
	open := func() (io.ReadCloser, error) {
		if used {
			return nil, errors.New("the layer stream was read already")
		}
		used = true
		return io.NopCloser(r), nil
	}
	return s.build(ctx, name, "tar", []layerSource{{open: open}})
}

// FromOCIReader is FromOCI for an archive read from r (an upload): it is
// spooled to the store's temporary dir, at most the image size limit.
func (s *Store) FromOCIReader(ctx context.Context, name string, r io.Reader) (Template, error) {
	if err := CheckName(name); err != nil {
		return Template{}, err
	}
	f, err := os.CreateTemp(s.tmpDir(), "upload-")
	if err != nil {
		return Template{}, err
	}
	defer os.Remove(f.Name())
	n, err := io.Copy(f, io.LimitReader(r, s.limits.MaxBytes+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Template{}, fmt.Errorf("receiving the archive: %w", err)
	}
	if n > s.limits.MaxBytes {
		return Template{}, invalid("the archive is larger than the image limit of %d bytes (images.max_bytes)", s.limits.MaxBytes)
	}
	return s.FromOCI(ctx, name, f.Name())
}
