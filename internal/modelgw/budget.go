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

// budgetKey is budget.<agent>.<session>; an agent-wide budget has session "".
func budgetKey(agent, session string) string { return store.Key("budget", agent, session) }

// SetBudget creates, replaces or (Tokens 0) removes a budget. Tokens used
// so far are kept unless Reset.
func (g *Gateway) SetBudget(ctx context.Context, req api.ModelBudgetRequest) (api.ModelBudget, error) {
	if req.Agent == "" {
		return api.ModelBudget{}, api.FieldErrorf(api.KindValidation, "agent", "agent is required")
	}
	if req.Tokens < 0 || req.Tokens > 1<<50 {
		return api.ModelBudget{}, api.FieldErrorf(api.KindValidation, "tokens", "tokens must be from 0 (remove) to 2^50")
	}
	key := budgetKey(req.Agent, req.Session)
	out := api.ModelBudget{Agent: req.Agent, Session: req.Session, Tokens: req.Tokens}
	if req.Tokens == 0 {
		defer g.locks.lock(key)()
		g.known.Remove(key)
		if err := g.kv.Delete(ctx, key); err != nil {
			return out, fmt.Errorf("remove budget: %w", err)
		}
		return out, nil
	}
	err := g.update(ctx, key, func(old []byte) ([]byte, error) {
		if old != nil && !req.Reset {
			if err := json.Unmarshal(old, &out); err != nil {
				return nil, fmt.Errorf("decode budget: %w", err)
			}
		}
		out.Agent, out.Session, out.Tokens = req.Agent, req.Session, req.Tokens
		if req.Reset {
			out.Used = out.Reserved // in-flight reservations still settle
		}
		return json.Marshal(out)
	})
	return out, err
}

// Budgets lists budgets, all or one agent's.
func (g *Gateway) Budgets(ctx context.Context, agent string) ([]api.ModelBudget, error) {
	prefix := "budget"
	if agent != "" {
		prefix = store.Key("budget", agent)
	}
	keys, err := g.kv.Keys(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list budgets: %w", err)
	}
	out := []api.ModelBudget{}
	for _, k := range keys {
		e, err := g.kv.Get(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var b api.ModelBudget
		if err := json.Unmarshal(e.Value, &b); err == nil {
			out = append(out, b)
		}
	}
	return out, nil
}

// reservation is tokens held against the budgets of one call.
type reservation struct {
	g      *Gateway
	keys   []string
	tokens int64
}

// reserve holds tokens against the agent's and the session's budgets
// (those that exist) under compare-and-set: all or none. A caller with no
// budget gets an empty reservation.
func (g *Gateway) reserve(ctx context.Context, c Caller, tokens int64) (*reservation, error) {
	res := &reservation{g: g, tokens: tokens}
	if c.Agent == "" {
		return res, nil
	}
	keys := []string{budgetKey(c.Agent, "")}
	if c.Session != "" {
		keys = append(keys, budgetKey(c.Agent, c.Session))
	}
	for _, key := range keys {
		err := g.update(ctx, key, func(old []byte) ([]byte, error) {
			if old == nil {
				return nil, errSkip
			}
			var b api.ModelBudget
			if err := json.Unmarshal(old, &b); err != nil {
				return nil, fmt.Errorf("decode budget: %w", err)
			}
			if b.Used+tokens > b.Tokens {
				who := "agent " + b.Agent
				if b.Session != "" {
					who = "session " + b.Agent + "/" + b.Session
				}
				return nil, api.Errorf(api.KindBudgetExceeded,
					"token budget of %s exceeded: %d of %d tokens left, this request may use up to %d (prompt bound plus max_tokens); lower max_tokens or raise the budget with agentcloud models budget",
					who, max(b.Tokens-b.Used, 0), b.Tokens, tokens)
			}
			b.Used += tokens
			b.Reserved += tokens
			return json.Marshal(b)
		})
		if errors.Is(err, errSkip) {
			continue
		}
		if err != nil {
			res.settle(0)
			return nil, err
		}
		res.keys = append(res.keys, key)
	}
	return res, nil
}

// active reports whether any budget applies.
func (r *reservation) active() bool { return r != nil && len(r.keys) > 0 }

// settle replaces the reservation with the tokens actually used. It runs
// on its own context so a caller that went away still releases its hold.
// actual above the reservation (a provider ignoring max_tokens) is charged
// in full: the budget records what was spent.
func (r *reservation) settle(actual int64) {
	if r == nil || len(r.keys) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, key := range r.keys {
		err := r.g.update(ctx, key, func(old []byte) ([]byte, error) {
			if old == nil {
				return nil, errSkip // removed meanwhile
			}
			var b api.ModelBudget
			if err := json.Unmarshal(old, &b); err != nil {
				return nil, fmt.Errorf("decode budget: %w", err)
			}
			b.Used += actual - r.tokens
			b.Reserved = max(b.Reserved-r.tokens, 0)
			b.Used = max(b.Used, 0)
			return json.Marshal(b)
		})
		if err != nil && !errors.Is(err, errSkip) {
			r.g.cfg.Logger.Error("settle token budget", "key", key, "err", err)
		}
	}
	r.keys = nil
}
