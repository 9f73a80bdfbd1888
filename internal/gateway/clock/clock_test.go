package clock

import (
	"testing"
	"time"
)

func TestFakeRunsDueTimersInOrder(t *testing.T) {
	start := time.Unix(1000, 0)
	c := NewFake(start)
	var got []int
	var at []time.Time
	c.AfterFunc(2*time.Second, func() { got = append(got, 2); at = append(at, c.Now()) })
	c.AfterFunc(time.Second, func() { got = append(got, 1); at = append(at, c.Now()) })
	stopped := c.AfterFunc(1500*time.Millisecond, func() { got = append(got, 99) })
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop should report true once")
	}
	c.Advance(500 * time.Millisecond)
	if len(got) != 0 {
		t.Fatalf("fired early: %v", got)
	}
	c.Advance(2 * time.Second)
	if len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("order = %v", got)
	}
	if !at[0].Equal(start.Add(time.Second)) || !at[1].Equal(start.Add(2*time.Second)) {
		t.Fatalf("timers saw %v", at)
	}
	if !c.Now().Equal(start.Add(2500 * time.Millisecond)) {
		t.Fatalf("now = %v", c.Now())
	}
	if c.Pending() != 0 {
		t.Fatalf("pending = %d", c.Pending())
	}
}

func TestFakeTimerScheduledByTimer(t *testing.T) {
	c := NewFake(time.Unix(0, 0))
	n := 0
	c.AfterFunc(time.Second, func() {
		n++
		c.AfterFunc(time.Second, func() { n++ })
	})
	c.Advance(3 * time.Second)
	if n != 2 {
		t.Fatalf("n = %d, want the chained timer to fire too", n)
	}
}
