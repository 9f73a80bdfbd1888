package store

import (
	"testing"
	"time"
)

// TestRaftElectionTimingClass checks that the election timeout the store
// sets is the one nats-server's Raft draws from: its own
// randElectionTimeout must return values in [t, 2t) for the process's t,
// never its built-in 4–9 s. It fails if a nats-server upgrade renames the
// variables (the linknamed ones would then be ours alone).
func TestRaftElectionTimingClass(t *testing.T) {
	setRaftTiming(nil, 0)
	set := raftTiming.set
	if set == 0 {
		t.Fatal("no election timeout set")
	}
	for range 2000 {
		d := raftRandElection()
		if d < set || d >= 2*set {
			t.Fatalf("nats-server drew an election timeout of %v, want it in [%v, %v): the server does not use the store's Raft timing", d, set, 2*set)
		}
	}
	if raftHeartbeat <= 0 || raftHeartbeat > set/5 {
		t.Fatalf("heartbeat %v for election timeout %v: a follower would campaign after too few missed heartbeats", raftHeartbeat, set)
	}
	// A second value in the same process is refused, not applied while
	// servers read the variables.
	setRaftTiming(nil, set+time.Second)
	if raftTiming.set != set || raftMinElection != set {
		t.Fatalf("a second call changed the running election timeout to %v", raftMinElection)
	}
}
