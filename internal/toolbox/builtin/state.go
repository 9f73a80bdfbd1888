package builtin

import (
	"context"
	"encoding/json"

	"github.com/agentcloud/agentcloud/internal/toolbox"
)

// Actions the state tools are authorized as (the REST API's).
const (
	actionStateRead  = "state.read"
	actionStateWrite = "state.write"
)

type stateScope struct {
	Agent   string `json:"agent"`
	Session string `json:"session"`
}

// scope resolves whose state a call addresses and authorizes action on it:
// a session its own (naming another is refused), anyone else the agent and
// session they name.
func (p *Provider) scope(ctx context.Context, tool string, c toolbox.Caller, s stateScope, action string) (agent, id string, err error) {
	if p.d.State == nil {
		return "", "", toolbox.Errorf(toolbox.CodeUnavailable, tool, "session state is not available on this node")
	}
	switch {
	case c.Session != "":
		if (s.Agent != "" && s.Agent != c.Agent) || (s.Session != "" && s.Session != c.Session) {
			e := toolbox.Errorf(toolbox.CodeInvalidArgs, tool, "a session reads and writes only its own state: leave agent and session out")
			e.Fields = []toolbox.FieldError{{Field: "session", Detail: "must be empty (or the calling session) when a session calls"}}
			return "", "", e
		}
		agent, id = c.Agent, c.Session
	case s.Agent == "" || s.Session == "":
		e := toolbox.Errorf(toolbox.CodeInvalidArgs, tool, "name the session whose state to use: pass agent and session")
		e.Fields = []toolbox.FieldError{{Field: "agent", Detail: "agent and session are required when the caller is not a session"}}
		return "", "", e
	default:
		agent, id = s.Agent, s.Session
	}
	if p.d.Authorize != nil {
		if err := p.d.Authorize(ctx, c, action, Resource{Type: "Session", ID: id, Parent: agent}); err != nil {
			return "", "", platformErr(tool, err)
		}
	}
	return agent, id, nil
}

// flow moves labels for a state tool that carries data into (write) or
// out of (read) session agent/id on c's behalf.
func (p *Provider) flow(ctx context.Context, tool string, c toolbox.Caller, agent, id string, write bool) error {
	if p.d.Flow == nil || p.d.ActAs == nil {
		return nil
	}
	ctx = p.d.ActAs(ctx, c)
	var err error
	if write {
		err = p.d.Flow.Enter(ctx, agent, id)
	} else {
		err = p.d.Flow.Leave(ctx, agent, id)
	}
	if err != nil {
		return platformErr(tool, err)
	}
	return nil
}

func (p *Provider) stateGet(ctx context.Context, c toolbox.Caller, args json.RawMessage) (toolbox.Result, error) {
	const name = "state_get"
	var a struct {
		stateScope
		Key string `json:"key"`
	}
	if err := decode(name, args, &a); err != nil {
		return toolbox.Result{}, err
	}
	agent, id, err := p.scope(ctx, name, c, a.stateScope, actionStateRead)
	if err != nil {
		return toolbox.Result{}, err
	}
	v, ok, err := p.d.State.StateGet(ctx, agent, id, a.Key)
	if err != nil {
		return toolbox.Result{}, platformErr(name, err)
	}
	if err := p.flow(ctx, name, c, agent, id, false); err != nil {
		return toolbox.Result{}, err
	}
	out := struct {
		Key   string          `json:"key"`
		Found bool            `json:"found"`
		Value json.RawMessage `json:"value"`
	}{a.Key, ok, v}
	if !ok {
		out.Value = json.RawMessage("null")
	}
	return structured(out)
}

func (p *Provider) statePut(ctx context.Context, c toolbox.Caller, args json.RawMessage) (toolbox.Result, error) {
	const name = "state_put"
	var a struct {
		stateScope
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	}
	if err := decode(name, args, &a); err != nil {
		return toolbox.Result{}, err
	}
	agent, id, err := p.scope(ctx, name, c, a.stateScope, actionStateWrite)
	if err != nil {
		return toolbox.Result{}, err
	}
	if err := p.flow(ctx, name, c, agent, id, true); err != nil {
		return toolbox.Result{}, err
	}
	if err := p.d.State.StatePut(ctx, agent, id, a.Key, a.Value); err != nil {
		return toolbox.Result{}, platformErr(name, err)
	}
	return structured(map[string]any{"key": a.Key, "ok": true, "bytes": len(a.Value)})
}

func (p *Provider) stateList(ctx context.Context, c toolbox.Caller, args json.RawMessage) (toolbox.Result, error) {
	const name = "state_list"
	var a struct {
		stateScope
		Prefix string `json:"prefix"`
		Limit  int    `json:"limit"`
	}
	if err := decode(name, args, &a); err != nil {
		return toolbox.Result{}, err
	}
	agent, id, err := p.scope(ctx, name, c, a.stateScope, actionStateRead)
	if err != nil {
		return toolbox.Result{}, err
	}
	ents, err := p.d.State.StateList(ctx, agent, id, a.Prefix, a.Limit)
	if err != nil {
		return toolbox.Result{}, platformErr(name, err)
	}
	if err := p.flow(ctx, name, c, agent, id, false); err != nil {
		return toolbox.Result{}, err
	}
	return structured(map[string]any{"entries": ents})
}
