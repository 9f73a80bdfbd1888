package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/store"
)

// Errors callers switch on with errors.Is.
var (
	// ErrClosed: the ledger was closed.
	ErrClosed = errors.New("ledger: closed")
	// ErrCorrupt: what the store holds contradicts itself (a record out of
	// order, a tile or checkpoint that does not match the entries). The
	// ledger stops appending; Verify says where.
	ErrCorrupt = errors.New("ledger: corrupt")
	// ErrStopped: an earlier storage failure stopped appends; reopen the
	// ledger (Open rebuilds from the log) to go on.
	ErrStopped = errors.New("ledger: stopped after a storage failure")
)

// Options configures Open. The zero value is valid.
type Options struct {
	// Name keeps several ledgers apart in one store (the stream and the
	// bucket are ledger-<name>); default "main". 1 to 32 of a-z 0-9 -.
	Name string
	// MaxEntryBytes caps an encoded entry; default and at most
	// MaxEntryBytes (64 KiB - 1, the C2SP entry bundle limit).
	MaxEntryBytes int
	// MaxBatch caps the entries of one group commit; default and at most 256.
	MaxBatch int
	// QueueSize is how many Appends may wait for the committer before
	// Append blocks; default 4096.
	QueueSize int
	// TileCache is how many full hash tiles (8 KiB each) stay in memory;
	// default 1024.
	TileCache int
	// Logger receives the ledger's logs.
	Logger *slog.Logger
	// Now stamps entries that have no time; default time.Now.
	Now func() time.Time
}

func (o *Options) defaults() error {
	if o.Name == "" {
		o.Name = "main"
	}
	if len(o.Name) > 32 || !nameOK(o.Name) {
		return fmt.Errorf("ledger option name %q: want 1 to 32 of a-z 0-9 -", clip(o.Name))
	}
	if o.MaxEntryBytes == 0 {
		o.MaxEntryBytes = MaxEntryBytes
	}
	if o.MaxEntryBytes < 256 || o.MaxEntryBytes > MaxEntryBytes {
		return fmt.Errorf("ledger option max_entry_bytes %d: want 256 to %d", o.MaxEntryBytes, MaxEntryBytes)
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = TileWidth
	}
	if o.MaxBatch < 1 || o.MaxBatch > TileWidth {
		return fmt.Errorf("ledger option max_batch %d: want 1 to %d", o.MaxBatch, TileWidth)
	}
	if o.QueueSize == 0 {
		o.QueueSize = 4096
	}
	if o.QueueSize < 1 || o.QueueSize > 1<<20 {
		return fmt.Errorf("ledger option queue_size %d: want 1 to %d", o.QueueSize, 1<<20)
	}
	if o.TileCache == 0 {
		o.TileCache = 1024
	}
	if o.TileCache < 16 || o.TileCache > 1<<20 {
		return fmt.Errorf("ledger option tile_cache %d: want 16 to %d", o.TileCache, 1<<20)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

func nameOK(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return s != ""
}

// Ledger is an open ledger. Its methods are safe for concurrent use.
//
// Writes go through one committer goroutine: Append validates and encodes
// on the caller's goroutine and queues the bytes; the committer takes
// everything queued (up to MaxBatch entries and one store record) and
// writes it as one batch record, so concurrent Appends share one fsync,
// then hashes the entries into the tree, stores the tiles that filled,
// publishes the new tree state and answers every Append of the batch.
type Ledger struct {
	key    *Key
	opts   Options
	log    *slog.Logger
	wal    store.Log // batch records, subject ledger.<name>.e.<bundle of the last entry>
	cps    store.Log // signed checkpoints, subject ledger.<name>.cp, in the order signed
	kv     store.KV  // full tiles and the recovery marker
	subj   string    // subject prefix of batch records: ledger.<name>.e.
	cpSubj string

	state atomic.Pointer[treeState] // the tree as acknowledged; replaced, never changed

	// Owned by the committer (and by Open before the committer starts).
	b builder

	queue   chan *request
	closeMu sync.RWMutex // guards closed; Append holds it shared while it queues
	closed  bool
	done    chan struct{} // closed when the committer has exited

	failMu  sync.Mutex // guards failure
	failure error      // set once appends must stop (ErrStopped or ErrCorrupt)

	cpMu sync.Mutex  // serialises Checkpoint; guards head
	head *Checkpoint // newest stored checkpoint, nil before the first

	tiles   *lru.Cache[tileKey, []Hash]  // full hash tiles (immutable)
	bundles *lru.Cache[uint64, [][]byte] // full entry bundles (immutable)
	index   hashIndex                    // leaf hash -> index, built on first use
}

// treeState is the acknowledged tree: what readers see. It is immutable
// once published; rows and tail share backing arrays with the builder,
// which only appends beyond their length.
type treeState struct {
	size   uint64
	walSeq uint64   // log sequence of the last record in the tree
	rows   [][]Hash // rows[L]: the hashes of level-L tile number size>>(8(L+1)), not yet full
	tail   [][]byte // the entries of the partial bundle: indexes size&^255 to size-1
}

type tileKey struct {
	level int
	n     uint64
}

// marker is the recovery point, stored each time a level-0 tile fills:
// every full tile of the first Size entries is in the bucket, and the log
// record holding entry Size (Seq, whose first entry is First) is where
// Open resumes reading. Rows are the builder's rows at Size (rows[0] is
// empty then).
type marker struct {
	Size  uint64   `json:"size"`
	Seq   uint64   `json:"seq"`
	First uint64   `json:"first"`
	Rows  [][]Hash `json:"rows"`
}

// keyMarker is the recovery marker's key; tiles are tile.<level>.<n>.
const keyMarker = "marker"

func tileStoreKey(level int, n uint64) string { return fmt.Sprintf("tile.%d.%d", level, n) }

// Open opens (or creates) the ledger in st, signing checkpoints with key.
// It rebuilds the tree state from the recovery marker and the log records
// after it, stores any tile a crash left unstored, and checks the newest
// checkpoint against the tree (ErrCorrupt if the log lost entries a
// checkpoint covered).
func Open(ctx context.Context, st *store.Store, key *Key, o Options) (*Ledger, error) {
	if key == nil {
		return nil, errors.New("open ledger: no signing key")
	}
	if err := o.defaults(); err != nil {
		return nil, err
	}
	name := "ledger-" + o.Name
	subj := "ledger." + o.Name + ".e."
	wal, err := st.Log(ctx, name, store.LogOptions{Description: "ledger batch records (" + key.Origin() + ")", Subjects: []string{subj + "*"}})
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	cps, err := st.Log(ctx, name+"-cp", store.LogOptions{Description: "ledger checkpoints (" + key.Origin() + ")", Subjects: []string{"ledger." + o.Name + ".cp"}})
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	kv, err := st.KV(ctx, name, store.KVOptions{Description: "ledger tiles and recovery marker (" + key.Origin() + ")"})
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	tiles, _ := lru.New[tileKey, []Hash](o.TileCache)
	bundles, _ := lru.New[uint64, [][]byte](16)
	l := &Ledger{key: key, opts: o, log: o.Logger, wal: wal, cps: cps, kv: kv, subj: subj, cpSubj: "ledger." + o.Name + ".cp",
		queue: make(chan *request, o.QueueSize), done: make(chan struct{}), tiles: tiles, bundles: bundles}
	if err := l.recover(ctx); err != nil {
		return nil, fmt.Errorf("open ledger %s: %w", o.Name, err)
	}
	go l.run()
	return l, nil
}

// recover loads the marker, replays the log after it and checks the head
// checkpoint.
func (l *Ledger) recover(ctx context.Context) error {
	m := marker{Seq: 1}
	if e, err := l.kv.Get(ctx, keyMarker); err == nil {
		if err := json.Unmarshal(e.Value, &m); err != nil || m.Size%TileWidth != 0 || m.Seq == 0 || m.First > m.Size {
			return fmt.Errorf("%w: unreadable recovery marker", ErrCorrupt)
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("read recovery marker: %w", err)
	}
	l.b = builder{size: m.Size}
	for i, row := range m.Rows {
		if i == 0 && len(row) != 0 || len(row) >= TileWidth {
			return fmt.Errorf("%w: recovery marker row %d has %d hashes", ErrCorrupt, i, len(row))
		}
		r := make([]Hash, len(row), TileWidth)
		copy(r, row)
		l.b.rows = append(l.b.rows, r)
	}
	if len(l.b.rows) == 0 {
		l.b.rows = [][]Hash{make([]Hash, 0, TileWidth)}
	}
	l.state.Store(&treeState{size: m.Size, walSeq: m.Seq - 1, rows: l.b.snapshotRows(), tail: make([][]byte, 0, TileWidth)})
	if _, err := l.catchUp(ctx, m.First); err != nil {
		return err
	}
	info, err := l.cps.Info(ctx)
	if err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	if info.LastSeq == 0 {
		return nil
	}
	recs, err := l.cps.Read(ctx, info.LastSeq, 1, "")
	if err != nil || len(recs) != 1 {
		return fmt.Errorf("read the newest checkpoint: %d records, %w", len(recs), err)
	}
	cp, err := openCheckpoint(recs[0].Data, l.key.verifier)
	if err != nil {
		return fmt.Errorf("%w: the newest checkpoint: %w", ErrCorrupt, err)
	}
	s := l.state.Load()
	if cp.Size > s.size {
		return fmt.Errorf("%w: the newest checkpoint covers %d entries but the log holds %d", ErrCorrupt, cp.Size, s.size)
	}
	root, err := l.rootAt(ctx, s, cp.Size)
	if err != nil {
		return err
	}
	if root != cp.Root {
		return fmt.Errorf("%w: the first %d entries do not hash to the newest checkpoint's root", ErrCorrupt, cp.Size)
	}
	l.head = &cp
	return nil
}

// catchUp reads every record after the state's last one and adds it to
// the tree. straddle, when the state is at a recovery marker, is the
// first index of the record holding the marker's entry (which begins
// before it). It returns the raw records it read.
func (l *Ledger) catchUp(ctx context.Context, straddle uint64) ([][]byte, error) {
	info, err := l.wal.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read ledger log: %w", err)
	}
	var raws [][]byte
	st := l.state.Load()
	if info.LastSeq < st.walSeq {
		return nil, fmt.Errorf("%w: the log ends at record %d but the tiles cover record %d", ErrCorrupt, info.LastSeq, st.walSeq)
	}
	first := true
	for seq := st.walSeq + 1; seq <= info.LastSeq; {
		recs, err := l.wal.Read(ctx, seq, 64, "")
		if err != nil {
			return raws, fmt.Errorf("read ledger log at %d: %w", seq, err)
		}
		if len(recs) == 0 {
			return raws, fmt.Errorf("%w: log record %d is missing", ErrCorrupt, seq)
		}
		for _, r := range recs {
			if r.Seq != seq {
				return raws, fmt.Errorf("%w: log record %d is missing", ErrCorrupt, seq)
			}
			rec, err := decodeRecord(r.Data)
			if err != nil {
				return raws, fmt.Errorf("%w: log record %d: %w", ErrCorrupt, seq, err)
			}
			if want := l.recordSubject(rec); r.Subject != want {
				return raws, fmt.Errorf("%w: log record %d is filed under %s, not %s", ErrCorrupt, seq, clip(r.Subject), want)
			}
			for i, e := range rec.entries {
				if _, err := DecodeEntry(e); err != nil {
					return raws, fmt.Errorf("%w: log record %d, entry %d: %w", ErrCorrupt, seq, rec.first+uint64(i), err)
				}
			}
			skip := 0
			if size := l.state.Load().size; first && rec.first == straddle && rec.first < size && rec.end() > size {
				skip = int(size - rec.first)
			}
			first = false
			if _, err := l.ingest(ctx, seq, rec, skip); err != nil {
				return raws, err
			}
			raws = append(raws, r.Data)
			seq++
		}
	}
	return raws, nil
}

// ingest adds a record's entries, but the first skip (already in the tree
// at a recovery marker), to the tree: hashes them, stores the tiles they
// fill and a new recovery marker, then publishes the state. Only the
// committer (or Open) calls it.
func (l *Ledger) ingest(ctx context.Context, seq uint64, rec record, skip int) ([]Hash, error) {
	st := l.state.Load()
	if rec.first+uint64(skip) != st.size {
		return nil, fmt.Errorf("%w: log record %d starts at entry %d, but the log so far holds %d entries", ErrCorrupt, seq, rec.first, st.size)
	}
	var filled []fullTile
	leaves := make([]Hash, len(rec.entries)-skip)
	tail := st.tail
	for i, e := range rec.entries[skip:] {
		leaves[i] = LeafHash(e)
		filled = append(filled, l.b.add(leaves[i])...)
		tail = append(tail, e)
		if l.b.size%TileWidth == 0 {
			l.bundles.Add(l.b.size/TileWidth-1, tail)
			tail = make([][]byte, 0, TileWidth)
		}
	}
	if len(filled) > 0 {
		for _, t := range filled {
			l.tiles.Add(tileKey{t.level, t.n}, t.hashes)
			if err := l.putRetry(ctx, tileStoreKey(t.level, t.n), tileBytes(t.hashes)); err != nil {
				return nil, l.stop(fmt.Errorf("%w: store tile %d/%d: %w", ErrStopped, t.level, t.n, err))
			}
		}
		m := marker{Size: l.b.size &^ (TileWidth - 1), Seq: seq, First: rec.first, Rows: l.b.snapshotRows()}
		m.Rows[0] = nil
		if m.Size == rec.end() {
			m.Seq, m.First = seq+1, rec.end()
		}
		data, _ := json.Marshal(m)
		if err := l.putRetry(ctx, keyMarker, data); err != nil {
			return nil, l.stop(fmt.Errorf("%w: store recovery marker: %w", ErrStopped, err))
		}
	}
	l.state.Store(&treeState{size: l.b.size, walSeq: seq, rows: l.b.snapshotRows(), tail: tail})
	l.index.added(st.size, leaves)
	return leaves, nil
}

// putRetry writes a derived value (a tile, the marker), retrying briefly:
// the entries are already durable, and Open rebuilds what is lost.
func (l *Ledger) putRetry(ctx context.Context, key string, value []byte) error {
	var err error
	for attempt := range 4 {
		if _, err = l.kv.Put(ctx, key, value); err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrUnavailable) || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(25<<attempt) * time.Millisecond)
	}
	return err
}

// stop records why appends must stop, logs it once and returns it.
func (l *Ledger) stop(err error) error {
	l.failMu.Lock()
	defer l.failMu.Unlock()
	if l.failure == nil {
		l.failure = err
		l.log.Error("ledger stopped appending; reopen it to recover", "err", err)
	}
	return l.failure
}

func (l *Ledger) failed() error {
	l.failMu.Lock()
	defer l.failMu.Unlock()
	return l.failure
}

// Size is the number of acknowledged entries.
func (l *Ledger) Size() uint64 { return l.state.Load().size }

// Origin is the origin line of the ledger's checkpoints.
func (l *Ledger) Origin() string { return l.key.Origin() }

// VerifierKey is the public key that verifies the ledger's checkpoints.
func (l *Ledger) VerifierKey() string { return l.key.VerifierKey() }

// Close stops accepting appends, commits those already queued and waits
// for the committer. It does not close the store.
func (l *Ledger) Close() error {
	l.closeMu.Lock()
	if l.closed {
		l.closeMu.Unlock()
		<-l.done
		return nil
	}
	l.closed = true
	close(l.queue)
	l.closeMu.Unlock()
	<-l.done
	return nil
}

// notFound is a 404 problem.
func notFound(format string, args ...any) error { return api.Errorf(api.KindNotFound, format, args...) }
