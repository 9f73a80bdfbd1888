package client

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/agentcloud/agentcloud/api"
)

// Limits DeployDir applies before uploading (the daemon checks the
// bundle's own limits: 2,000 files, 32 MiB in all).
const (
	maxDirFiles = 2000
	maxDirBytes = 32 << 20
)

// skipDirNames are never part of a bundle (as the daemon's loader).
var skipDirNames = map[string]bool{".git": true, "node_modules": true}

// DeployDir packs dir (a directory with agent.json) into the tar.gz
// Deploy takes and deploys it. Directories named .git and node_modules are
// left out; a symbolic link, device, pipe or socket is an error naming the
// file, and reads cannot leave dir.
func (c *Client) DeployDir(ctx context.Context, dir string) (*api.AgentVersion, error) {
	tgz, err := tarGzDir(dir)
	if err != nil {
		return nil, err
	}
	return c.Deploy(ctx, tgz)
}

// tarGzDir packs dir as DeployDir does: regular files only, in lexical
// order, with fixed modes and times, so the same tree gives the same bytes.
func tarGzDir(dir string) ([]byte, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", dir, err)
	}
	defer root.Close()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	fsys := root.FS()
	files, total := 0, int64(0)
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && skipDirNames[d.Name()] {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("file %q is not a regular file (%s): a bundle holds regular files only", p, d.Type())
		}
		if files++; files > maxDirFiles {
			return fmt.Errorf("more than %d files: a bundle holds at most %d", maxDirFiles, maxDirFiles)
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
			return fmt.Errorf("file %q is not a regular file: a bundle holds regular files only", p)
		}
		if total += fi.Size(); total > maxDirBytes {
			return fmt.Errorf("files larger than %d bytes in all: a bundle holds at most %d", maxDirBytes, maxDirBytes)
		}
		if err := tw.WriteHeader(&tar.Header{Name: p, Mode: 0o644, Size: fi.Size(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if n, err := io.Copy(tw, io.LimitReader(f, fi.Size())); err != nil || n != fi.Size() {
			return fmt.Errorf("file %q changed while being packed: %v", p, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("pack %s: %w", dir, err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("pack %s: %w", dir, err)
	}
	return buf.Bytes(), nil
}
