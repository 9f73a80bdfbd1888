package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/store"
)

// maxDeployRetries bounds how often a deploy re-reads the agent record after
// losing a compare-and-set to another deploy of the same agent.
const maxDeployRetries = 16

// Deploy stores b as an immutable version of its agent and makes it current,
// for by (the first deployer of an agent becomes its owner; the zero
// Principal records none).
// Live sessions of the agent are retired so their next request runs the new
// version (durable state is kept; in-memory globals start fresh).
//
// Authorization and the pointer switch are one compare-and-set: the
// deployer is authorized (Config.DeployAuthorizer) against the agent record
// at revision r (read from the store, and seen by the authorizer through
// AgentInfo), and the record
// is replaced only if it is still at r; if another deploy got there first,
// the new record is read and authorized again. So the first deployer owns
// the agent, and nobody else's code becomes current under that ownership
// unless policy lets them deploy it. The code is initialised (under the
// init limits) before any of this is written.
func (m *Manager) Deploy(ctx context.Context, by Principal, b *bundle.Bundle) (api.AgentVersion, error) {
	name := b.Manifest.Name
	key := store.Key(name)
	cur, err := m.readAgent(ctx, name)
	if err != nil {
		return api.AgentVersion{}, err
	}
	if err := m.authorizeDeploy(ctx, by, name, cur); err != nil {
		return api.AgentVersion{}, err
	}
	tgz, err := b.TarGz()
	if err != nil {
		return api.AgentVersion{}, fmt.Errorf("pack bundle: %w", err)
	}
	// Check the code initialises before making it current.
	v, err := m.newVersion(versionRecord{Agent: name, Digest: b.Digest, Created: m.now().UTC(),
		Size: len(tgz), Files: len(b.Files), Manifest: b.Manifest}, b)
	if err != nil {
		return api.AgentVersion{}, err
	}
	if err := v.check(ctx, m); err != nil {
		return api.AgentVersion{}, deployInitProblem(v, err)
	}
	if v, err = m.storeVersion(ctx, v, tgz); err != nil {
		return api.AgentVersion{}, err
	}

	checked := cur.rev
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if cur, err = m.readAgent(ctx, name); err != nil {
				return api.AgentVersion{}, err
			}
		}
		if cur.rev != checked {
			if err := m.authorizeDeploy(ctx, by, name, cur); err != nil {
				return api.AgentVersion{}, err
			}
			checked = cur.rev
		}
		now := m.now().UTC()
		ar := agentRecord{Name: name, Current: b.Digest, Created: now, Updated: now, Owner: by.ID}
		if cur.exists {
			ar.Created = cur.rec.Created
			if cur.rec.Owner != "" {
				ar.Owner = cur.rec.Owner // the first deployer keeps the agent
			}
		}
		rec, _ := json.Marshal(ar)
		if cur.exists {
			_, err = m.agents.Update(ctx, key, rec, cur.rev)
		} else {
			_, err = m.agents.Create(ctx, key, rec)
		}
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists) {
			if attempt < maxDeployRetries {
				continue // another deploy switched the pointer first
			}
			return api.AgentVersion{}, api.Errorf(api.KindConflict, "agent %s is being deployed by others; try again", name)
		}
		if err != nil {
			return api.AgentVersion{}, err
		}
		m.agentCache.put(key, ar)
		break
	}
	m.retireAgent(name, b.Digest)
	return v.info(), nil
}

// storeVersion writes v's bundle and immutable version record unless the
// digest is stored already (then the stored version is used), and caches it.
func (m *Manager) storeVersion(ctx context.Context, v *version, tgz []byte) (*version, error) {
	name, digest := v.rec.Agent, v.rec.Digest
	vkey := store.Key(name, digest)
	if _, err := m.versions.Get(ctx, vkey); errors.Is(err, store.ErrNotFound) {
		if err := m.bundles.Put(ctx, digest, tgz); err != nil {
			return nil, err
		}
		rec, _ := json.Marshal(v.rec)
		if _, err := m.versions.Create(ctx, vkey, rec); err != nil && !errors.Is(err, store.ErrExists) {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	} else if old, err := m.loadVersion(ctx, name, digest); err == nil {
		v = old
	}
	m.vmu.Lock()
	if _, ok := m.vcache[digest]; !ok {
		m.vcache[digest] = v
	}
	m.vmu.Unlock()
	return v, nil
}

// storedAgent is an agent record as read from the store, with its revision
// (0 and exists false when there is none).
type storedAgent struct {
	rec    agentRecord
	rev    uint64
	exists bool
}

// readAgent reads name's record from the store itself (not the watched
// copy), for a compare-and-set.
func (m *Manager) readAgent(ctx context.Context, name string) (storedAgent, error) {
	e, err := m.agents.Get(ctx, store.Key(name))
	if errors.Is(err, store.ErrNotFound) {
		return storedAgent{}, nil
	}
	if err != nil {
		return storedAgent{}, fmt.Errorf("agent %s: %w", name, err)
	}
	var ar agentRecord
	if err := json.Unmarshal(e.Value, &ar); err != nil {
		return storedAgent{}, fmt.Errorf("agent record %s: %w", name, err)
	}
	if ar.Deleting {
		// Being deleted: not there, and a Create of the name conflicts
		// until the deletion ends.
		return storedAgent{}, nil
	}
	return storedAgent{rec: ar, rev: e.Revision, exists: true}, nil
}

// authorizeDeploy asks the DeployAuthorizer whether by may deploy name
// while its record is cur: the authorizer's AgentInfo lookups for name
// answer from cur (pinned in the context), not from the watched copy, so
// the decision is about the revision the compare-and-set replaces.
func (m *Manager) authorizeDeploy(ctx context.Context, by Principal, name string, cur storedAgent) error {
	if m.b.DeployAuthorizer == nil {
		return nil
	}
	if by.ID == "" {
		return api.Errorf(api.KindUnauthenticated, "deploying agent %s needs an authenticated principal", name)
	}
	pctx := context.WithValue(ctx, pinKey{}, pinnedAgent{key: store.Key(name), agent: cur})
	return m.b.DeployAuthorizer.AuthorizeDeploy(pctx, by, name)
}

// pinKey carries a pinnedAgent in a context.
type pinKey struct{}

// pinnedAgent is the agent record an authorization is decided against.
type pinnedAgent struct {
	key   string
	agent storedAgent
}

// pinned returns the record pinned in ctx for store key, if any.
func pinned(ctx context.Context, key string) (storedAgent, bool) {
	p, ok := ctx.Value(pinKey{}).(pinnedAgent)
	if !ok || p.key != key {
		return storedAgent{}, false
	}
	return p.agent, true
}
