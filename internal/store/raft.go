package store

import (
	"log/slog"
	"sync"
	"time"
	_ "unsafe" // go:linkname, for the Raft timing below

	_ "github.com/nats-io/nats-server/v2/server" // the package whose variables are named below
)

// Raft timing of the embedded NATS server.
//
// A clustered member's streams (every bucket) are Raft groups. When the
// member that leads a group dies, its followers elect a new leader only
// after their election timer runs out without a heartbeat: nats-server's
// timer is random in 4–9 s and its heartbeat 1 s, fixed in unexported
// package variables (its own tests set them the same way). Until then the
// group takes no writes, so a kill -9 of a member stopped every lease
// renewal in the cluster bucket for those seconds, and sessions answered
// again only 7–22 s after the kill (docs/CAPACITY.md). The variables are
// set here, once per process, before the first clustered server starts:
// the election timer random in [t, 2t) and a heartbeat of t/6, so a
// follower campaigns only after about six missed heartbeats (a loaded
// machine delays one or two, not six). RATIONALE.md: "Why the store sets
// NATS's Raft timing".
//
// randElection is bound to the server's own function that draws an
// election timeout from the variables: TestRaftElectionTimingClass checks
// that it draws from the values set here, so an upgrade of nats-server
// that renames or retypes them fails a test (a renamed function fails the
// link) instead of silently keeping the 4–9 s.

//go:linkname raftMinElection github.com/nats-io/nats-server/v2/server.minElectionTimeout
var raftMinElection time.Duration

//go:linkname raftMaxElection github.com/nats-io/nats-server/v2/server.maxElectionTimeout
var raftMaxElection time.Duration

//go:linkname raftHeartbeat github.com/nats-io/nats-server/v2/server.hbInterval
var raftHeartbeat time.Duration

//go:linkname raftRandElection github.com/nats-io/nats-server/v2/server.randElectionTimeout
func raftRandElection() time.Duration

// DefaultElectionTimeout is ClusterOptions.ElectionTimeout's default. At
// 1 s a stream whose leader died has a new one 1–2 s later (a split vote
// between the two survivors of three costs another 1–2 s), inside the
// default lease TTL (3 s), so after a kill -9 the elections are done by
// the time the dead member's leases run out. Two minutes of session load
// on three members on a loaded two-core machine (load 14–21) saw no
// leader change at 1 s, as at 2 s (RATIONALE.md: "Why the default Raft
// election timeout is 1 s").
const DefaultElectionTimeout = time.Second

// MinElectionTimeout and MaxElectionTimeout bound
// ClusterOptions.ElectionTimeout.
const (
	MinElectionTimeout = 600 * time.Millisecond
	MaxElectionTimeout = 30 * time.Second
)

var raftTiming struct {
	once sync.Once
	set  time.Duration // the value the process runs with
}

// setRaftTiming gives the process's Raft groups election timeout t (0:
// DefaultElectionTimeout; ClusterOptions.validate bounds it). The variables are process-wide and read by
// running servers, so only the first call sets them; a later call with
// another value (several clustered stores in one process, in tests) keeps
// the first and says so.
func setRaftTiming(log *slog.Logger, t time.Duration) {
	if t == 0 {
		t = DefaultElectionTimeout
	}
	raftTiming.once.Do(func() {
		raftMinElection, raftMaxElection = t, 2*t
		raftHeartbeat = min(t/6, time.Second)
		raftTiming.set = t
	})
	if raftTiming.set != t && log != nil {
		log.Warn("store: the Raft election timeout is per process; keeping the first", "kept", raftTiming.set, "asked", t)
	}
}
