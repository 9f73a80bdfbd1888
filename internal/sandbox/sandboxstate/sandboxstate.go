// Package sandboxstate keeps the durable records of a node's sandboxes
// (sandbox.Records) in the store, so that sandboxes and their files
// survive a daemon restart: the Manager lists them again as stopped and
// runs them again on start. Records are keyed by node, so members of a
// cluster sharing the store each find their own.
package sandboxstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/agentcloud/agentcloud/internal/sandbox"
	"github.com/agentcloud/agentcloud/internal/store"
)

// Bucket is the store bucket of sandbox records.
const Bucket = "sandboxes"

// Records implements sandbox.Records on a store bucket, opened on first
// use.
type Records struct {
	st   *store.Store
	node string

	mu sync.Mutex
	kv store.KV
}

var _ sandbox.Records = (*Records)(nil)

// New returns the records of node ("" outside a cluster) in st.
func New(st *store.Store, node string) *Records { return &Records{st: st, node: node} }

func (r *Records) bucket(ctx context.Context) (store.KV, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.kv != nil {
		return r.kv, nil
	}
	kv, err := r.st.KV(ctx, Bucket, store.KVOptions{Description: "sandbox records: spec, state, timeout"})
	if err != nil {
		return nil, fmt.Errorf("sandbox records: %w", err)
	}
	r.kv = kv
	return kv, nil
}

func (r *Records) key(id string) string { return store.Key(r.node, id) }

// Put writes rec durably.
func (r *Records) Put(ctx context.Context, rec sandbox.Record) error {
	kv, err := r.bucket(ctx)
	if err != nil {
		return err
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = kv.Put(ctx, r.key(rec.ID), b)
	return err
}

// Delete removes id's record (absent is not an error).
func (r *Records) Delete(ctx context.Context, id string) error {
	kv, err := r.bucket(ctx)
	if err != nil {
		return err
	}
	return kv.Delete(ctx, r.key(id))
}

// List returns this node's records. A record that does not decode is
// skipped with its error joined in: one bad record must not hide the rest.
func (r *Records) List(ctx context.Context) ([]sandbox.Record, error) {
	kv, err := r.bucket(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := kv.Keys(ctx, store.Key(r.node))
	if err != nil {
		return nil, err
	}
	var out []sandbox.Record
	var bad []error
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var rec sandbox.Record
		err = json.Unmarshal(e.Value, &rec)
		if err == nil && rec.ID == "" {
			err = errors.New("no id")
		}
		if err != nil {
			bad = append(bad, fmt.Errorf("sandbox record %s: %w", k, err))
			continue
		}
		out = append(out, rec)
	}
	return out, errors.Join(bad...)
}
