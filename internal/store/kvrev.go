package store

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// LastRevision implements KV: the bucket stream's last sequence, read from
// the stream's state (no message is read, whatever the bucket holds).
func (k *natsKV) LastRevision(ctx context.Context) (uint64, error) {
	kv, err := k.b.get(ctx)
	if err != nil {
		return 0, fmt.Errorf("last revision of %s: %w", k.stream, err)
	}
	var rev uint64
	err = k.s.read(ctx, k.stream, func(ctx context.Context) error {
		st, err := kv.Status(ctx)
		if err != nil {
			return err
		}
		bs, ok := st.(*jetstream.KeyValueBucketStatus)
		if !ok {
			return fmt.Errorf("bucket status of type %T has no stream state", st)
		}
		rev = bs.StreamInfo().State.LastSeq
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("last revision of %s: %w", k.stream, mapConnErr(err))
	}
	return rev, nil
}
