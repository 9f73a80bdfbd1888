package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/store"
)

// Record is an entry as read back: where it is, its leaf hash, its bytes
// (what the hash is over) and the decoded entry.
type Record struct {
	Index uint64 `json:"index"`
	Hash  Hash   `json:"hash"`
	Entry Entry  `json:"entry"`
	Raw   []byte `json:"-"`
}

// Ref is the record's reference, to name it as a parent.
func (r Record) Ref() Ref { return Ref{Index: r.Index, Hash: r.Hash} }

// Entry reads the entry at index and checks that its bytes hash to the
// leaf hash the tree holds for it (ErrCorrupt otherwise). An index beyond
// the tree makes it read what other writers appended first; one beyond
// the log is a 404 problem.
func (l *Ledger) Entry(ctx context.Context, index uint64) (Record, error) {
	st, err := l.catchUpTo(ctx, index)
	if err != nil {
		return Record{}, err
	}
	if index >= st.size {
		return Record{}, notFound("ledger entry %d does not exist: the log holds %d entries", index, st.size)
	}
	data, err := l.entryBytes(ctx, st, index)
	if err != nil {
		return Record{}, err
	}
	leaf := LeafHash(data)
	stored, err := l.leafAt(ctx, st, index)
	if err != nil {
		return Record{}, err
	}
	if leaf != stored {
		return Record{}, fmt.Errorf("%w: entry %d hashes to %s but the tree holds %s for it", ErrCorrupt, index, leaf, stored)
	}
	e, err := DecodeEntry(data)
	if err != nil {
		return Record{}, fmt.Errorf("%w: entry %d does not decode: %w", ErrCorrupt, index, err)
	}
	return Record{Index: index, Hash: leaf, Entry: e, Raw: data}, nil
}

// entryBytes returns the bytes of entry index (< st.size).
func (l *Ledger) entryBytes(ctx context.Context, st *treeState, index uint64) ([]byte, error) {
	if base := st.size &^ (TileWidth - 1); index >= base {
		return st.tail[index-base], nil
	}
	b, err := l.bundle(ctx, index/TileWidth)
	if err != nil {
		return nil, err
	}
	return b[index%TileWidth], nil
}

// bundle returns the 256 entries of full bundle n. The log record of an
// entry is filed under the bundle of the record's last entry, so bundle n
// is in the records filed under n and possibly the first one filed under
// n+1 (a record of at most 256 entries spans at most two bundles).
func (l *Ledger) bundle(ctx context.Context, n uint64) ([][]byte, error) {
	if b, ok := l.bundles.Get(n); ok {
		return b, nil
	}
	recs, err := l.wal.Read(ctx, 1, TileWidth+1, l.bundleSubject(n))
	if err != nil {
		return nil, fmt.Errorf("read entry bundle %d: %w", n, err)
	}
	var after uint64 = 1
	if len(recs) > 0 {
		after = recs[len(recs)-1].Seq + 1
	}
	next, err := l.wal.Read(ctx, after, 1, l.bundleSubject(n+1))
	if err != nil {
		return nil, fmt.Errorf("read entry bundle %d: %w", n, err)
	}
	start, end := n*TileWidth, (n+1)*TileWidth
	want := start
	out := make([][]byte, 0, TileWidth)
	for _, r := range append(recs, next...) {
		if want == end {
			break
		}
		rec, err := decodeRecord(r.Data)
		if err != nil {
			return nil, fmt.Errorf("%w: log record %d: %w", ErrCorrupt, r.Seq, err)
		}
		if rec.first > want || rec.first < want && (want != start || rec.end() <= want) {
			return nil, fmt.Errorf("%w: log record %d holds entries %d to %d where entry %d was expected", ErrCorrupt, r.Seq, rec.first, rec.end()-1, want)
		}
		for i := want - rec.first; i < uint64(len(rec.entries)) && want < end; i++ {
			out = append(out, rec.entries[i])
			want++
		}
	}
	if want != end {
		return nil, fmt.Errorf("%w: entry bundle %d: entries from %d are missing from the log", ErrCorrupt, n, want)
	}
	l.bundles.Add(n, out)
	return out, nil
}

// bundleSubject is the subject of the records whose last entry is in
// bundle n.
func (l *Ledger) bundleSubject(n uint64) string { return l.subj + strconv.FormatUint(n, 10) }

// recordSubject is the subject a record must be filed under.
func (l *Ledger) recordSubject(rec record) string {
	return l.bundleSubject((rec.end() - 1) / TileWidth)
}

// tileHashes returns the first w hashes of the level-level tile number n
// of the tree st: a full tile from the bucket (cached), or the pending
// row.
func (l *Ledger) tileHashes(ctx context.Context, st *treeState, level int, n uint64, w int) ([]Hash, error) {
	if level < 0 || level > maxTileLevel || w < 1 || w > TileWidth {
		return nil, notFound("tile level %d width %d does not exist", level, w)
	}
	full := st.size >> (TileHeight * (level + 1))
	switch {
	case n < full:
		hs, err := l.fullTile(ctx, level, n)
		if err != nil {
			return nil, err
		}
		return hs[:w], nil
	case n == full && level < len(st.rows) && w <= len(st.rows[level]):
		return st.rows[level][:w], nil
	}
	return nil, notFound("tile %s is beyond the tree of %d entries", TilePath{Level: level, N: n, Width: w}, st.size)
}

// fullTile reads a full hash tile.
func (l *Ledger) fullTile(ctx context.Context, level int, n uint64) ([]Hash, error) {
	k := tileKey{level, n}
	if hs, ok := l.tiles.Get(k); ok {
		return hs, nil
	}
	e, err := l.kv.Get(ctx, tileStoreKey(level, n))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: tile %d/%d is missing from the store", ErrCorrupt, level, n)
	}
	if err != nil {
		return nil, fmt.Errorf("read tile %d/%d: %w", level, n, err)
	}
	hs, ok := tileHashes(e.Value)
	if !ok || len(hs) != TileWidth {
		return nil, fmt.Errorf("%w: tile %d/%d holds %d bytes", ErrCorrupt, level, n, len(e.Value))
	}
	l.tiles.Add(k, hs)
	return hs, nil
}

// leafAt is the leaf hash the tree holds for entry index (< st.size).
func (l *Ledger) leafAt(ctx context.Context, st *treeState, index uint64) (Hash, error) {
	hs, err := l.tileHashes(ctx, st, 0, index/TileWidth, int(index%TileWidth)+1)
	if err != nil {
		return Hash{}, err
	}
	return hs[index%TileWidth], nil
}

// hashReader reads stored hashes (tlog's numbering) of the tree st from
// its tiles: stored hash x at tree level k, position n, lies in the tile
// at level k/8, and is the root of a run of 2^(k%8) of that tile's hashes.
func (l *Ledger) hashReader(ctx context.Context, st *treeState) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			level, n := tlog.SplitStoredHashIndex(x)
			tl, within := level/TileHeight, uint(level%TileHeight)
			tn := uint64(n) << within >> TileHeight    // the tile's number
			pos := uint64(n) - tn<<TileHeight>>within  // run number within the tile
			start, end := pos<<within, (pos+1)<<within // the run's hashes
			hs, err := l.tileHashes(ctx, st, tl, tn, int(end))
			if err != nil {
				return nil, err
			}
			out[i] = tlog.Hash(perfectRoot(hs[start:end]))
		}
		return out, nil
	})
}

// rootAt is the root of the first size entries of the tree st.
func (l *Ledger) rootAt(ctx context.Context, st *treeState, size uint64) (Hash, error) {
	if size == 0 {
		return emptyRoot, nil
	}
	if size == st.size {
		return rowsRoot(st.rows), nil
	}
	h, err := tlog.TreeHash(int64(size), l.hashReader(ctx, st))
	if err != nil {
		return Hash{}, fmt.Errorf("tree hash at %d: %w", size, err)
	}
	return Hash(h), nil
}

// ReadTile returns the bytes of a C2SP tlog-tiles resource of the current
// tree: a hash tile (tile/<L>/<N>[.p/<W>]) or an entry bundle
// (tile/entries/<N>[.p/<W>]). A partial path of a tile that has since
// filled is served as that prefix of the full tile. A malformed path is a
// 400 problem, one beyond the tree a 404.
func (l *Ledger) ReadTile(ctx context.Context, path string) ([]byte, error) {
	t, err := ParseTilePath(path)
	if err != nil {
		return nil, err
	}
	st := l.state.Load()
	if !t.Entries {
		hs, err := l.tileHashes(ctx, st, t.Level, t.N, t.Width)
		if err != nil {
			return nil, err
		}
		return tileBytes(hs), nil
	}
	full := st.size / TileWidth
	switch {
	case t.N < full:
		b, err := l.bundle(ctx, t.N)
		if err != nil {
			return nil, err
		}
		return encodeBundle(b[:t.Width]), nil
	case t.N == full && t.Width <= len(st.tail):
		return encodeBundle(st.tail[:t.Width]), nil
	}
	return nil, notFound("entry bundle %s is beyond the log of %d entries", t, st.size)
}

// Checkpoint returns a signed checkpoint of the current tree: the newest
// one if the tree has not grown since, else a new one, appended to the
// checkpoint log before it is returned (so Verify checks it from then on,
// and no later checkpoint can contradict it unnoticed).
func (l *Ledger) Checkpoint(ctx context.Context) (Checkpoint, error) {
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	st := l.state.Load()
	if l.head != nil && l.head.Size == st.size {
		return *l.head, nil
	}
	cp, err := signCheckpoint(l.key, st.size, rowsRoot(st.rows))
	if err != nil {
		return Checkpoint{}, err
	}
	if _, err := l.cps.Append(ctx, l.cpSubj, cp.Signed); err != nil {
		return Checkpoint{}, fmt.Errorf("store checkpoint: %w", err)
	}
	l.head = &cp
	return cp, nil
}

// Prove returns the inclusion proof of entry index against a signed
// checkpoint of the current tree (Checkpoint), which it carries:
// VerifyInclusion checks it with the entry bytes and the verifier key.
func (l *Ledger) Prove(ctx context.Context, index uint64) (InclusionProof, error) {
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		return InclusionProof{}, err
	}
	p, err := l.ProveAt(ctx, index, cp.Size)
	if err != nil {
		return InclusionProof{}, err
	}
	p.Checkpoint = string(cp.Signed)
	return p, nil
}

// ProveAt returns the inclusion proof of entry index in the tree of the
// first size entries (a size some checkpoint signed). Index or size beyond
// the log is a 404 problem.
func (l *Ledger) ProveAt(ctx context.Context, index, size uint64) (InclusionProof, error) {
	st := l.state.Load()
	if size > st.size {
		return InclusionProof{}, notFound("no tree of %d entries: the log holds %d", size, st.size)
	}
	if index >= size {
		return InclusionProof{}, notFound("entry %d is not in the tree of %d entries", index, size)
	}
	p, err := tlog.ProveRecord(int64(size), int64(index), l.hashReader(ctx, st))
	if err != nil {
		return InclusionProof{}, fmt.Errorf("prove entry %d in %d: %w", index, size, err)
	}
	return InclusionProof{Index: index, TreeSize: size, Hashes: fromTlog(p)}, nil
}

// ProveConsistency returns the proof that the tree of the first oldSize
// entries is a prefix of the tree of the first newSize.
func (l *Ledger) ProveConsistency(ctx context.Context, oldSize, newSize uint64) (ConsistencyProof, error) {
	st := l.state.Load()
	if newSize > st.size {
		return ConsistencyProof{}, notFound("no tree of %d entries: the log holds %d", newSize, st.size)
	}
	if oldSize > newSize {
		return ConsistencyProof{}, api.Errorf(api.KindBadRequest, "the older tree (%d entries) is larger than the newer (%d)", oldSize, newSize)
	}
	out := ConsistencyProof{OldSize: oldSize, NewSize: newSize, Hashes: []Hash{}}
	if oldSize == 0 || oldSize == newSize {
		return out, nil
	}
	p, err := tlog.ProveTree(int64(newSize), int64(oldSize), l.hashReader(ctx, st))
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("prove %d in %d: %w", oldSize, newSize, err)
	}
	out.Hashes = fromTlog(p)
	return out, nil
}
