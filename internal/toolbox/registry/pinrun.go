package registry

// Pins as a configuration value (pinrun.go): a tool-pins pipeline run
// reviews the definitions an upstream's approval would pin and applies
// exactly those. Pins is the value in force, Proposal what an approval
// would make it, PinExactly puts a reviewed value in force — or, when the
// upstream no longer serves a reviewed definition, changes nothing.

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/agentcloud/agentcloud/api"
)

// maxPins bounds the tools of one tool-pins value.
const maxPins = 1024

// pinOf is a pinned tool as a tool-pins value's item.
func pinOf(d Definition, hash string) api.ToolPin {
	schema, err := canonicalJSON(d.InputSchema)
	if err != nil {
		schema = d.InputSchema
	}
	p := api.ToolPin{Name: d.Name, Hash: hash, Description: d.Description, InputSchema: schema}
	if d.Op != nil {
		p.Endpoint = d.Op.String()
	}
	return p
}

// inForce lists the tools of pins that are callable (pinned and ok).
func inForce(pins []Pinned) []api.ToolPin {
	out := []api.ToolPin{}
	for _, p := range pins {
		if p.Status == StatusOK && p.Hash != "" {
			out = append(out, pinOf(p.Definition, p.Hash))
		}
	}
	slices.SortFunc(out, func(a, b api.ToolPin) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Pins returns the pinned, callable tools of upstream name, sorted: the
// value a tool-pins run changes.
func (r *Registry) Pins(ctx context.Context, name string) ([]api.ToolPin, error) {
	e, err := r.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	return inForce(e.Tools), nil
}

// Proposal is what approving tools (all quarantined tools when none are
// named) would make the pins of upstream name: the value in force with
// each approved tool's pending definition, as served at the last refresh.
// It returns the value and the tools it approves; nothing is changed.
func (r *Registry) Proposal(ctx context.Context, name string, tools []string) ([]api.ToolPin, []string, error) {
	e, err := r.Get(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	pins, done, err := approve(e.Tools, tools)
	if err != nil {
		return nil, nil, api.FieldErrorf(api.KindValidation, "tools", "%v", err)
	}
	return inForce(pins), done, nil
}

// CheckPins validates a tool-pins value: names unique, no hidden
// characters, each hash the hash of its definition. It returns the value
// in canonical form (sorted by name, schemas canonical).
func CheckPins(pins []api.ToolPin) ([]api.ToolPin, error) {
	if len(pins) > maxPins {
		return nil, api.FieldErrorf(api.KindValidation, "tools", "%d tools: at most %d", len(pins), maxPins)
	}
	out := make([]api.ToolPin, 0, len(pins))
	seen := map[string]bool{}
	for i, p := range pins {
		field := fmt.Sprintf("tools[%d]", i)
		d := Definition{Name: p.Name, Description: p.Description, InputSchema: p.InputSchema}
		if err := CheckDefinition(d); err != nil {
			return nil, api.FieldErrorf(api.KindValidation, field, "%v", err)
		}
		if seen[p.Name] {
			return nil, api.FieldErrorf(api.KindValidation, field+".name", "tool %q is named twice", p.Name)
		}
		seen[p.Name] = true
		h, err := Hash(d)
		if err != nil {
			return nil, api.FieldErrorf(api.KindValidation, field+".inputSchema", "%v", err)
		}
		if p.Hash != h {
			return nil, api.FieldErrorf(api.KindValidation, field+".hash", "tool %q: the definition hashes to %s, not %q", p.Name, h, clip(p.Hash))
		}
		if len(p.Endpoint) > 2048 {
			return nil, api.FieldErrorf(api.KindValidation, field+".endpoint", "the endpoint is %d bytes; at most 2048", len(p.Endpoint))
		}
		c := pinOf(d, h)
		c.Endpoint = p.Endpoint
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b api.ToolPin) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// PinExactly makes pins the pinned, callable tools of upstream name, in
// one write: a tool already pinned to its reviewed hash stays; a
// quarantined tool is pinned only when the definition pending for it has
// exactly the reviewed hash and endpoint; a callable tool not in pins is
// quarantined (its definition kept pending, so it can be approved again).
// When the upstream no longer serves a reviewed definition nothing is
// changed and the answer is a conflict naming the tool and both hashes.
func (r *Registry) PinExactly(ctx context.Context, name string, pins []api.ToolPin, by string) error {
	want := make(map[string]api.ToolPin, len(pins))
	for _, p := range pins {
		want[p.Name] = p
	}
	now := r.cfg.Now().UTC()
	var pinned []string
	_, err := r.update(ctx, name, func(e *Entry) error {
		pinned = pinned[:0]
		found := map[string]bool{}
		for i, t := range e.Tools {
			w, ok := want[t.Name]
			if !ok {
				if t.Status == StatusOK && t.Hash != "" {
					d := t.Definition
					e.Tools[i] = Pinned{Definition: t.Definition, Hash: t.Hash, Status: StatusQuarantined,
						Reason: "unpinned by a pipeline run; approve to pin again", Pending: &d, PendingSum: t.Hash}
				}
				continue
			}
			found[t.Name] = true
			if t.Status == StatusOK && t.Hash == w.Hash && pinOf(t.Definition, t.Hash).Endpoint == w.Endpoint {
				continue
			}
			if t.Pending == nil || t.PendingSum != w.Hash || pinOf(*t.Pending, t.PendingSum).Endpoint != w.Endpoint {
				served := "nothing pending"
				if t.Pending != nil {
					served = t.PendingSum
				}
				return api.Errorf(api.KindConflict, "tool %q of %s changed upstream since the run was reviewed: it was %s, it is %s; nothing was pinned",
					t.Name, name, w.Hash, served)
			}
			if err := CheckDefinition(*t.Pending); err != nil {
				return api.Errorf(api.KindConflict, "cannot pin: %v", err)
			}
			e.Tools[i] = Pinned{Definition: *t.Pending, Hash: t.PendingSum, Status: StatusOK}
			pinned = append(pinned, t.Name)
		}
		for n := range want {
			if !found[n] {
				return api.Errorf(api.KindConflict, "tool %q is no longer served by %s; nothing was pinned", n, name)
			}
		}
		if len(pinned) > 0 {
			e.Approved = now
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.log.Info("upstream tools pinned by a run", "upstream", name, "tools", pinned, "by", by)
	return nil
}
