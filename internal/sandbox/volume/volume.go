// Package volume keeps named persistent volumes for sandboxes: directories
// under the node's data dir, each owned by one principal (names are unique
// per owner, so another tenant's volume cannot even be named), bounded by a
// quota in bytes (allocated blocks, the check the workspace quota uses)
// and a count per owner, durable across kill -9 (a volume exists once its
// directory has been renamed into place and synced), and refused deletion
// while a sandbox mounts it or a create that mounts it is under way.
//
// It does not mount anything (the sandbox tiers do, from
// sandbox.VolumeMount) and does not authorize (the HTTP layer asks Cedar).
package volume

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
)

// Errors, matched with errors.Is.
var (
	ErrNotFound = errors.New("volume not found")
	ErrExists   = errors.New("volume already exists")
	ErrInUse    = errors.New("volume in use")
	ErrQuota    = errors.New("volume quota exceeded")
)

// Limits bound volumes: MaxBytes per volume (the default size), MaxPerOwner
// volumes per owner.
type Limits struct {
	MaxBytes    int64
	MaxPerOwner int
}

// Volume is one named volume.
type Volume struct {
	Name       string    `json:"name"`
	Owner      string    `json:"owner"`
	LimitBytes int64     `json:"limit_bytes"`
	Created    time.Time `json:"created"`
	// Dir is the host directory holding the files (not persisted: it
	// follows from the store's root).
	Dir string `json:"-"`
}

// DataUID and DataGID own a new volume's root on disk: the sandbox user
// (the process tier maps on-disk ids into each sandbox's namespace, so
// the sandbox user of every sandbox owns it).
const (
	DataUID = sandbox.SandboxUID
	DataGID = sandbox.SandboxGID
)

// Store keeps the volumes of one node under root.
type Store struct {
	root string
	lim  Limits
	now  func() time.Time

	// MountedBy, if set, lists the sandboxes that mount the volume whose
	// data dir is dir (the sandbox Manager's records); Delete refuses
	// while any do.
	MountedBy func(dir string) []string

	mu    sync.Mutex
	vols  map[string]Volume // key -> volume
	holds map[string]int    // key -> creates under way that mount it
}

const metaFile = "volume.json"

// Open loads the volumes under root (creating it), removing what a crash
// left half made or half deleted.
func Open(root string, lim Limits) (*Store, error) {
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = 1 << 30
	}
	if lim.MaxPerOwner <= 0 {
		lim.MaxPerOwner = 16
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("volumes: %w", err)
	}
	s := &Store{root: root, lim: lim, now: time.Now, vols: map[string]Volume{}, holds: map[string]int{}}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("volumes: %w", err)
	}
	for _, e := range ents {
		p := filepath.Join(root, e.Name())
		if strings.HasPrefix(e.Name(), ".") {
			_ = os.RemoveAll(p) // an unfinished create or delete
			continue
		}
		b, err := os.ReadFile(filepath.Join(p, metaFile))
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", e.Name(), err)
		}
		var v Volume
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("volume %s: %w", e.Name(), err)
		}
		if key(v.Owner, v.Name) != e.Name() {
			return nil, fmt.Errorf("volume %s: its record names %s of %s", e.Name(), v.Name, v.Owner)
		}
		v.Dir = filepath.Join(p, "data")
		s.vols[e.Name()] = v
	}
	return s, nil
}

// Limits are the store's bounds.
func (s *Store) Limits() Limits { return s.lim }

// key names owner's volume name on disk: owners are SPIFFE IDs, so the
// directory is a hash of both.
func key(owner, name string) string {
	h := sha256.Sum256([]byte(owner + "\x00" + name))
	return hex.EncodeToString(h[:20])
}

// Create makes owner's volume name with a quota of limitBytes (0: the
// maximum). The volume is durable when Create returns.
func (s *Store) Create(owner, name string, limitBytes int64) (Volume, error) {
	if limitBytes == 0 {
		limitBytes = s.lim.MaxBytes
	}
	if limitBytes < 1<<20 || limitBytes > s.lim.MaxBytes {
		return Volume{}, fmt.Errorf("%w: size %d bytes: want from 1 MiB to %d bytes (volumes.max_bytes)", ErrQuota, limitBytes, s.lim.MaxBytes)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(owner, name)
	if _, ok := s.vols[k]; ok {
		return Volume{}, fmt.Errorf("volume %s: %w", name, ErrExists)
	}
	n := 0
	for _, v := range s.vols {
		if v.Owner == owner {
			n++
		}
	}
	if n >= s.lim.MaxPerOwner {
		return Volume{}, fmt.Errorf("%w: %d volumes, the most one owner may have (volumes.max_per_owner)", ErrQuota, n)
	}
	v := Volume{Name: name, Owner: owner, LimitBytes: limitBytes, Created: s.now().UTC()}
	tmp := filepath.Join(s.root, ".new-"+rand.Text())
	if err := s.write(tmp, v); err != nil {
		_ = os.RemoveAll(tmp)
		return Volume{}, fmt.Errorf("create volume %s: %w", name, err)
	}
	final := filepath.Join(s.root, k)
	if err := os.Rename(tmp, final); err != nil {
		_ = os.RemoveAll(tmp)
		return Volume{}, fmt.Errorf("create volume %s: %w", name, err)
	}
	if err := syncDir(s.root); err != nil {
		return Volume{}, fmt.Errorf("create volume %s: %w", name, err)
	}
	v.Dir = filepath.Join(final, "data")
	s.vols[k] = v
	return v, nil
}

// write lays out a volume in dir: its record and an empty data dir owned
// by the sandbox user, all synced.
func (s *Store) write(dir string, v Volume) error {
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	if err := os.Chown(data, DataUID, DataGID); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, metaFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Get returns owner's volume name.
func (s *Store) Get(owner, name string) (Volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vols[key(owner, name)]
	if !ok {
		return Volume{}, fmt.Errorf("volume %s: %w", name, ErrNotFound)
	}
	return v, nil
}

// Exists reports whether owner has a volume name.
func (s *Store) Exists(owner, name string) bool {
	_, err := s.Get(owner, name)
	return err == nil
}

// List returns owner's volumes, sorted by name.
func (s *Store) List(owner string) []Volume {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Volume
	for _, v := range s.vols {
		if v.Owner == owner {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b Volume) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Delete removes owner's volume name and its files; it refuses while a
// sandbox mounts it or a create that mounts it is under way (Hold).
func (s *Store) Delete(owner, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(owner, name)
	v, ok := s.vols[k]
	if !ok {
		return fmt.Errorf("volume %s: %w", name, ErrNotFound)
	}
	if s.holds[k] > 0 {
		return fmt.Errorf("volume %s: %w by a sandbox being created", name, ErrInUse)
	}
	if s.MountedBy != nil {
		if ids := s.MountedBy(v.Dir); len(ids) > 0 {
			return fmt.Errorf("volume %s: %w: mounted by %s", name, ErrInUse, strings.Join(ids, ", "))
		}
	}
	gone := filepath.Join(s.root, ".del-"+rand.Text())
	if err := os.Rename(filepath.Join(s.root, k), gone); err != nil {
		return fmt.Errorf("delete volume %s: %w", name, err)
	}
	delete(s.vols, k)
	if err := syncDir(s.root); err != nil {
		return fmt.Errorf("delete volume %s: %w", name, err)
	}
	if err := os.RemoveAll(gone); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete volume %s: %w", name, err)
	}
	return nil
}

// Hold resolves owner's volumes names for a sandbox being created and
// keeps them from being deleted until release is called (after the
// sandbox is created, when the Manager lists it, or failed).
func (s *Store) Hold(owner string, names []string) (vols []Volume, release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(names))
	for _, n := range names {
		k := key(owner, n)
		v, ok := s.vols[k]
		if !ok {
			return nil, nil, fmt.Errorf("volume %s: %w", n, ErrNotFound)
		}
		vols = append(vols, v)
		keys = append(keys, k)
	}
	for _, k := range keys {
		s.holds[k]++
	}
	var once sync.Once
	return vols, func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, k := range keys {
				if s.holds[k]--; s.holds[k] <= 0 {
					delete(s.holds, k)
				}
			}
		})
	}, nil
}

// Usage is the disk space v's files take (allocated blocks).
func Usage(v Volume) (int64, error) { return sandbox.DiskUsage(v.Dir) }

// MountedBy lists, from a Manager's sandbox list, the sandboxes that
// mount the volume whose data dir is dir.
func MountedBy(list func() []sandbox.Info) func(dir string) []string {
	return func(dir string) []string {
		var ids []string
		for _, info := range list() {
			for _, m := range info.Volumes {
				if m.HostDir == dir {
					ids = append(ids, info.ID)
				}
			}
		}
		slices.Sort(ids)
		return ids
	}
}
