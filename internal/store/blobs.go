package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

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
	cfg := jetstream.ObjectStoreConfig{
		Bucket:   bucket,
		Storage:  jetstream.FileStorage,
		Replicas: s.opts.Replicas,
	}
	b := &natsBlobs{s: s, stream: "OBJ_" + bucket, met: s.met}
	b.b = binding[jetstream.ObjectStore]{s: s, open: func(ctx context.Context, js jetstream.JetStream) (jetstream.ObjectStore, error) {
		if s.opts.Replicas <= 1 {
			return js.CreateOrUpdateObjectStore(ctx, cfg)
		}
		return openReplicatedBlobs(ctx, js, cfg)
	}}
	if _, err := b.b.get(ctx); err != nil {
		return nil, fmt.Errorf("open blobs %s: %w", bucket, err)
	}
	return b, nil
}

type natsBlobs struct {
	s      *Store
	stream string
	b      binding[jetstream.ObjectStore]
	met    *metrics
}

func (b *natsBlobs) handle(ctx context.Context, op, name string) (jetstream.ObjectStore, error) {
	if err := checkName("blob name", name); err != nil {
		return nil, fmt.Errorf("%s blob: %w", op, err)
	}
	os, err := b.b.get(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s blob %s: %w", op, short(name), err)
	}
	return os, nil
}

func (b *natsBlobs) Put(ctx context.Context, name string, data []byte) error {
	os, err := b.handle(ctx, "put", name)
	if err != nil {
		return err
	}
	t0 := time.Now()
	b.s.send()
	_, err = os.Put(ctx, jetstream.ObjectMeta{Name: name}, bytes.NewReader(data))
	err = b.s.durable(b.stream, err)
	b.met.wrote("blob_put", t0, err)
	if err != nil {
		return fmt.Errorf("put blob %s: %w", short(name), mapConnErr(err))
	}
	return nil
}

func (b *natsBlobs) Get(ctx context.Context, name string) ([]byte, error) {
	os, err := b.handle(ctx, "get", name)
	if err != nil {
		return nil, err
	}
	data, err := os.GetBytes(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("get blob %s: %w", short(name), ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get blob %s: %w", short(name), mapConnErr(err))
	}
	return data, nil
}

func (b *natsBlobs) Delete(ctx context.Context, name string) error {
	os, err := b.handle(ctx, "delete", name)
	if err != nil {
		return err
	}
	b.s.send()
	err = b.s.durable(b.stream, os.Delete(ctx, name))
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("delete blob %s: %w", short(name), mapConnErr(err))
	}
	return nil
}

// openReplicatedBlobs opens a replicated object store the way
// openReplicated opens a replicated bucket: created if missing, then with
// direct gets turned off, never updated afterwards. An object's info is
// read with a get of the last message on its meta subject; a direct get
// may be answered by a replica that has not applied the put yet, so a blob
// stored a moment ago read back as not found (a template built by the
// pipeline's build stage, in the cluster kill -9 test).
func openReplicatedBlobs(ctx context.Context, js jetstream.JetStream, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	name := "OBJ_" + cfg.Bucket
	st, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err = js.CreateObjectStore(ctx, cfg); err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
			return nil, err
		}
		st, err = js.Stream(ctx, name)
	}
	if err != nil {
		return nil, err
	}
	if scfg := st.CachedInfo().Config; scfg.AllowDirect {
		scfg.AllowDirect = false
		if _, err := js.UpdateStream(ctx, scfg); err != nil {
			return nil, err
		}
	}
	return js.ObjectStore(ctx, cfg.Bucket)
}
