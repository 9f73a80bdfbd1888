package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/store"
)

// request is one queued Append.
type request struct {
	ctx  context.Context
	data []byte
	done chan result // buffered: the committer never blocks on it
	// state decides, once, whether the committer writes the request or
	// its caller gave up on it: pending, then taken or abandoned.
	state atomic.Int32
}

const (
	reqPending int32 = iota
	reqTaken
	reqAbandoned
)

type result struct {
	receipt Receipt
	err     error
}

// commitTimeout bounds one group commit (the store write and the tiles).
const commitTimeout = 30 * time.Second

// Append validates e, stamps its time if it has none, checks that its
// parents are in the log with the hashes given, and appends it. It returns
// once the entry is durable (its batch record fsynced): the Receipt's
// index and hash then survive kill -9. Errors: a validation problem (422)
// naming the field, a 413 for an entry over the size limit, ErrClosed,
// ErrStopped or ErrCorrupt, or a store error. If ctx ends before the
// committer takes the entry, Append returns ctx's error and the entry is
// not written; once taken, Append waits for the write (at most
// commitTimeout) and reports its outcome: ctx's error always means the
// entry is not in the log.
func (l *Ledger) Append(ctx context.Context, e Entry) (Receipt, error) {
	if e.Time.IsZero() {
		e.Time = l.opts.Now()
	}
	data, err := e.Encode()
	if err != nil {
		return Receipt{}, err
	}
	if len(data) > l.opts.MaxEntryBytes {
		return Receipt{}, api.Errorf(api.KindTooLarge, "%s entry of %d bytes: the limit is %d bytes", e.Type, len(data), l.opts.MaxEntryBytes)
	}
	if err := l.checkParents(ctx, e.Parents); err != nil {
		return Receipt{}, err
	}
	return l.appendBytes(ctx, data)
}

// checkParents checks that every parent is an entry of the log with the
// hash the ref names. A parent beyond this ledger's tree may have been
// appended by another writer of the same log (another cluster member):
// the tree catches up once before the parent is called missing.
func (l *Ledger) checkParents(ctx context.Context, parents []Ref) error {
	st := l.state.Load()
	for i, p := range parents {
		field := fmt.Sprintf("parents[%d]", i)
		if p.Index >= st.size {
			var err error
			if st, err = l.catchUpTo(ctx, p.Index); err != nil {
				return err
			}
		}
		if p.Index >= st.size {
			return api.FieldErrorf(api.KindValidation, field, "%s: entry %d does not exist (the log holds %d entries)", field, p.Index, st.size)
		}
		h, err := l.leafAt(ctx, st, p.Index)
		if err != nil {
			return err
		}
		if h != p.Hash {
			return api.FieldErrorf(api.KindValidation, field, "%s: entry %d has hash %s, not %s", field, p.Index, h, p.Hash)
		}
	}
	return nil
}

// catchUpTo makes the tree read what other writers appended to the log
// when index is beyond it, and returns the state after. Only the
// committer may change the tree, so the catch-up is a request on its
// queue (one with no data).
func (l *Ledger) catchUpTo(ctx context.Context, index uint64) (*treeState, error) {
	if st := l.state.Load(); index < st.size {
		return st, nil
	}
	if _, err := l.appendBytes(ctx, nil); err != nil {
		return nil, err
	}
	return l.state.Load(), nil
}

// appendBytes queues encoded, validated entry bytes and waits for them to
// be committed.
func (l *Ledger) appendBytes(ctx context.Context, data []byte) (Receipt, error) {
	if err := l.failed(); err != nil {
		return Receipt{}, err
	}
	req := &request{ctx: ctx, data: data, done: make(chan result, 1)}
	l.closeMu.RLock()
	if l.closed {
		l.closeMu.RUnlock()
		return Receipt{}, ErrClosed
	}
	select {
	case l.queue <- req:
		l.closeMu.RUnlock()
	case <-ctx.Done():
		l.closeMu.RUnlock()
		return Receipt{}, ctx.Err()
	}
	select {
	case r := <-req.done:
		return r.receipt, r.err
	case <-ctx.Done():
		if req.state.CompareAndSwap(reqPending, reqAbandoned) {
			return Receipt{}, ctx.Err() // the committer will not write it
		}
		r := <-req.done // taken before ctx ended: its outcome is the answer
		return r.receipt, r.err
	}
}

// run is the committer: it takes what is queued, commits it as one batch
// and answers the batch, until the queue is closed and drained.
func (l *Ledger) run() {
	defer close(l.done)
	var carry *request // the request that did not fit the last batch
	for {
		first := carry
		carry = nil
		if first == nil {
			r, ok := <-l.queue
			if !ok {
				return
			}
			first = r
		}
		batch := []*request{first}
		size := recordHeader + 2 + len(first.data)
	fill:
		for len(batch) < l.opts.MaxBatch {
			select {
			case r, ok := <-l.queue:
				if !ok {
					break fill
				}
				if size+2+len(r.data) > maxRecordBytes {
					carry = r
					break fill
				}
				batch = append(batch, r)
				size += 2 + len(r.data)
			default:
				break fill
			}
		}
		l.commit(batch)
	}
}

// commit writes one batch record and answers its requests. Requests
// with no data ask only that the tree catch up with the log.
func (l *Ledger) commit(batch []*request) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	// Requests whose caller gave up are not written.
	live := batch[:0]
	var syncs []*request
	for _, r := range batch {
		if !r.state.CompareAndSwap(reqPending, reqTaken) {
			r.done <- result{err: r.ctx.Err()} // its caller gave up
			continue
		}
		if err := r.ctx.Err(); err != nil {
			r.done <- result{err: err}
			continue
		}
		if r.data == nil {
			syncs = append(syncs, r)
			continue
		}
		live = append(live, r)
	}
	if len(syncs) > 0 {
		err := l.failed()
		if err == nil {
			if _, err = l.catchUp(ctx, 0); errors.Is(err, ErrCorrupt) {
				err = l.stop(err)
			}
		}
		for _, r := range syncs {
			r.done <- result{err: err}
		}
	}
	if len(live) == 0 {
		return
	}
	first, leaves, err := l.write(ctx, live)
	for i, r := range live {
		if err != nil {
			r.done <- result{err: err}
			continue
		}
		r.done <- result{receipt: Receipt{Index: first + uint64(i), Hash: leaves[i]}}
	}
}

// write appends the batch record after the last record in the tree and
// adds it to the tree. If the store refuses (something else appended) or
// the outcome is unknown (a timeout, a lost connection), it reads what the
// log holds now: a record equal to ours means it was written; otherwise,
// after a conflict, it tries again at the new end.
func (l *Ledger) write(ctx context.Context, batch []*request) (uint64, []Hash, error) {
	if err := l.failed(); err != nil {
		return 0, nil, err
	}
	entries := make([][]byte, len(batch))
	for i, r := range batch {
		entries[i] = r.data
	}
	for attempt := 0; ; attempt++ {
		st := l.state.Load()
		data := encodeRecord(st.size, entries)
		subject := l.bundleSubject((st.size + uint64(len(entries)) - 1) / TileWidth)
		seq, err := l.wal.AppendExpect(ctx, subject, data, st.walSeq)
		if err == nil {
			leaves, err := l.ingest(ctx, seq, record{first: st.size, entries: entries}, 0)
			if err != nil {
				return 0, nil, err
			}
			return st.size, leaves, nil
		}
		raws, cerr := l.catchUp(ctx, 0)
		if cerr != nil {
			if errors.Is(cerr, ErrCorrupt) {
				return 0, nil, l.stop(cerr)
			}
			return 0, nil, fmt.Errorf("append to ledger: %w (then reading the log: %w)", err, cerr)
		}
		for _, raw := range raws {
			if bytes.Equal(raw, data) {
				return st.size, leavesOf(entries), nil
			}
		}
		if !errors.Is(err, store.ErrConflict) || ctx.Err() != nil {
			return 0, nil, fmt.Errorf("append to ledger: %w", err)
		}
		l.log.Warn("ledger log had records from another writer; appending after them", "records", len(raws), "attempt", attempt+1)
		if attempt >= 2 {
			// Another writer keeps winning: step back a little, at random,
			// so that one of the two gets through.
			time.Sleep(time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6))))
		}
	}
}

func leavesOf(entries [][]byte) []Hash {
	out := make([]Hash, len(entries))
	for i, e := range entries {
		out[i] = LeafHash(e)
	}
	return out
}
