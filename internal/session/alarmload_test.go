package session

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentcloud/agentcloud/internal/store"
)

// TestAlarmLoadSetClass: loading the alarms of a set of sessions (the
// partitions a member took in one heartbeat) schedules exactly the stored
// alarms the set selects, from one read of the bucket; keys that name no
// session and values that are not a time are skipped, not fatal; loading
// again changes nothing.
func TestAlarmLoadSetClass(t *testing.T) {
	m := openManager(t, t.TempDir())
	ctx := context.Background()
	at := time.Now().Add(time.Hour).UTC()
	val, _ := json.Marshal(at)
	want := map[sessKey]bool{}
	for i := range 60 {
		k := sessKey{fmt.Sprintf("agent-%d", i%3), fmt.Sprintf("s%d", i)}
		if _, err := m.alarmKV.Put(ctx, store.Key(k.agent, k.id), val); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			want[k] = true
		}
	}
	for key, v := range map[string]string{
		store.Key("agent-0", "bad-value"):   `"not a time`,
		store.Key("Bad Agent", "s1"):        string(val),
		store.Key("agent-0", "s1", "extra"): string(val),
		store.Key("agent-0", "..."):         string(val),
	} {
		if _, err := m.alarmKV.Put(ctx, key, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	match := func(agent, id string) bool {
		var n int
		_, err := fmt.Sscanf(id, "s%d", &n)
		return err == nil && n%2 == 0 && strings.HasPrefix(agent, "agent-")
	}
	for range 2 {
		if err := m.LoadAlarms(ctx, match); err != nil {
			t.Fatal(err)
		}
		m.alarms.mu.Lock()
		got := len(m.alarms.idx)
		for k, it := range m.alarms.idx {
			if !want[k] || !it.at.Equal(at) {
				t.Errorf("scheduled %v at %v", k, it.at)
			}
		}
		m.alarms.mu.Unlock()
		if got != len(want) {
			t.Fatalf("scheduled %d alarms, want %d", got, len(want))
		}
	}
}
