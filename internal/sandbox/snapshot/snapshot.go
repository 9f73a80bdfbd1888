// Package snapshot keeps sandbox snapshots: durable records in the store
// and, per snapshot, a directory under the data dir holding a copy of the
// sandbox's /workspace and, on tiers that can save it, its memory state
// (internal/sandbox's Manager.Snapshot writes them). Snapshots belong to
// the owner of the sandbox they were taken from; each owner's count and
// bytes are capped. Restore makes a new sandbox from one, also after a
// daemon restart.
//
// A snapshot is acknowledged only once its files are complete and its
// record durable: files are written to a temporary directory, renamed into
// place, then the record is written; at start, directories without a
// record (a daemon killed in between) are removed.
package snapshot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/sandbox/volume"
	"github.com/agentcloud/agentcloud/internal/store"
)

// Bucket is the store bucket of snapshot records.
const Bucket = "snapshots"

// Errors, matched with errors.Is.
var (
	ErrNotFound = errors.New("snapshot not found")
	// ErrQuota: the owner has as many snapshots, or bytes in them, as
	// Config allows.
	ErrQuota = errors.New("snapshot quota exceeded")
	// ErrBusy: the snapshot is being restored (delete) or deleted.
	ErrBusy = errors.New("snapshot busy")
)

// Record describes one snapshot.
type Record struct {
	ID       string            `json:"id"`
	Sandbox  string            `json:"sandbox"` // the sandbox it was taken from
	Owner    string            `json:"owner,omitempty"`
	Tier     string            `json:"tier"`
	Template string            `json:"template"`
	Limits   sandbox.Limits    `json:"limits"`
	Env      map[string]string `json:"env,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	// Volumes are the owner's volumes the sandbox mounted (names, not
	// host paths): a restore mounts them again after the same checks as a
	// create (Restore's MountFunc).
	Volumes []volume.Mount `json:"volumes,omitempty"`
	// Remaining is what was left of the sandbox's timeout; a restored
	// sandbox gets it (0: the default).
	Remaining time.Duration `json:"remaining_ns,omitempty"`
	// Memory: the memory state was saved and Restore brings the processes
	// back; Note says why not.
	Memory  bool      `json:"memory"`
	Note    string    `json:"note,omitempty"`
	Bytes   int64     `json:"bytes"`
	Created time.Time `json:"created"`
}

// Config configures a Service.
type Config struct {
	Manager *sandbox.Manager
	Store   *store.Store
	Node    string // this member's name in a cluster ("" alone)
	// Dir holds one directory per snapshot.
	Dir string
	// MaxPerOwner and MaxBytesPerOwner cap each owner's snapshots (0: no
	// cap). Owners that Exempt names (administrators) have none.
	MaxPerOwner      int
	MaxBytesPerOwner int64
	Exempt           func(owner string) bool
	Logger           *slog.Logger
}

// Service takes, lists, restores and deletes snapshots.
type Service struct {
	cfg Config
	log *slog.Logger

	kvMu sync.Mutex
	kv   store.KV

	// mu serializes quota decisions with the snapshots they admit, and
	// guards busy: a snapshot being restored (> 0 readers) or deleted (-1).
	mu   sync.Mutex
	busy map[string]int
}

// New returns a Service; call Start before use.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg, log: cfg.Logger, busy: map[string]int{}}
}

const tmpPrefix = ".tmp-"

// Start creates Dir and removes what a killed daemon left: temporary
// directories, and snapshot directories without a record.
func (s *Service) Start(ctx context.Context) error {
	if err := os.MkdirAll(s.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("snapshot dir: %w", err)
	}
	recs, err := s.list(ctx)
	if err != nil && recs == nil {
		return err
	}
	known := map[string]bool{}
	for _, r := range recs {
		known[r.ID] = true
	}
	ents, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("snapshot dir: %w", err)
	}
	for _, e := range ents {
		if !known[e.Name()] {
			s.log.Info("remove snapshot dir without a record", "snapshot", e.Name())
			if err := os.RemoveAll(filepath.Join(s.cfg.Dir, e.Name())); err != nil {
				s.log.Warn("remove snapshot dir", "snapshot", e.Name(), "err", err)
			}
		}
	}
	return nil
}

func (s *Service) bucket(ctx context.Context) (store.KV, error) {
	s.kvMu.Lock()
	defer s.kvMu.Unlock()
	if s.kv != nil {
		return s.kv, nil
	}
	kv, err := s.cfg.Store.KV(ctx, Bucket, store.KVOptions{Description: "sandbox snapshots: source, owner, memory, size"})
	if err != nil {
		return nil, fmt.Errorf("snapshot records: %w", err)
	}
	s.kv = kv
	return kv, nil
}

func (s *Service) key(id string) string { return store.Key(s.cfg.Node, id) }

// NewID returns a fresh snapshot id.
func NewID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "snap-" + hex.EncodeToString(b[:])
}

// ValidID reports whether id has the form NewID gives (anything else
// cannot name a snapshot, nor a path under Dir).
func ValidID(id string) bool {
	rest, ok := strings.CutPrefix(id, "snap-")
	if !ok || len(rest) != 20 {
		return false
	}
	_, err := hex.DecodeString(rest)
	return err == nil && strings.ToLower(rest) == rest
}

// Create snapshots sandbox sandboxID for its owner (the sandbox's owner
// label), within the owner's caps.
func (s *Service) Create(ctx context.Context, sandboxID string) (Record, error) {
	info, err := s.cfg.Manager.Info(sandboxID)
	if err != nil {
		return Record{}, err
	}
	owner := info.Labels[sandbox.LabelOwner]
	s.mu.Lock()
	defer s.mu.Unlock()
	used, err := s.usage(ctx, owner)
	if err != nil {
		return Record{}, err
	}
	capped := s.cfg.Exempt == nil || !s.cfg.Exempt(owner)
	if capped && s.cfg.MaxPerOwner > 0 && used.count >= s.cfg.MaxPerOwner {
		return Record{}, fmt.Errorf("%w: %d of %d snapshots in use; delete one first", ErrQuota, used.count, s.cfg.MaxPerOwner)
	}
	id := NewID()
	tmp := filepath.Join(s.cfg.Dir, tmpPrefix+id)
	res, err := s.cfg.Manager.Snapshot(ctx, sandboxID, tmp)
	if err != nil {
		_ = os.RemoveAll(tmp)
		return Record{}, err
	}
	n, err := sandbox.DiskUsage(tmp)
	if err != nil {
		_ = os.RemoveAll(tmp)
		return Record{}, err
	}
	if capped && s.cfg.MaxBytesPerOwner > 0 && used.bytes+n > s.cfg.MaxBytesPerOwner {
		_ = os.RemoveAll(tmp)
		return Record{}, fmt.Errorf("%w: this snapshot needs %d MiB, %d of %d MiB are in use; delete snapshots first",
			ErrQuota, n>>20, used.bytes>>20, s.cfg.MaxBytesPerOwner>>20)
	}
	final := filepath.Join(s.cfg.Dir, id)
	if err := os.Rename(tmp, final); err != nil {
		_ = os.RemoveAll(tmp)
		return Record{}, fmt.Errorf("snapshot %s: %w", id, err)
	}
	syncDir(s.cfg.Dir)
	sp := res.Spec
	rec := Record{ID: id, Sandbox: sandboxID, Owner: owner, Tier: sp.Tier, Template: sp.Template, Limits: sp.Limits,
		Env: sp.Env, Labels: sp.Labels, Volumes: volume.MountsOf(sp.Volumes), Remaining: sp.Timeout, Memory: res.Memory, Note: res.Note, Bytes: n,
		Created: time.Now().UTC()}
	if err := s.put(ctx, rec); err != nil {
		_ = os.RemoveAll(final)
		return Record{}, err
	}
	return rec, nil
}

// syncDir makes a rename in dir durable (best effort).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

type usage struct {
	count int
	bytes int64
}

func (s *Service) usage(ctx context.Context, owner string) (usage, error) {
	recs, err := s.list(ctx)
	if err != nil && recs == nil {
		return usage{}, err
	}
	var u usage
	for _, r := range recs {
		if r.Owner == owner {
			u.count++
			u.bytes += r.Bytes
		}
	}
	return u, nil
}

func (s *Service) put(ctx context.Context, rec Record) error {
	kv, err := s.bucket(ctx)
	if err != nil {
		return err
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, s.key(rec.ID), b); err != nil {
		return fmt.Errorf("snapshot %s: save record: %w", rec.ID, err)
	}
	return nil
}

// Get returns one snapshot's record.
func (s *Service) Get(ctx context.Context, id string) (Record, error) {
	if !ValidID(id) {
		return Record{}, fmt.Errorf("snapshot %q: %w", id, ErrNotFound)
	}
	kv, err := s.bucket(ctx)
	if err != nil {
		return Record{}, err
	}
	e, err := kv.Get(ctx, s.key(id))
	if errors.Is(err, store.ErrNotFound) {
		return Record{}, fmt.Errorf("snapshot %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Record{}, err
	}
	var rec Record
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		return Record{}, fmt.Errorf("snapshot %s: record: %w", id, err)
	}
	return rec, nil
}

// List returns every snapshot of this node, ordered by id.
func (s *Service) List(ctx context.Context) ([]Record, error) {
	recs, err := s.list(ctx)
	if err != nil && recs == nil {
		return nil, err
	}
	if err != nil {
		s.log.Warn("snapshot records skipped", "err", err)
	}
	return recs, nil
}

// list returns the records that decode, with the errors of those that do
// not joined in.
func (s *Service) list(ctx context.Context) ([]Record, error) {
	kv, err := s.bucket(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := kv.Keys(ctx, store.Key(s.cfg.Node))
	if err != nil {
		return nil, err
	}
	out := []Record{}
	var bad []error
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var rec Record
		if err := json.Unmarshal(e.Value, &rec); err != nil || !ValidID(rec.ID) {
			bad = append(bad, fmt.Errorf("snapshot record %s: %w", k, errors.Join(err, errors.New("bad id"))))
			continue
		}
		out = append(out, rec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, errors.Join(bad...)
}

// OwnerOf answers the owner of a snapshot for authorization
// (security.OwnerFunc).
func (s *Service) OwnerOf(ctx context.Context, id, _ string) (string, bool, error) {
	rec, err := s.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return rec.Owner, true, nil
}

// hold marks id busy for a restore (reader) or a delete (writer).
func (s *Service) hold(id string, write bool) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.busy[id]
	if n < 0 || (write && n > 0) {
		return nil, fmt.Errorf("snapshot %s: %w: try again when the restore or delete under way has finished", id, ErrBusy)
	}
	if write {
		s.busy[id] = -1
	} else {
		s.busy[id] = n + 1
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if write || s.busy[id] <= 1 {
			delete(s.busy, id)
		} else {
			s.busy[id]--
		}
	}, nil
}

// MountFunc checks and holds the volumes of a snapshot being restored
// (volume.Store.Resolve in the caller's name) and gives their mounts; a
// refusal stops the restore before anything is made.
type MountFunc func(ctx context.Context, rec Record) (vols []sandbox.VolumeMount, release func(), err error)

// ErrVolumes: the snapshot's sandbox mounted volumes and Restore was given
// no MountFunc to check them.
var ErrVolumes = errors.New("snapshot mounts volumes")

// Restore makes a new sandbox from snapshot id: with its processes and
// memory when the snapshot has them, else with its files, and with the
// volumes its sandbox mounted (at the same paths, read-only as they were)
// once mount has checked them. The sandbox is admitted like any create
// (the owner's caps).
func (s *Service) Restore(ctx context.Context, id string, mount MountFunc) (sandbox.Sandbox, Record, error) {
	release, err := s.hold(id, false)
	if err != nil {
		return nil, Record{}, err
	}
	defer release()
	rec, err := s.Get(ctx, id)
	if err != nil {
		return nil, Record{}, err
	}
	spec := sandbox.Spec{Tier: rec.Tier, Template: rec.Template, Limits: rec.Limits, Env: rec.Env, Labels: rec.Labels,
		Timeout: rec.Remaining}
	if len(rec.Volumes) > 0 {
		if mount == nil {
			return nil, rec, fmt.Errorf("restore snapshot %s: %w, and no check of them is available", id, ErrVolumes)
		}
		vols, unhold, err := mount(ctx, rec)
		if err != nil {
			return nil, rec, err
		}
		defer unhold()
		spec.Volumes = vols
	}
	sb, err := s.cfg.Manager.Restore(ctx, spec, filepath.Join(s.cfg.Dir, id), rec.Memory)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, rec, fmt.Errorf("snapshot %s: its files are missing: %w", id, ErrNotFound)
	}
	return sb, rec, err
}

// Delete removes a snapshot's record and files.
func (s *Service) Delete(ctx context.Context, id string) error {
	if _, err := s.Get(ctx, id); err != nil {
		return err
	}
	release, err := s.hold(id, true)
	if err != nil {
		return err
	}
	defer release()
	kv, err := s.bucket(ctx)
	if err != nil {
		return err
	}
	if err := kv.Delete(ctx, s.key(id)); err != nil {
		return fmt.Errorf("snapshot %s: delete record: %w", id, err)
	}
	if err := os.RemoveAll(filepath.Join(s.cfg.Dir, id)); err != nil {
		s.log.Warn("remove snapshot dir", "snapshot", id, "err", err) // Start removes it
	}
	return nil
}

// Open returns a started Service.
func Open(ctx context.Context, cfg Config) (*Service, error) {
	s := New(cfg)
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}
