package cluster

import (
	"hash/fnv"
	"slices"
)

// DefaultPartitions is how many partitions sessions hash into. It is fixed
// for the life of a cluster: every member must use the same number.
const DefaultPartitions = 64

// PartitionOf is the partition of the session (agent, session) among n.
func PartitionOf(agent, session string, n int) int {
	h := fnv.New64a()
	h.Write([]byte(agent))
	h.Write([]byte{0})
	h.Write([]byte(session))
	return int(h.Sum64() % uint64(n))
}

// desiredOwner picks, by rendezvous (highest random weight) hashing, the
// member that should own partition p among nodes. Each partition moves
// only when its chosen member leaves or a member that outranks the
// current one joins, so a join or a loss moves about 1/len(nodes) of the
// partitions and nothing else.
func desiredOwner(p int, nodes []string) string {
	best, bestW := "", uint64(0)
	for _, n := range nodes {
		h := fnv.New64a()
		h.Write([]byte(n))
		h.Write([]byte{byte(p >> 24), byte(p >> 16), byte(p >> 8), byte(p)})
		w := mix(h.Sum64())
		if best == "" || w > bestW || w == bestW && n < best {
			best, bestW = n, w
		}
	}
	return best
}

// mix is a 64-bit finaliser (splitmix64) that spreads FNV's output.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// sortedCopy returns the names sorted, without duplicates.
func sortedCopy(names []string) []string {
	out := slices.Clone(names)
	slices.Sort(out)
	return slices.Compact(out)
}
