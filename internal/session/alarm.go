package session

import (
	"container/heap"
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/internal/store"
)

// saveAlarm persists an alarm change made by a committed call and
// (re)schedules it. s.mu must be held.
func (m *Manager) saveAlarm(ctx context.Context, s *session, c *alarmChange) error {
	mkey := store.Key(s.key.agent, s.key.id)
	if c.delete {
		if err := m.alarmKV.Delete(ctx, mkey); err != nil {
			return err
		}
		s.meta.Alarm = nil
		m.alarms.cancel(s.key)
	} else {
		b, _ := json.Marshal(c.at)
		if _, err := m.alarmKV.Put(ctx, mkey, b); err != nil {
			return err
		}
		at := c.at
		s.meta.Alarm = &at
		m.alarms.schedule(s.key, at)
	}
	b, _ := json.Marshal(s.meta)
	_, err := m.meta.Put(ctx, mkey, b)
	return err
}

// alarmScheduler keeps pending alarms in a min-heap and fires them.
type alarmScheduler struct {
	m    *Manager
	mu   sync.Mutex // guards h and idx
	h    alarmHeap
	idx  map[sessKey]*alarmItem
	wake chan struct{}
}

type alarmItem struct {
	key   sessKey
	at    time.Time
	tries int
	index int
}

type alarmHeap []*alarmItem

func (h alarmHeap) Len() int           { return len(h) }
func (h alarmHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h alarmHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *alarmHeap) Push(x any)        { it := x.(*alarmItem); it.index = len(*h); *h = append(*h, it) }
func (h *alarmHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	it.index = -1
	return it
}

func newAlarmScheduler(m *Manager) *alarmScheduler {
	return &alarmScheduler{m: m, idx: map[sessKey]*alarmItem{}, wake: make(chan struct{}, 1)}
}

// load schedules every stored alarm match selects (nil: all), after a
// restart or when this node takes over sessions (the partitions taken in
// one heartbeat together). It reads the bucket once, keys and values in
// one pass (the catch-up of a watch, stopped once delivered), not a get
// per alarm.
func (a *alarmScheduler) load(ctx context.Context, match func(agent, id string) bool) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type found struct {
		k  sessKey
		at time.Time
	}
	var due []found
	initial := true
	var mu sync.Mutex
	_, err := a.m.alarmKV.Watch(wctx, "", func(ev store.WatchEvent) {
		mu.Lock()
		defer mu.Unlock()
		if !initial || ev.Deleted {
			return
		}
		parts, err := store.KeyParts(ev.Key)
		if err != nil || len(parts) != 2 || CheckAddr(parts[0], parts[1]) != nil {
			return
		}
		if match != nil && !match(parts[0], parts[1]) {
			return
		}
		var at time.Time
		if json.Unmarshal(ev.Value, &at) == nil {
			due = append(due, found{sessKey{parts[0], parts[1]}, at})
		}
	})
	if err != nil {
		return err
	}
	mu.Lock()
	initial = false
	mu.Unlock()
	for _, f := range due {
		a.schedule(f.k, f.at)
	}
	return nil
}

func (a *alarmScheduler) schedule(k sessKey, at time.Time) {
	a.mu.Lock()
	if it := a.idx[k]; it != nil {
		it.at, it.tries = at, 0
		heap.Fix(&a.h, it.index)
	} else {
		it := &alarmItem{key: k, at: at}
		heap.Push(&a.h, it)
		a.idx[k] = it
	}
	a.mu.Unlock()
	a.poke()
}

func (a *alarmScheduler) cancel(k sessKey) {
	a.mu.Lock()
	if it := a.idx[k]; it != nil {
		heap.Remove(&a.h, it.index)
		delete(a.idx, k)
	}
	a.mu.Unlock()
}

// cancelAgent cancels the alarms of every session of agent.
func (a *alarmScheduler) cancelAgent(agent string) {
	a.mu.Lock()
	for k, it := range a.idx {
		if k.agent == agent {
			heap.Remove(&a.h, it.index)
			delete(a.idx, k)
		}
	}
	a.mu.Unlock()
}

func (a *alarmScheduler) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// run fires due alarms until stop closes.
func (a *alarmScheduler) run(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		a.mu.Lock()
		var due []*alarmItem
		now := a.m.now()
		for len(a.h) > 0 && !a.h[0].at.After(now) {
			it := heap.Pop(&a.h).(*alarmItem)
			delete(a.idx, it.key)
			due = append(due, it)
		}
		next := time.Hour
		if len(a.h) > 0 {
			next = a.h[0].at.Sub(now)
		}
		a.mu.Unlock()
		for _, it := range due {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a.fire(it)
			}()
		}
		timer.Reset(next)
		select {
		case <-stop:
			return
		case <-a.wake:
		case <-timer.C:
		}
	}
}

// fire runs the session's alarm handler; failures retry with backoff.
//
// Only the session's owner fires it: another node drops the alarm (the
// owner scheduled it when it set it or took the session over).
func (a *alarmScheduler) fire(it *alarmItem) {
	m := a.m
	if _, ok := m.owns(it.key); !ok {
		return
	}
	ctx := context.Background()
	err := m.runAlarm(ctx, it.key, it.at)
	if err == nil {
		return
	}
	it.tries++
	m.log.Warn("alarm failed", "agent", it.key.agent, "session", it.key.id, "try", it.tries, "err", err)
	if it.tries >= 6 {
		return
	}
	a.mu.Lock()
	if a.idx[it.key] == nil { // not re-set meanwhile
		it.at = m.now().Add(time.Duration(1<<it.tries) * time.Second)
		heap.Push(&a.h, it)
		a.idx[it.key] = it
	}
	a.mu.Unlock()
	a.poke()
}

// runAlarm activates the session and calls its alarm handler. The alarm is
// cleared unless the handler set a new one.
func (m *Manager) runAlarm(ctx context.Context, k sessKey, at time.Time) error {
	s, err := m.acquire(ctx, k.agent, k.id)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if s.meta.Alarm == nil || s.meta.Alarm.After(at) {
		return nil // deleted or moved later meanwhile
	}
	h := &callHost{m: m, s: s, ctx: ctx}
	err = s.iso.Alarm(m.limitCtx(ctx, false, s.ver, h), h)
	cause := h.endCall()
	if err != nil {
		return m.callFailed(s, err, cause)
	}
	if h.alarm == nil {
		h.alarm = &alarmChange{delete: true}
	}
	if err := h.commit(ctx); err != nil {
		return err
	}
	m.touch(s)
	m.requestDone(s)
	return nil
}
