package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Helpers for the package's external tests.

// ServerName is the embedded server's name (what JetStream's cluster
// information names members by).
func (s *Store) ServerName() string { return s.ns.Name() }

// BucketPlacement names the server leading bucket's stream and the servers
// hosting its consumers (one entry per consumer).
func (s *Store) BucketPlacement(ctx context.Context, bucket string) (leader string, consumers []string, err error) {
	c, _ := s.current()
	st, err := c.js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return "", nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return "", nil, err
	}
	if info.Cluster != nil {
		leader = info.Cluster.Leader
	}
	l := st.ListConsumers(ctx)
	for ci := range l.Info() {
		if ci.Cluster == nil {
			return "", nil, fmt.Errorf("consumer %s: no cluster information", ci.Name)
		}
		consumers = append(consumers, ci.Cluster.Leader)
	}
	return leader, consumers, l.Err()
}

// WatchStalls counts the watches resumed because a write through this
// store did not come back through them in time (watchstall.go).
func (s *Store) WatchStalls() uint64 { return s.watches.stalls.Load() }

// HoldWatchStops makes every watcher's stop (endWatch) wait until release
// is called, and counts the stops waiting (held).
func (s *Store) HoldWatchStops() (held func() int64, release func()) {
	ch := make(chan struct{})
	var n atomic.Int64
	s.watches.mu.Lock()
	s.watches.beforeStop = func() {
		n.Add(1)
		<-ch
	}
	s.watches.mu.Unlock()
	var once sync.Once
	return n.Load, func() {
		once.Do(func() {
			s.watches.mu.Lock()
			s.watches.beforeStop = nil
			s.watches.mu.Unlock()
			close(ch)
		})
	}
}
