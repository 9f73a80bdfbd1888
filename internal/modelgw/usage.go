package modelgw

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/store"
)

// usageKey is usage.a.<agent>.<session> for agent callers and
// usage.u.<user> for everyone else.
func usageKey(c Caller) string {
	if c.Agent != "" {
		return store.Key("usage", "a", c.Agent, c.Session)
	}
	return store.Key("usage", "u", c.User)
}

// spend is what one call used.
type spend struct {
	provider   string
	prompt     int64
	completion int64
	cost       float64
	cacheHit   bool
}

func (s spend) add(u *api.UsageCounts) {
	u.Requests++
	if s.cacheHit {
		u.CacheHits++
	}
	u.PromptTokens += s.prompt
	u.CompletionTokens += s.completion
	u.CostUSD += s.cost
}

// record adds s to the caller's usage. Failures are logged: the answer has
// already been produced.
func (g *Gateway) record(c Caller, s spend) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := g.update(ctx, usageKey(c), func(old []byte) ([]byte, error) {
		u := api.Usage{Agent: c.Agent, Session: c.Session, User: c.User}
		if old != nil {
			if err := json.Unmarshal(old, &u); err != nil {
				return nil, fmt.Errorf("decode usage: %w", err)
			}
		}
		s.add(&u.UsageCounts)
		if s.provider != "" {
			if u.ByProvider == nil {
				u.ByProvider = map[string]api.UsageCounts{}
			}
			p := u.ByProvider[s.provider]
			s.add(&p)
			u.ByProvider[s.provider] = p
		}
		u.Updated = g.cfg.Now().UTC()
		return json.Marshal(u)
	})
	if err != nil {
		g.cfg.Logger.Error("record model usage", "agent", c.Agent, "session", c.Session, "user", c.User, "err", err)
	}
}

// UsageFilter selects usage records; empty fields match everything.
type UsageFilter struct {
	Agent, Session, User string
}

// Usage returns the records matching f and their total.
func (g *Gateway) Usage(ctx context.Context, f UsageFilter) (api.UsageReport, error) {
	prefix := "usage"
	switch {
	case f.Agent != "" && f.Session != "":
		prefix = store.Key("usage", "a", f.Agent, f.Session)
	case f.Agent != "":
		prefix = store.Key("usage", "a", f.Agent)
	case f.User != "":
		prefix = store.Key("usage", "u", f.User)
	case f.Session != "":
		return api.UsageReport{}, api.FieldErrorf(api.KindValidation, "session", "session needs agent: ?agent=A&session=S")
	}
	rep := api.UsageReport{Records: []api.Usage{}}
	var keys []string
	if e, err := g.kv.Get(ctx, prefix); err == nil {
		keys = append(keys, e.Key) // an exact record (session or user)
	}
	more, err := g.kv.Keys(ctx, prefix)
	if err != nil {
		return rep, fmt.Errorf("list usage: %w", err)
	}
	keys = append(keys, more...)
	for _, k := range keys {
		e, err := g.kv.Get(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return rep, err
		}
		var u api.Usage
		if err := json.Unmarshal(e.Value, &u); err != nil {
			continue
		}
		rep.Records = append(rep.Records, u)
		t := &rep.Total
		t.Requests += u.Requests
		t.CacheHits += u.CacheHits
		t.PromptTokens += u.PromptTokens
		t.CompletionTokens += u.CompletionTokens
		t.CostUSD += u.CostUSD
	}
	return rep, nil
}
