package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/store"
)

// An agent's preview (agentcloud dev) is a namespace of its own: the
// sessions of agent a reached as preview belong to the internal agent
// "a.preview", whose record names the preview version as its current one.
// A dot is not allowed in an agent name (api.IDRules), so no agent a user
// deploys can be, or reach, another agent's preview; the router refuses
// the name in every path, and only the preview routes map a to it. The
// preview's state, snapshots, alarms and sessions are keyed under that
// name, apart from production's; its versions are the agent's own (one
// content-addressed store). Setting or ending a preview never touches the
// agent's record, so production's version and sessions stay as they are.

// previewSuffix makes an agent's preview name.
const previewSuffix = api.PreviewSuffix

// PreviewName is the internal agent name of agent's preview namespace.
func PreviewName(agent string) string { return agent + previewSuffix }

// previewBase is the agent a preview name is the preview of; ok is false
// for any other name.
func previewBase(name string) (string, bool) {
	base, ok := strings.CutSuffix(name, previewSuffix)
	return base, ok && api.ValidID(api.IDAgent, base)
}

// noPreview is the 404 of an agent without a preview the caller can reach.
func noPreview(agent string) error {
	return api.Errorf(api.KindNotFound, "agent %s has no preview: run agentcloud dev DIR", agent)
}

// SetPreview makes digest, a stored version of agent, the version agent's
// preview sessions run (creating the preview namespace on first use).
// Live preview sessions on an older preview version are retired, so their
// next request runs the new one; production is not touched. The preview
// is owned by the agent's owner, or by owner (whoever ran the preview)
// while the agent has never been deployed. It does not authorize: the
// pipeline's preview run, authorized like a deploy, calls it.
func (m *Manager) SetPreview(ctx context.Context, agent, digest, owner string) error {
	if p := api.CheckID("agent", api.IDAgent, agent); p != nil {
		return p
	}
	if _, err := m.versionRecord(ctx, agent, digest, "version"); err != nil {
		return err
	}
	m.routeMu.Lock()
	defer m.routeMu.Unlock()
	base, err := m.readAgent(ctx, agent)
	if err != nil {
		return err
	}
	if base.exists && base.rec.Deleting {
		return api.Errorf(api.KindConflict, "agent %s is being deleted", agent)
	}
	if base.exists {
		owner = base.rec.Owner
	}
	name := PreviewName(agent)
	cur, err := m.readAgent(ctx, name)
	if err != nil {
		return err
	}
	now := m.now().UTC()
	ar := agentRecord{Name: name, Current: digest, Owner: owner, Created: now, Updated: now}
	key := store.Key(name)
	if cur.exists {
		ar.Created = cur.rec.Created
		b, _ := json.Marshal(ar)
		_, err = m.agents.Update(ctx, key, b, cur.rev)
	} else {
		b, _ := json.Marshal(ar)
		_, err = m.agents.Create(ctx, key, b)
	}
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists) {
		return api.Errorf(api.KindConflict, "the preview of agent %s changed meanwhile: %w", agent, err)
	}
	if err != nil {
		return fmt.Errorf("set preview of agent %s: %w", agent, err)
	}
	m.agentCache.put(key, ar)
	m.retireUnserved(name, ar.routing())
	return nil
}

// PreviewVersion is the version agent's preview runs; ok is false when it
// has none.
func (m *Manager) PreviewVersion(ctx context.Context, agent string) (digest string, ok bool, err error) {
	if p := api.CheckID("agent", api.IDAgent, agent); p != nil {
		return "", false, p
	}
	ar, ok, err := m.agentRecord(ctx, PreviewName(agent))
	if err != nil || !ok {
		return "", false, err
	}
	return ar.Current, true, nil
}

// PreviewAgent returns the internal agent name that reaches agent's
// preview sessions (for Call and the session routes), or a 404 when the
// agent has no preview, or when its preview was made by someone other
// than the agent's owner (the name was deployed by another principal
// since): a preview is only ever reached by the owner's traffic.
func (m *Manager) PreviewAgent(ctx context.Context, agent string) (string, error) {
	if p := api.CheckID("agent", api.IDAgent, agent); p != nil {
		return "", p
	}
	name := PreviewName(agent)
	pr, ok, err := m.agentRecord(ctx, name)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", noPreview(agent)
	}
	base, bok, err := m.agentRecord(ctx, agent)
	if err != nil {
		return "", err
	}
	if bok && base.Owner != pr.Owner {
		return "", noPreview(agent)
	}
	return name, nil
}

// EndPreview removes agent's preview: its record and every preview
// session with its state, snapshot and alarm. Production is not touched.
func (m *Manager) EndPreview(ctx context.Context, agent string) error {
	if p := api.CheckID("agent", api.IDAgent, agent); p != nil {
		return p
	}
	err := m.deleteAgent(ctx, PreviewName(agent))
	if api.IsKind(err, api.KindNotFound) {
		return noPreview(agent)
	}
	return err
}
