package store

import (
	"context"
	"fmt"
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
