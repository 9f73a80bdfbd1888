package store

import (
	"context"
	"fmt"
	"time"
)

// StepDownLeaders hands the leadership of every replicated stream this
// member leads (the buckets and object stores) to another member, and
// waits until it leads none of them, or ctx ends. A member about to stop
// calls it after handing its work off (node drain): the others then write
// at once instead of after the Raft election timeout (raft.go:
// cluster_election_timeout), which a member that just vanished costs. It answers
// how many streams it handed off. Outside a cluster it does nothing.
func (s *Store) StepDownLeaders(ctx context.Context) (int, error) {
	if s.ns == nil || s.opts.Cluster == nil || !s.ns.JetStreamIsClustered() {
		return 0, nil
	}
	acc := s.ns.GlobalAccount().GetName()
	c, _ := s.current()
	if c == nil {
		return 0, nil // closing
	}
	names := c.js.StreamNames(ctx)
	var led []string
	for name := range names.Name() {
		if s.ns.JetStreamIsStreamLeader(acc, name) {
			led = append(led, name)
		}
	}
	if err := names.Err(); err != nil {
		return 0, fmt.Errorf("store: list streams: %w", mapConnErr(err))
	}
	for {
		var still []string
		for _, name := range led {
			if s.ns.JetStreamIsStreamLeader(acc, name) {
				// A Raft step-down picks a current follower; with none
				// current it does nothing, so ask again until one is.
				_ = s.ns.JetStreamStepdownStream(acc, name)
				still = append(still, name)
			}
		}
		if len(still) == 0 {
			return len(led), nil
		}
		select {
		case <-ctx.Done():
			return len(led) - len(still), fmt.Errorf("store: %d streams still led here (%v): %w", len(still), still, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}
