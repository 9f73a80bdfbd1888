//go:build linux

// Package image keeps sandbox templates built from images: a
// content-addressed store of unpacked, read-only layers under the data dir,
// shared by every sandbox of every template that names them, and the
// template records that list a template's layers. It reads OCI image
// layouts and `docker save` archives (with go-containerregistry) and
// directories, treating every archive as hostile (see extractLayer), and
// implements sandbox.Images for the tiers, which stack a writable overlay
// per sandbox on the layers.
package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// Errors (wrapped). Match with errors.Is.
var (
	ErrExists = errors.New("template already exists")
	ErrInUse  = errors.New("template is used by sandboxes")
)

// Template is one image template's record.
type Template struct {
	Name    string    `json:"name"`
	Source  string    `json:"source"` // "oci", "dir", "tar", "debian"
	Layers  []string  `json:"layers"` // layer digests (sha256 hex of the layer tar), bottom first
	Bytes   int64     `json:"bytes"`  // uncompressed bytes of all layers
	Created time.Time `json:"created"`
}

// Store is the template store rooted at a directory.
type Store struct {
	dir    string
	limits Limits
	// InUse, when set, reports whether sandboxes use a template; Delete
	// refuses then.
	InUse func(name string) bool

	mu        sync.Mutex
	templates map[string]*Template
	building  map[string]bool
}

var _ sandbox.Images = (*Store)(nil)

// Open opens (creating) the store in dir and loads its template records.
func Open(dir string, limits Limits) (*Store, error) {
	s := &Store{dir: dir, limits: limits.withDefaults(), templates: map[string]*Template{}, building: map[string]bool{}}
	for _, d := range []string{s.dir, s.layersDir(), s.recordsDir(), s.tmpDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("template store: %w", err)
		}
	}
	// Half-built layers of a crash are garbage.
	if err := os.RemoveAll(s.tmpDir()); err != nil {
		return nil, fmt.Errorf("template store: %w", err)
	}
	if err := os.Mkdir(s.tmpDir(), 0o700); err != nil {
		return nil, fmt.Errorf("template store: %w", err)
	}
	ents, err := os.ReadDir(s.recordsDir())
	if err != nil {
		return nil, fmt.Errorf("template store: %w", err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(s.recordsDir(), e.Name()))
		if err != nil {
			return nil, fmt.Errorf("template store: %w", err)
		}
		var t Template
		if err := json.Unmarshal(b, &t); err != nil || CheckName(t.Name) != nil {
			return nil, fmt.Errorf("template store: record %s is damaged", e.Name())
		}
		s.templates[t.Name] = &t
	}
	return s, nil
}

func (s *Store) layersDir() string  { return filepath.Join(s.dir, "layers") }
func (s *Store) recordsDir() string { return filepath.Join(s.dir, "templates") }
func (s *Store) tmpDir() string     { return filepath.Join(s.dir, "tmp") }

// CheckName validates a template name (api.IDTemplate); "host" is the
// built-in template and cannot be made.
func CheckName(name string) error {
	if p := api.CheckID("name", api.IDTemplate, name); p != nil {
		return p
	}
	if name == sandbox.TemplateHost || name == "gvisor" || name == "base" {
		return api.FieldErrorf(api.KindValidation, "name", "template name %q is reserved: choose another", name)
	}
	return nil
}

// ImageNames lists the templates, sorted; a template whose build steps are
// still running (RunSteps) is left out.
func (s *Store) ImageNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.templates))
	for n := range s.templates {
		if !s.building[n] {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// ImageLayers returns the layer directories of a template, bottom first.
func (s *Store) ImageLayers(name string) ([]string, error) {
	t, ok := s.Get(name)
	if !ok {
		return nil, fmt.Errorf("%q: %w", name, sandbox.ErrUnknownTemplate)
	}
	dirs := make([]string, len(t.Layers))
	for i, l := range t.Layers {
		dirs[i] = filepath.Join(s.layersDir(), l)
	}
	return dirs, nil
}

// Get returns a copy of a template's record.
func (s *Store) Get(name string) (Template, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.templates[name]
	if !ok {
		return Template{}, false
	}
	c := *t
	c.Layers = slices.Clone(t.Layers)
	return c, true
}

// List returns every template's record, sorted by name.
func (s *Store) List() []Template {
	var out []Template
	for _, n := range s.ImageNames() {
		if t, ok := s.Get(n); ok {
			out = append(out, t)
		}
	}
	return out
}

// reserve claims name for a build.
func (s *Store) reserve(name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.templates[name] != nil || s.building[name] {
		return fmt.Errorf("%q: %w", name, ErrExists)
	}
	s.building[name] = true
	return nil
}

func (s *Store) unreserve(name string) {
	s.mu.Lock()
	delete(s.building, name)
	s.mu.Unlock()
}

// layerSource yields one layer's uncompressed tar stream and, when known,
// the digest it must have.
type layerSource struct {
	open func() (io.ReadCloser, error)
	want string // sha256 hex, or ""
}

// build unpacks layers into the store and records the template.
func (s *Store) build(ctx context.Context, name, source string, layers []layerSource) (Template, error) {
	if len(layers) == 0 {
		return Template{}, invalid("the image has no layers")
	}
	if len(layers) > s.limits.MaxLayers {
		return Template{}, invalid("the image has %d layers; the limit is %d (image_max_layers)", len(layers), s.limits.MaxLayers)
	}
	b := &budget{bytes: s.limits.MaxBytes, entries: s.limits.MaxEntries}
	t := Template{Name: name, Source: source, Created: time.Now().UTC()}
	for i, l := range layers {
		if err := ctx.Err(); err != nil {
			return Template{}, err
		}
		before := b.bytes
		digest, err := s.addLayer(l, b)
		if err != nil {
			return Template{}, fmt.Errorf("layer %d: %w", i+1, err)
		}
		t.Layers = append(t.Layers, digest)
		t.Bytes += before - b.bytes
	}
	return s.commit(t)
}

// commit records t on disk and then in the store's index.
func (s *Store) commit(t Template) (Template, error) {
	if err := s.writeRecord(&t); err != nil {
		return Template{}, err
	}
	s.mu.Lock()
	s.templates[t.Name] = &t
	s.mu.Unlock()
	return t, nil
}

func (s *Store) writeRecord(t *Template) error {
	rec, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := writeFileSync(filepath.Join(s.recordsDir(), t.Name+".json"), rec); err != nil {
		return fmt.Errorf("template store: %w", err)
	}
	return nil
}

// addLayer unpacks one layer into a temporary dir and moves it to its
// content address (or drops it when the store has that layer already).
func (s *Store) addLayer(l layerSource, b *budget) (string, error) {
	rc, err := l.open()
	if err != nil {
		return "", invalid("opening the layer: %v", err)
	}
	defer rc.Close()
	tmp, err := os.MkdirTemp(s.tmpDir(), "layer-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return "", err
	}
	digest, err := extractLayer(rc, root, b)
	if err != nil {
		return "", err
	}
	if l.want != "" && l.want != digest {
		return "", invalid("the layer's content is sha256:%s, but the image says sha256:%s", digest, l.want)
	}
	dst := filepath.Join(s.layersDir(), digest)
	if _, err := os.Stat(dst); err == nil {
		return digest, nil // shared with an earlier template
	}
	if err := syncTree(root); err != nil {
		return "", err
	}
	if err := os.Rename(root, dst); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	return digest, syncDir(s.layersDir())
}

// Delete removes a template, refused while sandboxes use it, and then the
// layers no other template names.
func (s *Store) Delete(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.templates[name] == nil {
		return fmt.Errorf("%q: %w", name, sandbox.ErrUnknownTemplate)
	}
	if s.building[name] {
		return fmt.Errorf("%q is being built: %w", name, ErrInUse)
	}
	if s.InUse != nil && s.InUse(name) {
		return fmt.Errorf("%q: %w", name, ErrInUse)
	}
	if err := os.Remove(filepath.Join(s.recordsDir(), name+".json")); err != nil {
		return fmt.Errorf("template store: %w", err)
	}
	delete(s.templates, name)
	used := map[string]bool{}
	for _, t := range s.templates {
		for _, l := range t.Layers {
			used[l] = true
		}
	}
	ents, err := os.ReadDir(s.layersDir())
	if err != nil {
		return fmt.Errorf("template store: %w", err)
	}
	for _, e := range ents {
		if !used[e.Name()] {
			if err := os.RemoveAll(filepath.Join(s.layersDir(), e.Name())); err != nil {
				return fmt.Errorf("template store: %w", err)
			}
		}
	}
	return nil
}

// FromDir makes template name from the directory tree at dir (one layer).
// The tree goes through the same checks as an archive's layer.
func (s *Store) FromDir(ctx context.Context, name, dir string) (Template, error) {
	return s.fromDir(ctx, name, dir, "dir")
}

func (s *Store) fromDir(ctx context.Context, name, dir, source string) (Template, error) {
	if err := s.reserve(name); err != nil {
		return Template{}, err
	}
	defer s.unreserve(name)
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return Template{}, invalid("--from-dir %s is not a directory", dir)
	}
	open := func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(tarDir(dir, pw)) }()
		return pr, nil
	}
	return s.build(ctx, name, source, []layerSource{{open: open}})
}

// tarDir writes the tree at dir as a tar stream (sockets are skipped).
func tarDir(dir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSocket != 0 {
			return nil
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func writeFileSync(p string, b []byte) error {
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return err
	}
	return syncDir(filepath.Dir(p))
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// syncTree flushes a freshly unpacked layer (one syncfs of its filesystem)
// before it is published under its content address.
func syncTree(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return syncfs(f)
}

// UsedBy reports whether a template is in use according to list (the
// sandbox Manager's List): the Store's InUse hook.
func UsedBy(list func() []sandbox.Info) func(name string) bool {
	return func(name string) bool {
		return slices.ContainsFunc(list(), func(i sandbox.Info) bool { return i.Template == name })
	}
}
