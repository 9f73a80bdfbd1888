package ledger

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/agentcloud/agentcloud/internal/store"
)

// VerifyError names the first bad entry Verify found. It is ErrCorrupt.
type VerifyError struct {
	// Index is the first entry that is wrong, missing, or (for a
	// checkpoint that does not match) the first that may be.
	Index uint64
	// Type is that entry's type, when it can be read.
	Type Type
	// Seq is the log record at fault, when there is one.
	Seq uint64
	// Reason says what does not match.
	Reason string
}

func (e *VerifyError) Error() string {
	t := string(e.Type)
	if t == "" {
		t = "type unknown"
	}
	if e.Seq != 0 {
		return fmt.Sprintf("ledger entry %d (%s), log record %d: %s", e.Index, t, e.Seq, e.Reason)
	}
	return fmt.Sprintf("ledger entry %d (%s): %s", e.Index, t, e.Reason)
}

// Unwrap makes a VerifyError match ErrCorrupt.
func (e *VerifyError) Unwrap() error { return ErrCorrupt }

// VerifyReport is what Verify checked.
type VerifyReport struct {
	Entries     uint64 `json:"entries"`
	Records     uint64 `json:"records"`
	Tiles       uint64 `json:"tiles"`
	Checkpoints int    `json:"checkpoints"`
	Root        Hash   `json:"root"`
}

// verifyChunk is how many log records Verify reads at a time.
const verifyChunk = 16

// Verify re-derives the tree from the entries in the log and checks it
// against everything stored: the log's records are in order with nothing
// missing or restated, every entry decodes, every full tile in the bucket
// equals the re-derived one, the partial tiles served equal the re-derived
// rows, and every checkpoint ever stored is signed by the key and has the
// re-derived root for its size (so no two checkpoints are inconsistent).
// The first mismatch is a *VerifyError naming the entry (index and type).
// It reads the whole log as it was when Verify started (appends go on
// meanwhile), including records the ledger has not taken in yet.
func (l *Ledger) Verify(ctx context.Context) (VerifyReport, error) {
	st := l.state.Load()
	cps, err := l.storedCheckpoints(ctx)
	if err != nil {
		return VerifyReport{}, err
	}
	info, err := l.wal.Info(ctx)
	if err != nil {
		return VerifyReport{}, fmt.Errorf("verify: %w", err)
	}
	v := verifier{l: l, ctx: ctx, cps: cps, acked: st.size}
	if err := v.checkpointsAt(); err != nil {
		return v.rep, err
	}
	for seq := uint64(1); seq <= info.LastSeq; {
		recs, err := l.wal.Read(ctx, seq, verifyChunk, "")
		if err != nil {
			return v.rep, fmt.Errorf("verify: read log at %d: %w", seq, err)
		}
		if len(recs) == 0 {
			return v.rep, &VerifyError{Index: v.b.size, Seq: seq, Reason: "the log record is missing"}
		}
		for _, r := range recs {
			if r.Seq != seq {
				return v.rep, &VerifyError{Index: v.b.size, Seq: seq, Reason: "the log record is missing"}
			}
			if err := v.record(r); err != nil {
				return v.rep, err
			}
			seq++
		}
	}
	if v.b.size < st.size {
		return v.rep, &VerifyError{Index: v.b.size, Reason: fmt.Sprintf("the log holds %d entries but the ledger acknowledged %d", v.b.size, st.size)}
	}
	for _, cp := range v.cps {
		return v.rep, &VerifyError{Index: v.b.size, Reason: fmt.Sprintf("a checkpoint signed %d entries but the log holds %d: entries from %d are missing", cp.Size, v.b.size, v.b.size)}
	}
	if v.b.size == st.size {
		// The partial tiles served from memory are the re-derived rows.
		for level := range max(len(st.rows), len(v.b.rows)) {
			var have, want []Hash
			if level < len(st.rows) {
				have = st.rows[level]
			}
			if level < len(v.b.rows) {
				want = v.b.rows[level]
			}
			if k, same := firstDiff(have, want); !same {
				idx := (st.size>>(TileHeight*(level+1))*TileWidth + uint64(k)) << (TileHeight * level)
				return v.rep, v.fail(idx, 0, fmt.Sprintf("the partial tile at level %d served from memory differs from the entries at hash %d", level, k))
			}
		}
	}
	v.rep.Entries, v.rep.Root = v.b.size, v.b.root()
	return v.rep, nil
}

// verifier is one run of Verify.
type verifier struct {
	l      *Ledger
	ctx    context.Context
	b      builder
	types  [TileWidth]Type // types of the current level-0 tile's entries
	cps    []Checkpoint    // stored checkpoints not yet reached, by size
	lastOK uint64          // size of the last checkpoint that matched
	acked  uint64          // entries acknowledged when Verify started
	rep    VerifyReport
}

// record checks one log record and adds its entries.
func (v *verifier) record(r store.Record) error {
	rec, err := decodeRecord(r.Data)
	if err != nil {
		return &VerifyError{Index: v.b.size, Seq: r.Seq, Reason: err.Error()}
	}
	if err := v.continues(r); err != nil {
		return err
	}
	if want := v.l.recordSubject(rec); r.Subject != want {
		return &VerifyError{Index: rec.first, Seq: r.Seq, Reason: fmt.Sprintf("the record is filed under %s, not %s: readers of its entry bundle would not find it", clip(r.Subject), want)}
	}
	v.rep.Records++
	for i, data := range rec.entries {
		idx := rec.first + uint64(i)
		e, err := DecodeEntry(data)
		if err != nil {
			return &VerifyError{Index: idx, Seq: r.Seq, Reason: "the entry does not decode: " + err.Error()}
		}
		v.types[idx%TileWidth] = e.Type
		for _, t := range v.b.add(LeafHash(data)) {
			if err := v.tile(t); err != nil {
				return err
			}
		}
		if err := v.checkpointsAt(); err != nil {
			return err
		}
	}
	return nil
}

// continues checks that a record starts where the log so far ends.
func (v *verifier) continues(r store.Record) error {
	rec, err := decodeRecord(r.Data)
	if err != nil {
		return &VerifyError{Index: v.b.size, Seq: r.Seq, Reason: err.Error()}
	}
	switch {
	case rec.first < v.b.size:
		var t Type
		if e, err := DecodeEntry(rec.entries[0]); err == nil {
			t = e.Type
		}
		return &VerifyError{Index: rec.first, Type: t, Seq: r.Seq,
			Reason: fmt.Sprintf("the record restates entries %d to %d, which earlier records hold (the log has %d entries before it)", rec.first, rec.end()-1, v.b.size)}
	case rec.first > v.b.size:
		return &VerifyError{Index: v.b.size, Seq: r.Seq, Reason: fmt.Sprintf("the record starts at entry %d: entries %d to %d are missing", rec.first, v.b.size, rec.first-1)}
	}
	return nil
}

// tile compares a re-derived full tile with the stored one, read from the
// bucket (not the cache, which holds what this process computed).
func (v *verifier) tile(t fullTile) error {
	v.rep.Tiles++
	first := t.n * TileWidth << (TileHeight * t.level)
	e, err := v.l.kv.Get(v.ctx, tileStoreKey(t.level, t.n))
	if errors.Is(err, store.ErrNotFound) {
		if v.b.size > v.acked {
			return nil // filled by entries appended since Verify started: being stored now
		}
		return v.fail(first, 0, fmt.Sprintf("tile %d/%d is missing from the store", t.level, t.n))
	}
	if err != nil {
		return fmt.Errorf("verify: read tile %d/%d: %w", t.level, t.n, err)
	}
	stored, ok := tileHashes(e.Value)
	if !ok || len(stored) != TileWidth {
		return v.fail(first, 0, fmt.Sprintf("stored tile %d/%d holds %d bytes", t.level, t.n, len(e.Value)))
	}
	if k, same := firstDiff(stored, t.hashes); !same {
		idx := (t.n*TileWidth + uint64(k)) << (TileHeight * t.level)
		what := "its leaf hash in the stored tile differs from the hash of its bytes"
		if t.level > 0 {
			what = fmt.Sprintf("the stored level-%d tile's hash of the %d entries from here differs from theirs", t.level, 1<<(TileHeight*t.level))
		}
		return v.fail(idx, 0, what)
	}
	return nil
}

// checkpointsAt compares the stored checkpoints of the current size with
// the re-derived root.
func (v *verifier) checkpointsAt() error {
	for len(v.cps) > 0 && v.cps[0].Size == v.b.size {
		cp := v.cps[0]
		v.cps = v.cps[1:]
		v.rep.Checkpoints++
		if root := v.b.root(); root != cp.Root {
			return v.fail(v.lastOK, 0, fmt.Sprintf("the checkpoint for %d entries signs root %s but the entries hash to %s: an entry from %d to %d differs from what was signed",
				cp.Size, cp.Root, root, v.lastOK, cp.Size-1))
		}
		v.lastOK = cp.Size
	}
	return nil
}

// fail makes a VerifyError for entry idx, reading its type when it can.
func (v *verifier) fail(idx, seq uint64, reason string) error {
	e := &VerifyError{Index: idx, Seq: seq, Reason: reason}
	if idx < v.b.size && v.b.size-idx <= TileWidth {
		e.Type = v.types[idx%TileWidth] // among the last 256 entries read
	}
	if e.Type == "" {
		st := v.l.state.Load()
		if idx < st.size {
			if data, err := v.l.entryBytes(v.ctx, st, idx); err == nil {
				if de, err := DecodeEntry(data); err == nil {
					e.Type = de.Type
				}
			}
		}
	}
	return e
}

// storedCheckpoints reads and verifies every stored checkpoint, ordered
// by size.
func (l *Ledger) storedCheckpoints(ctx context.Context) ([]Checkpoint, error) {
	var out []Checkpoint
	for seq := uint64(1); ; {
		recs, err := l.cps.Read(ctx, seq, 256, "")
		if err != nil {
			return nil, fmt.Errorf("verify: read checkpoints: %w", err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			cp, err := openCheckpoint(r.Data, l.key.verifier)
			if err != nil {
				size := uint64(0)
				if c, perr := parseCheckpointText(noteText(r.Data)); perr == nil {
					size = c.Size
				}
				return nil, &VerifyError{Index: size, Reason: fmt.Sprintf("stored checkpoint %d (for %d entries) does not verify: %v", r.Seq, size, err)}
			}
			out = append(out, cp)
		}
		seq = recs[len(recs)-1].Seq + 1
	}
	slices.SortStableFunc(out, func(a, b Checkpoint) int { return cmp.Compare(a.Size, b.Size) })
	return out, nil
}

// noteText is the text of a signed note without checking it (for naming
// the size of a checkpoint that does not verify).
func noteText(signed []byte) string {
	text, _, _ := strings.Cut(string(signed), "\n\n")
	return text + "\n"
}

// firstDiff returns the first position where a and b differ; same is true
// when they are equal.
func firstDiff(a, b []Hash) (k int, same bool) {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i, false
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b)), false
	}
	return 0, true
}
