package store

import (
	"fmt"
	"testing"
	"time"
)

// TestRaftElectionTimingClass checks that the election timeout the store
// sets is the one nats-server's Raft draws from: its own
// randElectionTimeout must return values in [t, 2t) for the process's t,
// never its built-in 4–9 s. It fails if a nats-server upgrade renames the
// variables (the linknamed ones would then be ours alone).
func TestRaftElectionTimingClass(t *testing.T) {
	setRaftTiming(nil, 0, raftSlot{})
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
	setRaftTiming(nil, set+time.Second, raftSlot{})
	if raftTiming.set != set || raftMinElection != set {
		t.Fatalf("a second call changed the running election timeout to %v", raftMinElection)
	}
}

// TestElectionSlotsNeverOverlapClass: staggered members of a cluster of
// any size the store staggers draw their election timers from parts of
// [t, 2t) that are apart by far more than a vote request's flight, so the
// survivors of a dead leader never time out together (a split vote);
// the first keeps t as its floor (a follower still waits six heartbeats).
func TestElectionSlotsNeverOverlapClass(t *testing.T) {
	for _, timeout := range []time.Duration{MinElectionTimeout, DefaultElectionTimeout, 5 * time.Second} {
		for members := 2; members <= maxStaggered; members++ {
			var prevHi time.Duration
			for rank := range members {
				lo, hi := electionRange(timeout, raftSlot{rank, members})
				if lo < timeout || hi > 2*timeout || hi <= lo {
					t.Fatalf("t %v, rank %d of %d: [%v, %v) not inside [t, 2t)", timeout, rank, members, lo, hi)
				}
				if rank == 0 && lo != timeout {
					t.Fatalf("t %v: the first member's floor is %v, want t", timeout, lo)
				}
				if gap := lo - prevHi; rank > 0 && gap < timeout/20 {
					t.Fatalf("t %v, rank %d of %d: %v after the previous range, want at least %v", timeout, rank, members, gap, timeout/20)
				}
				prevHi = hi
			}
		}
	}
	// Out of range slots fall back to the whole range, never to an
	// empty or inverted one.
	for _, slot := range []raftSlot{{-1, 3}, {3, 3}, {0, 1}, {0, 0}, {5, 2}} {
		if lo, hi := electionRange(time.Second, slot); lo != time.Second || hi != 2*time.Second {
			t.Fatalf("slot %+v: [%v, %v), want [1s, 2s)", slot, lo, hi)
		}
	}
}

// TestElectionSlotClass: members configured as a full mesh (each lists
// the others, or all of them itself included, in any order and spelling
// of scheme) get distinct ranks; a configuration every member cannot see
// the same way (wildcard or port-0 listen address, a route that does not
// parse, a lone member, a cluster too large to stagger) gets none.
func TestElectionSlotClass(t *testing.T) {
	addrs := []string{"127.0.0.1:7001", "127.0.0.1:7003", "127.0.0.2:7002"}
	seen := map[int]bool{}
	for i, self := range addrs {
		var others []string
		for j, a := range addrs {
			if j != i {
				others = append(others, "nats-route://"+a)
			}
		}
		rank, members, ok := ElectionSlot(self, others)
		if !ok || members != 3 || seen[rank] {
			t.Fatalf("%s: rank %d of %d ok %v (ranks so far %v)", self, rank, members, ok, seen)
		}
		seen[rank] = true
		// The same with every address listed, itself included, reversed.
		all := []string{addrs[2], "tls://" + addrs[1], addrs[0]}
		if r2, m2, ok := ElectionSlot(self, all); !ok || r2 != rank || m2 != 3 {
			t.Fatalf("%s with itself listed: rank %d of %d ok %v, want %d of 3", self, r2, m2, ok, rank)
		}
	}
	many := make([]string, maxStaggered)
	for i := range many {
		many[i] = fmt.Sprintf("127.0.0.1:%d", 8000+i)
	}
	for _, c := range []struct {
		listen string
		routes []string
	}{
		{"0.0.0.0:7001", addrs[1:]},
		{"[::]:7001", addrs[1:]},
		{":7001", addrs[1:]},
		{"127.0.0.1:0", addrs[1:]},
		{"127.0.0.1", addrs[1:]},
		{"127.0.0.1:7001", nil},
		{"127.0.0.1:7001", []string{"127.0.0.1:7001"}},
		{"127.0.0.1:7001", []string{"http://127.0.0.1:7002"}},
		{"127.0.0.1:7001", []string{"nats-route://user:pw@127.0.0.1:7002"}},
		{"127.0.0.1:7001", []string{"127.0.0.1"}},
		{"127.0.0.1:7001", many},
	} {
		if rank, members, ok := ElectionSlot(c.listen, c.routes); ok {
			t.Fatalf("ElectionSlot(%q, %q) = %d of %d, want none", c.listen, c.routes, rank, members)
		}
	}
}
