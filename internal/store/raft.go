package store

import (
	"log/slog"
	"maps"
	"net"
	"slices"
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
	slot raftSlot      // and its member's slot
}

// raftSlot is a member's place among the cluster's members, which
// staggers the members' election timers (ElectionSlot).
type raftSlot struct{ rank, members int }

// maxStaggered is the largest cluster whose members' election timers
// are staggered: with more, the gap between two members' ranges
// (t/(2·members)) comes near the time a vote request takes under load.
const maxStaggered = 9

// ElectionSlot places the member that listens for routes at listen among
// the members named by routes (the other members' route addresses, its
// own allowed): its rank in the sorted set of all of them. ok is false
// when that set cannot be the same on every member (a wildcard or
// port-0 listen address, a route that does not parse) or is too small or
// large to stagger. Each member of a cluster whose members all list each
// other (the usual full mesh, as `agentcloud serve --routes` is given)
// gets a different rank.
func ElectionSlot(listen string, routes []string) (rank, members int, ok bool) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || host == "" || port == "" || port == "0" {
		return 0, 0, false
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return 0, 0, false
	}
	self := net.JoinHostPort(host, port)
	set := map[string]bool{self: true}
	for _, r := range routes {
		u, err := routeURL(r)
		if err != nil {
			return 0, 0, false
		}
		set[net.JoinHostPort(u.Hostname(), u.Port())] = true
	}
	all := slices.Sorted(maps.Keys(set))
	if len(all) < 2 || len(all) > maxStaggered {
		return 0, 0, false
	}
	return slices.Index(all, self), len(all), true
}

// electionRange is the range [lo, hi) a member of slot draws its
// election timer from, for election timeout t (see setRaftTiming).
func electionRange(t time.Duration, slot raftSlot) (lo, hi time.Duration) {
	if slot.members < 2 || slot.rank < 0 || slot.rank >= slot.members {
		return t, 2 * t
	}
	w := t / time.Duration(slot.members)
	lo = t + time.Duration(slot.rank)*w
	return lo, lo + w/2
}

// setRaftTiming gives the process's Raft groups election timeout t (0:
// DefaultElectionTimeout; ClusterOptions.validate bounds it). The variables are process-wide and read by
// running servers, so only the first call sets them; a later call with
// another value (several clustered stores in one process, in tests) keeps
// the first and says so.
//
// With a slot (ElectionSlot; members 0: none) the member's timer is drawn
// from its own part of [t, 2t): [t + rank·w, t + rank·w + w/2) with
// w = t/members. Two survivors of a dead leader then never time out
// within a vote's flight of each other, so they never split the vote: the
// one of lower rank campaigns at least w/2 before the other (167 ms for
// three members at t = 1 s) and gets its vote, which resets the voter's
// timer. Without a slot every member draws from all of [t, 2t) and two
// of them time out within a few milliseconds now and then, which costs a
// second round of 1–2 s (RATIONALE.md: "Why members' election timers are
// staggered").
func setRaftTiming(log *slog.Logger, t time.Duration, slot raftSlot) {
	if t == 0 {
		t = DefaultElectionTimeout
	}
	if slot.members < 2 || slot.rank < 0 || slot.rank >= slot.members {
		slot = raftSlot{}
	}
	raftTiming.once.Do(func() {
		raftMinElection, raftMaxElection = electionRange(t, slot)
		raftHeartbeat = min(t/6, time.Second)
		raftTiming.set, raftTiming.slot = t, slot
	})
	if (raftTiming.set != t || raftTiming.slot != slot) && log != nil {
		log.Warn("store: the Raft election timing is per process; keeping the first",
			"kept", raftTiming.set, "kept_rank", raftTiming.slot.rank, "asked", t, "asked_rank", slot.rank)
	}
}
