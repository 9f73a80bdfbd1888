package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrFenced: a fenced write was refused because its fence key moved on
// (another writer took over what the fence guards).
var ErrFenced = errors.New("store: fenced out")

// Fence names a key of the same bucket and the revision it must still be
// at for a fenced write to be accepted. The store checks it in the same
// operation as the write (JetStream's expected last sequence of another
// subject of the stream, checked by the stream's leader while it orders
// the write), so nothing can slip between the check and the write: a
// writer whose fence key was rewritten by someone else can no longer
// write, whatever it believes.
type Fence struct {
	Key      string
	Revision uint64
}

// kvSubject is the subject of key in the bucket behind k.
func (k *natsKV) kvSubject(key string) string {
	return "$KV." + strings.TrimPrefix(k.stream, "KV_") + "." + key
}

// PutFenced writes value under key only while f.Key is at f.Revision
// (ErrFenced otherwise) and returns the new revision.
func (k *natsKV) PutFenced(ctx context.Context, key string, value []byte, f Fence) (uint64, error) {
	return k.publishFenced(ctx, "put", key, value, f)
}

// DeleteFenced deletes key only while f.Key is at f.Revision (ErrFenced
// otherwise). Deleting an absent key is not an error.
func (k *natsKV) DeleteFenced(ctx context.Context, key string, f Fence) error {
	_, err := k.publishFenced(ctx, "delete", key, nil, f)
	return err
}

func (k *natsKV) publishFenced(ctx context.Context, op, key string, value []byte, f Fence) (uint64, error) {
	if _, err := k.handle(ctx, op, key); err != nil {
		return 0, err
	}
	if err := checkKey("fence key", f.Key, false); err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	msg := nats.NewMsg(k.kvSubject(key))
	msg.Data = value
	if op == "delete" {
		msg.Header.Set("KV-Operation", "DEL")
	}
	msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, fmt.Sprint(f.Revision))
	msg.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, k.kvSubject(f.Key))
	w := k.rc.begin(key)
	k.s.send()
	ack, err := k.s.cur.Load().js.PublishMsg(ctx, msg)
	err = k.s.durable(k.stream, err)
	var seq uint64
	if err == nil {
		seq = ack.Sequence
	}
	if op == "delete" {
		value = nil
	}
	k.rc.end(key, w, value, seq, err)
	switch {
	case err == nil:
		k.s.wroteKey(k.stream, key, ack.Sequence)
		return ack.Sequence, nil
	case isWrongLastSeq(err):
		return 0, fmt.Errorf("%s %q: fence %q is no longer at revision %d: %w", op, short(key), short(f.Key), f.Revision, ErrFenced)
	}
	return 0, mapKVErr(op, key, tooLarge("value", len(value), err))
}
