//go:build linux

package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// Build steps (template create --run): shell commands run, in order, in a
// build sandbox (sandbox.Spec.Build: root of the sandbox's user namespace
// on the process tier, of the sandbox's kernel on the gVisor tier, with the
// capabilities package managers need) on the
// template just made; the sandbox's overlay upper dir then becomes the
// template's top layer, content-addressed like every other, with the
// overlay's whiteouts (a removed file) and opaque dirs carried over.

// Build step limits, checked in one place (CheckSteps).
const (
	MaxSteps     = 32
	MaxStepBytes = 2048
	// MaxStepsBytes bounds all steps together (they travel in the query
	// string of POST /v1/templates, which is at most 8 KiB).
	MaxStepsBytes = 6144
	// DefaultBuildTimeout bounds a whole build when the caller gives none.
	DefaultBuildTimeout = 15 * time.Minute
	// stepTail is how much of a failed step's output the error keeps.
	stepTail = 2048
)

// CheckSteps validates build steps: at most MaxSteps, each non-empty, at
// most MaxStepBytes, without NUL, at most MaxStepsBytes together.
func CheckSteps(steps []string) error {
	if len(steps) > MaxSteps {
		return api.FieldErrorf(api.KindValidation, "run", "%d build steps; the limit is %d (join commands with && in one step)", len(steps), MaxSteps)
	}
	total := 0
	for _, s := range steps {
		total += len(s)
	}
	if total > MaxStepsBytes {
		return api.FieldErrorf(api.KindValidation, "run", "the build steps are %d bytes together; the limit is %d (put long scripts in the image or a file the steps run)", total, MaxStepsBytes)
	}
	for i, s := range steps {
		field := fmt.Sprintf("run[%d]", i)
		switch {
		case strings.TrimSpace(s) == "":
			return api.FieldErrorf(api.KindValidation, field, "build step %d is empty: give a shell command", i+1)
		case len(s) > MaxStepBytes:
			return api.FieldErrorf(api.KindValidation, field, "build step %d is %d bytes; the limit is %d (put long scripts in the image)", i+1, len(s), MaxStepBytes)
		case strings.ContainsRune(s, 0):
			return api.FieldErrorf(api.KindValidation, field, "build step %d contains a NUL byte", i+1)
		}
	}
	return nil
}

// StepError is a build step that failed: it exited non-zero, or the build
// ran out of time (Err wraps sandbox.ErrTimeout) or hit a limit.
type StepError struct {
	Step int    // 0-based
	Cmd  string // the step
	Code int    // exit code (-1 if it did not exit)
	Tail string // the end of its output (stdout and stderr)
	Err  error
}

func (e *StepError) Error() string {
	why := fmt.Sprintf("exited with code %d", e.Code)
	if e.Err != nil {
		why = e.Err.Error()
	}
	return fmt.Sprintf("build step %d (%s) %s; output ends with:\n%s", e.Step+1, e.Cmd, why, e.Tail)
}

func (e *StepError) Unwrap() error { return e.Err }

// Problem is the error's problem+json form (template-build-failed).
func (e *StepError) Problem() *api.Problem {
	return api.FieldErrorf(api.KindBuildFailed, fmt.Sprintf("run[%d]", e.Step), "%s", e.Error())
}

// Sandboxes is the part of the sandbox Manager a build uses.
type Sandboxes interface {
	Create(ctx context.Context, id string, spec sandbox.Spec) (sandbox.Sandbox, error)
	Delete(ctx context.Context, id string) error
}

// BuildOptions are a build's sandbox and its bounds.
type BuildOptions struct {
	Sandboxes Sandboxes
	// Spec is the build sandbox's spec (labels such as the owner, limits,
	// the tier: the process tier when empty); RunSteps sets its template,
	// Build and Timeout.
	Spec sandbox.Spec
	// Timeout bounds the whole build; 0 means DefaultBuildTimeout.
	Timeout time.Duration
}

// RunSteps runs steps in a build sandbox on template name (just made by
// the caller) and adds what they wrote as the template's top layer. The
// template is hidden (not listed, so no one else's sandbox starts on it)
// until it is done, and deleted when a step fails or the build cannot
// finish.
func (s *Store) RunSteps(ctx context.Context, name string, steps []string, o BuildOptions) (t Template, err error) {
	if err := CheckSteps(steps); err != nil {
		return Template{}, err
	}
	s.mu.Lock()
	if s.templates[name] == nil || s.building[name] {
		s.mu.Unlock()
		return Template{}, fmt.Errorf("%q: %w", name, sandbox.ErrUnknownTemplate)
	}
	s.building[name] = true
	s.mu.Unlock()
	defer func() {
		s.unreserve(name)
		if err != nil {
			if derr := s.Delete(name); derr != nil && !errors.Is(derr, sandbox.ErrUnknownTemplate) {
				err = fmt.Errorf("%w (and removing the template: %v)", err, derr)
			}
		}
	}()
	if len(steps) == 0 {
		t, _ = s.Get(name)
		return t, nil
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultBuildTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	spec := o.Spec
	if spec.Tier == "" {
		spec.Tier = sandbox.TierProcess
	}
	spec.Template, spec.Build, spec.Timeout = name, true, timeout
	sb, err := o.Sandboxes.Create(ctx, "", spec)
	if err != nil {
		return Template{}, fmt.Errorf("build sandbox: %w", err)
	}
	defer func() { _ = o.Sandboxes.Delete(context.WithoutCancel(ctx), sb.ID()) }()
	for i, step := range steps {
		out := &tail{max: stepTail}
		code, err := sb.Exec(ctx, sandbox.ExecSpec{Cmd: "/bin/sh", Args: []string{"-c", step}, Env: map[string]string{"HOME": "/root"}}, out, out)
		if err != nil || code != 0 {
			if err != nil && code == 0 {
				code = -1
			}
			return Template{}, &StepError{Step: i, Cmd: step, Code: code, Tail: out.String(), Err: err}
		}
	}
	// Frozen while its writes are read: nothing changes the upper dir.
	if err := sb.Pause(ctx); err != nil {
		return Template{}, fmt.Errorf("build sandbox: %w", err)
	}
	upper, err := sandbox.UpperDir(sb)
	if err != nil {
		return Template{}, fmt.Errorf("build sandbox: %w", err)
	}
	return s.addUpperLayer(ctx, name, upper)
}

// addUpperLayer stores the overlay upper dir as template name's new top
// layer (through the same checks as any layer) and rewrites its record.
func (s *Store) addUpperLayer(ctx context.Context, name, upper string) (Template, error) {
	t, ok := s.Get(name)
	if !ok {
		return Template{}, fmt.Errorf("%q: %w", name, sandbox.ErrUnknownTemplate)
	}
	if len(t.Layers)+1 > s.limits.MaxLayers {
		return Template{}, invalid("the template has %d layers; its build steps would make one more than the limit of %d (image_max_layers)", len(t.Layers), s.limits.MaxLayers)
	}
	if err := ctx.Err(); err != nil {
		return Template{}, err
	}
	b := &budget{bytes: s.limits.MaxBytes - t.Bytes, entries: s.limits.MaxEntries}
	before := b.bytes
	open := func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(tarUpper(upper, pw)) }()
		return pr, nil
	}
	digest, err := s.addLayer(layerSource{open: open}, b)
	if err != nil {
		return Template{}, fmt.Errorf("build steps' layer: %w", err)
	}
	t.Layers = append(t.Layers, digest)
	t.Bytes += before - b.bytes
	return s.commit(t)
}

// tarUpper writes an overlay upper dir as an OCI layer: a whiteout (a 0/0
// character device) becomes .wh.NAME, an opaque dir (user.overlay.opaque)
// gets .wh..wh..opq; other overlay xattrs are dropped. Any other device
// node is refused (a build sandbox cannot make one). Sockets are skipped.
func tarUpper(dir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		mode := fi.Mode()
		switch {
		case mode&fs.ModeSocket != 0:
			return nil
		case mode&fs.ModeCharDevice != 0:
			st, ok := fi.Sys().(*syscall.Stat_t)
			if !ok || st.Rdev != 0 {
				return invalid("the build left a device node at /%s", rel)
			}
			return tw.WriteHeader(&tar.Header{Name: pathJoin(rel, ".wh."+filepath.Base(p)), Typeflag: tar.TypeReg, Mode: 0o644, ModTime: fi.ModTime()})
		case mode&fs.ModeDevice != 0:
			return invalid("the build left a device node at /%s", rel)
		}
		link := ""
		if mode&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name, hdr.Uname, hdr.Gname = rel, "", ""
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.IsDir() {
			if opaque(p) {
				return tw.WriteHeader(&tar.Header{Name: rel + "/.wh..wh..opq", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: fi.ModTime()})
			}
			return nil
		}
		if !mode.IsRegular() {
			return nil
		}
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), p)
		defer f.Close()
		_, err = io.CopyN(tw, f, fi.Size())
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// pathJoin is the tar name of base beside the entry rel.
func pathJoin(rel, base string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i+1] + base
	}
	return base
}

// opaque reports whether overlayfs marked the upper dir p opaque.
func opaque(p string) bool {
	buf := make([]byte, 8)
	for _, attr := range []string{"user.overlay.opaque", "trusted.overlay.opaque"} {
		n, err := unix.Lgetxattr(p, attr, buf)
		if err == nil && n == 1 && buf[0] == 'y' {
			return true
		}
	}
	return false
}

// tail keeps the last max bytes written to it.
type tail struct {
	buf []byte
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string { return string(t.buf) }
