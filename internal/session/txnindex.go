package session

import (
	"context"
	"sync"
	"sync/atomic"
)

// txnIndex spares an activation its second store read. A session's record
// is read at activation anyway; its pending multi-key commit (session_txns,
// left by a crash between a commit's write-ahead record and its cleanup) is
// a second read, and is almost never there. On a node without an Owner
// (one node: nothing else writes the session buckets) the manager knows
// which keys may hold one: those listed once when it starts, plus those its
// own commits wrote and did not remove (a commit marks its key before it
// writes the record and unmarks it after the cleanup). Until the listing
// has finished, and always in a cluster, where another node's commit may
// be pending, every activation reads the bucket as before. A mark left
// over (a listed key a commit removed meanwhile, a cleanup that failed)
// only costs the read it would have cost anyway; the activation's recovery
// then unmarks it. See RATIONALE "Why an activation skips the pending
// commit read on one node".
type txnIndex struct {
	on    bool        // no Owner: this node is the bucket's only writer
	known atomic.Bool // the listing at Start has finished
	mu    sync.Mutex
	keys  map[string]struct{} // keys that may hold a pending commit
	// scanned is closed when the listing ends (tests wait on it).
	scanned chan struct{}
}

// start lists the bucket's keys in the background unless owner is set: the
// node has an Owner (a cluster) or is not its store's only writer
// (store.Exclusive: a NATS listener, an external NATS), so other processes
// may leave pending commits the index would never see; list is the listing
// (the txns bucket's Keys).
func (x *txnIndex) start(ctx context.Context, owner bool, list func(context.Context) ([]string, error), wg *sync.WaitGroup, logErr func(error)) {
	x.scanned = make(chan struct{})
	if owner {
		close(x.scanned)
		return
	}
	x.on = true
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(x.scanned)
		keys, err := list(ctx)
		if err != nil {
			logErr(err) // not known: every activation reads
			return
		}
		x.mu.Lock()
		if x.keys == nil {
			x.keys = make(map[string]struct{}, len(keys))
		}
		for _, k := range keys {
			x.keys[k] = struct{}{}
		}
		x.mu.Unlock()
		x.known.Store(true)
	}()
}

// absent reports whether key surely holds no pending commit.
func (x *txnIndex) absent(key string) bool {
	if !x.on || !x.known.Load() {
		return false
	}
	x.mu.Lock()
	_, ok := x.keys[key]
	x.mu.Unlock()
	return !ok
}

// mark notes that key may hold a pending commit from now on; a commit
// calls it before it writes its record.
func (x *txnIndex) mark(key string) {
	if !x.on {
		return
	}
	x.mu.Lock()
	if x.keys == nil {
		x.keys = map[string]struct{}{}
	}
	x.keys[key] = struct{}{}
	x.mu.Unlock()
}

// unmark notes that key holds no pending commit: its record was removed
// (a commit's cleanup, or an activation's recovery).
func (x *txnIndex) unmark(key string) {
	if !x.on {
		return
	}
	x.mu.Lock()
	delete(x.keys, key)
	x.mu.Unlock()
}
