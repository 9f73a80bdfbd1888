package session

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/store"
)

// Routing is which versions serve an agent's sessions. Stable serves
// every session the canary does not; Canary, when set, serves the new
// sessions whose Bucket is below Percent and keeps them for their life.
// A session is assigned at creation and recorded in its Meta; it moves
// only when its version stops serving (a rollout completes or rolls back,
// a deploy replaces the version), at its next activation, by the same
// rule. The routing lives in the agent record (Current is Stable), so a
// change reaches every node through the agents watch.
type Routing struct {
	Stable  string `json:"stable"`
	Canary  string `json:"canary,omitempty"`
	Percent int    `json:"percent,omitempty"`
}

// Serves reports whether digest is one of the versions serving.
func (r Routing) Serves(digest string) bool {
	return digest != "" && (digest == r.Stable || digest == r.Canary)
}

// Pick is the version a new (or moving) session agent/id gets.
func (r Routing) Pick(agent, id string) string {
	if r.Canary != "" && Bucket(agent, id) < r.Percent {
		return r.Canary
	}
	return r.Stable
}

// Bucket places a session in 0..99, by a hash of agent and id: the same
// on every node and every restart, spread evenly, and independent of
// the order sessions appear in. A canary at Percent p takes the sessions
// of buckets below p, so raising p only adds sessions to it.
func Bucket(agent, id string) int {
	h := sha256.New()
	h.Write([]byte(agent))
	h.Write([]byte{0})
	h.Write([]byte(id))
	var sum [sha256.Size]byte
	return int(binary.BigEndian.Uint64(h.Sum(sum[:0])[:8]) % 100)
}

// routing is the record's routing.
func (ar agentRecord) routing() Routing {
	return Routing{Stable: ar.Current, Canary: ar.Canary, Percent: ar.CanaryPercent}
}

// RoutingState is an agent's routing as stored, with the revision a
// compare-and-set (SetRouting) replaces; Exists is false (Revision 0) for
// an agent that was never deployed.
type RoutingState struct {
	Routing
	Revision uint64
	Exists   bool
	Owner    string
}

// ReadRouting reads an agent's routing from the store (not the watched
// copy), for a compare-and-set.
func (m *Manager) ReadRouting(ctx context.Context, agent string) (RoutingState, error) {
	if p := api.CheckID("agent", api.IDAgent, agent); p != nil {
		return RoutingState{}, p
	}
	cur, err := m.readAgent(ctx, agent)
	if err != nil {
		return RoutingState{}, err
	}
	return RoutingState{Routing: cur.rec.routing(), Revision: cur.rev, Exists: cur.exists, Owner: cur.rec.Owner}, nil
}

// CheckRouting validates r for agent: both versions stored versions of the
// agent, the canary different from the stable one, Percent 0 to 100 and 0
// without a canary.
func (m *Manager) CheckRouting(ctx context.Context, agent string, r Routing) error {
	if p := api.CheckID("agent", api.IDAgent, agent); p != nil {
		return p
	}
	if r.Percent < 0 || r.Percent > 100 {
		return api.FieldErrorf(api.KindValidation, "percent", "percent %d is outside 0 to 100", r.Percent)
	}
	if r.Canary == "" && r.Percent != 0 {
		return api.FieldErrorf(api.KindValidation, "percent", "percent %d without a canary version: give the canary or percent 0", r.Percent)
	}
	if r.Canary != "" && r.Canary == r.Stable {
		return api.FieldErrorf(api.KindValidation, "canary", "the canary is the stable version %s", short(r.Stable))
	}
	for field, d := range map[string]string{"stable": r.Stable, "canary": r.Canary} {
		if d == "" && field == "canary" {
			continue
		}
		if _, err := m.versionRecord(ctx, agent, d, field); err != nil {
			return err
		}
	}
	return nil
}

// versionRecord reads a stored version of agent; a missing one is a 404
// naming field.
func (m *Manager) versionRecord(ctx context.Context, agent, digest, field string) (versionRecord, error) {
	var rec versionRecord
	if digest == "" || len(digest) > 128 {
		return rec, api.FieldErrorf(api.KindValidation, field, "%s version: give a version digest (sha256:...)", field)
	}
	e, err := m.versions.Get(ctx, store.Key(agent, digest))
	if isNotFound(err) {
		return rec, api.FieldErrorf(api.KindNotFound, field, "agent %s has no version %s", agent, short(digest))
	}
	if err != nil {
		return rec, fmt.Errorf("agent %s version %s: %w", agent, short(digest), err)
	}
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		return rec, fmt.Errorf("agent %s version record: %w", agent, err)
	}
	return rec, nil
}

// SetRouting replaces agent's routing with r if the stored record is still
// at revision rev (0: the agent must not exist yet; it is created, owned
// by owner, the SPIFFE ID or name of whoever started the rollout, as a
// deploy would be). It returns the new revision;
// losing the race is a conflict problem wrapping store.ErrConflict (or
// store.ErrExists). It does not authorize: its callers (the rollout
// controller, driven by the pipeline or the rollout routes) do. Live
// sessions of this node on a version r no longer serves are retired at
// once; those of other nodes at their next request.
func (m *Manager) SetRouting(ctx context.Context, agent string, r Routing, rev uint64, owner string) (uint64, error) {
	if err := m.CheckRouting(ctx, agent, r); err != nil {
		return 0, err
	}
	m.routeMu.Lock()
	defer m.routeMu.Unlock()
	key := store.Key(agent)
	now := m.now().UTC()
	ar := agentRecord{Name: agent, Current: r.Stable, Canary: r.Canary, CanaryPercent: r.Percent, Created: now, Updated: now}
	var (
		newRev uint64
		err    error
	)
	if rev == 0 {
		ar.Owner = owner
		b, _ := json.Marshal(ar)
		newRev, err = m.agents.Create(ctx, key, b)
	} else {
		cur, rerr := m.readAgent(ctx, agent)
		if rerr != nil {
			return 0, rerr
		}
		if !cur.exists || cur.rev != rev {
			return 0, api.Errorf(api.KindConflict, "agent %s changed since revision %d: %w", agent, rev, store.ErrConflict)
		}
		ar.Created, ar.Owner = cur.rec.Created, cur.rec.Owner
		b, _ := json.Marshal(ar)
		newRev, err = m.agents.Update(ctx, key, b, rev)
	}
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists) {
		return 0, api.Errorf(api.KindConflict, "agent %s changed meanwhile: %w", agent, err)
	}
	if err != nil {
		return 0, fmt.Errorf("set routing of agent %s: %w", agent, err)
	}
	m.agentCache.put(key, ar)
	m.retireUnserved(agent, r)
	return newRev, nil
}

// retireUnserved closes this node's live sessions of agent whose version r
// does not serve; their next request moves them (activate).
func (m *Manager) retireUnserved(agent string, r Routing) {
	m.mu.Lock()
	var old []*session
	for k, s := range m.sessions {
		if k.agent == agent {
			old = append(old, s)
		}
	}
	m.mu.Unlock()
	for _, s := range old {
		s.mu.Lock()
		if !s.gone && s.ver != nil && !r.Serves(s.ver.rec.Digest) {
			m.retireLocked(s)
		}
		s.mu.Unlock()
	}
}

// retireLocked closes s's isolate and removes it from the live map without
// a snapshot (its globals restart); s.mu must be held.
func (m *Manager) retireLocked(s *session) {
	if s.iso != nil {
		m.met.left(leaveRetired, 0)
		_ = s.iso.Close(context.Background())
		s.iso = nil
	}
	m.forget(s)
}

// unserved reports whether live session s runs a version its agent's
// routing no longer serves (changed on this node or another); s.mu held.
// A routing that cannot be read keeps the session as it is.
func (m *Manager) unserved(ctx context.Context, s *session) bool {
	if s.ver == nil {
		return false
	}
	ar, ok, err := m.agentRecord(ctx, s.key.agent)
	return err == nil && ok && !ar.routing().Serves(s.ver.rec.Digest)
}

// AddVersion stores b as an immutable version of its agent, after checking
// that its code initialises (under the init limits), without making it
// serve: a rollout does that (SetRouting). Adding a version that is stored
// already returns it. It does not authorize: the pipeline does.
func (m *Manager) AddVersion(ctx context.Context, b *bundle.Bundle) (api.AgentVersion, error) {
	tgz, err := b.TarGz()
	if err != nil {
		return api.AgentVersion{}, fmt.Errorf("pack bundle: %w", err)
	}
	v, err := m.newVersion(versionRecord{Agent: b.Manifest.Name, Digest: b.Digest, Created: m.now().UTC(),
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
	return v.info(), nil
}

// VersionManifest returns a stored version's manifest (its rollout steps,
// say).
func (m *Manager) VersionManifest(ctx context.Context, agent, digest string) (bundle.Manifest, error) {
	if p := api.CheckID("agent", api.IDAgent, agent); p != nil {
		return bundle.Manifest{}, p
	}
	rec, err := m.versionRecord(ctx, agent, digest, "version")
	return rec.Manifest, err
}

// DeleteVersion removes a stored version of agent: its record, bundle and
// template. A version that serves (stable or canary) is refused with a
// conflict. Sessions still recorded on it move at their next activation.
// Deletion and SetRouting are serialised on this node.
func (m *Manager) DeleteVersion(ctx context.Context, agent, digest string) error {
	if p := api.CheckID("agent", api.IDAgent, agent); p != nil {
		return p
	}
	if _, err := m.versionRecord(ctx, agent, digest, "version"); err != nil {
		return err
	}
	m.routeMu.Lock()
	defer m.routeMu.Unlock()
	cur, err := m.readAgent(ctx, agent)
	if err != nil {
		return err
	}
	if cur.exists && cur.rec.routing().Serves(digest) {
		return api.FieldErrorf(api.KindConflict, "version", "version %s of agent %s serves; it cannot be deleted", short(digest), agent)
	}
	// The record goes first: without it the version is unknown, so a
	// crash before the blobs are gone leaves only unreachable bytes.
	if err := m.versions.Delete(ctx, store.Key(agent, digest)); err != nil {
		return fmt.Errorf("delete version %s: %w", short(digest), err)
	}
	for _, name := range []string{digest, "template-" + digest} {
		if err := m.bundles.Delete(ctx, name); err != nil && !isNotFound(err) {
			return fmt.Errorf("delete %s: %w", name, err)
		}
	}
	m.vmu.Lock()
	delete(m.vcache, digest)
	m.vmu.Unlock()
	return nil
}

// LiveSessions counts this node's live sessions of agent by version.
func (m *Manager) LiveSessions(agent string) map[string]int {
	out := map[string]int{}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, s := range m.sessions {
		if k.agent == agent && s.elem != nil && s.digest != "" {
			out[s.digest]++
		}
	}
	return out
}

// stickyVersion is the version an existing session activates on: the one
// its meta records while that version serves, else (a rollout completed or
// rolled back, a deploy replaced it) the one the routing picks now, which
// is recorded in its meta at once (compare-and-set at rev, so a racing
// node's record is not overwritten). s.meta is the stored meta.
func (m *Manager) stickyVersion(ctx context.Context, s *session, rt Routing, rev uint64) (*version, error) {
	k := s.key
	if rt.Serves(s.meta.Version) {
		return m.loadVersion(ctx, k.agent, s.meta.Version)
	}
	v, err := m.loadVersion(ctx, k.agent, rt.Pick(k.agent, k.id))
	if err != nil {
		return nil, err
	}
	moved := s.meta
	moved.Version = v.rec.Digest
	b, _ := json.Marshal(moved)
	if _, err := m.meta.Update(ctx, store.Key(k.agent, k.id), b, rev); err != nil && !errors.Is(err, store.ErrConflict) {
		return nil, fmt.Errorf("move session %s/%s to version %s: %w", k.agent, k.id, short(v.rec.Digest), err)
	}
	m.log.Debug("session moved", "agent", k.agent, "session", k.id, "from", short(s.meta.Version), "to", short(v.rec.Digest))
	return v, nil
}
