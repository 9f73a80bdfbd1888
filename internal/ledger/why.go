package ledger

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
)

// hashIndex maps leaf hashes to entry indexes for Lookup and Why. It is
// built on first use from the level-0 tiles (so a node that never asks
// pays nothing) and then kept up to date by the committer. It keys on the
// first 8 bytes of the hash (16 bytes per entry instead of 40); a lookup
// confirms the full hash against the tree, and entries whose prefix
// collides with an earlier one are kept by full hash in dup.
type hashIndex struct {
	mu    sync.Mutex // guards everything below; taken after nothing else
	built bool
	size  uint64            // entries indexed: 0 to size-1
	short map[uint64]uint64 // hash prefix -> first index with it
	dup   map[Hash]uint64   // full hash -> index, for later entries whose prefix was taken
}

func prefix(h Hash) uint64 { return binary.BigEndian.Uint64(h[:8]) }

// added indexes leaves first, first+1, ... once the index is built.
func (x *hashIndex) added(first uint64, leaves []Hash) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.built {
		return
	}
	x.insert(first, leaves)
}

// insert indexes leaves starting at first, skipping those already in.
func (x *hashIndex) insert(first uint64, leaves []Hash) {
	for i, h := range leaves {
		idx := first + uint64(i)
		if idx < x.size {
			continue
		}
		if idx > x.size {
			return // a gap: cannot happen, the committer adds in order
		}
		p := prefix(h)
		if _, taken := x.short[p]; !taken {
			x.short[p] = idx
		} else if _, seen := x.dup[h]; !seen {
			x.dup[h] = idx
		}
		x.size++
	}
}

// Lookup finds the index of the (first) entry whose leaf hash is h; a
// hash not in the log is a 404 problem.
func (l *Ledger) Lookup(ctx context.Context, h Hash) (uint64, error) {
	if err := l.buildIndex(ctx); err != nil {
		return 0, err
	}
	l.index.mu.Lock()
	cand, ok := l.index.short[prefix(h)]
	dupIdx, dupOK := l.index.dup[h]
	l.index.mu.Unlock()
	st := l.state.Load()
	if ok && cand < st.size {
		leaf, err := l.leafAt(ctx, st, cand)
		if err != nil {
			return 0, err
		}
		if leaf == h {
			return cand, nil
		}
	}
	if dupOK && dupIdx < st.size {
		return dupIdx, nil
	}
	return 0, notFound("no ledger entry has hash %s", h)
}

// buildIndex indexes every entry of the tree, tile by tile, until it has
// caught up with the committer; from then on the committer adds to it.
func (l *Ledger) buildIndex(ctx context.Context) error {
	x := &l.index
	for {
		x.mu.Lock()
		if x.short == nil {
			x.short, x.dup = map[uint64]uint64{}, map[Hash]uint64{}
		}
		st := l.state.Load()
		if x.built || x.size == st.size {
			x.built = true
			x.mu.Unlock()
			return nil
		}
		n := x.size / TileWidth
		x.mu.Unlock()
		// Read without the lock: the committer must not wait for storage.
		hs, err := l.tileHashes(ctx, st, 0, n, int(min(st.size-n*TileWidth, TileWidth)))
		if err != nil {
			return fmt.Errorf("build the ledger's hash index: %w", err)
		}
		x.mu.Lock()
		x.insert(n*TileWidth, hs)
		x.mu.Unlock()
	}
}

// MaxTrail bounds the entries Why returns.
const MaxTrail = 256

// Trail is what Why found: the entry and everything it follows from,
// breadth first (the entry, its parents, their parents, ...), each once.
type Trail struct {
	Records []Record `json:"records"`
	// Truncated: there were more than MaxTrail entries; the oldest are
	// left out.
	Truncated bool `json:"truncated,omitempty"`
}

// Why walks from the entry with leaf hash h through its parents: for a
// rollout, the approval, policy decision, tests and change behind it and
// the identity that made the change. Every step checks that the parent's
// bytes hash to the hash the child names (ErrCorrupt otherwise).
func (l *Ledger) Why(ctx context.Context, h Hash) (Trail, error) {
	idx, err := l.Lookup(ctx, h)
	if err != nil {
		return Trail{}, err
	}
	var t Trail
	seen := map[uint64]bool{idx: true}
	queue := []Ref{{Index: idx, Hash: h}}
	for len(queue) > 0 {
		if len(t.Records) == MaxTrail {
			t.Truncated = true
			break
		}
		ref := queue[0]
		queue = queue[1:]
		rec, err := l.Entry(ctx, ref.Index)
		if err != nil {
			return t, err
		}
		if rec.Hash != ref.Hash {
			return t, fmt.Errorf("%w: entry %d has hash %s, but a child names it with %s", ErrCorrupt, ref.Index, rec.Hash, ref.Hash)
		}
		t.Records = append(t.Records, rec)
		for _, p := range rec.Entry.Parents {
			if p.Index >= rec.Index {
				return t, fmt.Errorf("%w: entry %d names a parent at %d, not before it", ErrCorrupt, rec.Index, p.Index)
			}
			if !seen[p.Index] {
				seen[p.Index] = true
				queue = append(queue, p)
			}
		}
	}
	return t, nil
}
