package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Blobs stores large immutable values (bundles, heap snapshots) in chunks.
type Blobs interface {
	Put(ctx context.Context, name string, data []byte) error
	// Get returns ErrNotFound when absent.
	Get(ctx context.Context, name string) ([]byte, error)
	Delete(ctx context.Context, name string) error
}

// Blobs opens the named object store bucket, creating it if needed.
func (s *Store) Blobs(ctx context.Context, bucket string) (Blobs, error) {
	os, err := s.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:   bucket,
		Storage:  jetstream.FileStorage,
		Replicas: s.opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("open blobs %s: %w", bucket, err)
	}
	return &natsBlobs{os: os}, nil
}

type natsBlobs struct{ os jetstream.ObjectStore }

func (b *natsBlobs) Put(ctx context.Context, name string, data []byte) error {
	if _, err := b.os.Put(ctx, jetstream.ObjectMeta{Name: name}, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("put blob %s: %w", name, err)
	}
	return nil
}

func (b *natsBlobs) Get(ctx context.Context, name string) ([]byte, error) {
	data, err := b.os.GetBytes(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("get blob %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get blob %s: %w", name, err)
	}
	return data, nil
}

func (b *natsBlobs) Delete(ctx context.Context, name string) error {
	err := b.os.Delete(ctx, name)
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("delete blob %s: %w", name, err)
	}
	return nil
}
