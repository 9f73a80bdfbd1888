package cluster

import (
	"fmt"
	"testing"
)

// TestRendezvousMovesLittle: adding a fourth member moves only partitions
// to the new member, about a quarter of them; removing one moves only that
// member's partitions.
func TestRendezvousMovesLittle(t *testing.T) {
	const n = 1024
	three := []string{"a", "b", "c"}
	four := []string{"a", "b", "c", "d"}
	moved, count := 0, map[string]int{}
	for p := range n {
		before, after := desiredOwner(p, three), desiredOwner(p, four)
		count[before]++
		if before != after {
			moved++
			if after != "d" {
				t.Fatalf("partition %d moved from %s to %s, not to the new member", p, before, after)
			}
		}
		if two := desiredOwner(p, []string{"a", "c"}); before != "b" && two != before {
			t.Fatalf("partition %d of %s moved when b left", p, before)
		}
	}
	if moved < n/6 || moved > n/3 {
		t.Errorf("%d of %d partitions moved on a join, want about a quarter", moved, n)
	}
	for m, c := range count {
		if c < n/5 || c > n/2 {
			t.Errorf("member %s would own %d of %d", m, c, n)
		}
	}
	if desiredOwner(0, nil) != "" {
		t.Error("an owner without members")
	}
}

func FuzzPartitionOf(f *testing.F) {
	f.Add("counter", "demo", 64)
	f.Add("", "", 1)
	f.Add("a\x00b", "c", 4096)
	f.Fuzz(func(t *testing.T, agent, session string, n int) {
		if n < 1 || n > 4096 {
			return
		}
		p := PartitionOf(agent, session, n)
		if p < 0 || p >= n {
			t.Fatalf("partition %d of %d", p, n)
		}
		if PartitionOf(agent, session, n) != p {
			t.Fatal("not deterministic")
		}
		// The separator keeps ("ab","c") and ("a","bc") apart most of the time;
		// what must hold is only that it is a function of both.
		_ = fmt.Sprint(p)
	})
}
