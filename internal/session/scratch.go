package session

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/store"
)

// This file is the deploy pipeline's view of the manager (internal/pipeline):
// store a version without making it current, build its template, run a
// scratch session of it, and switch the current version with a
// compare-and-set. Deploy remains the one-step path.

// StoreVersion stores b as an immutable version of its agent without making
// it current (the pipeline's build stage makes it current only at release).
// Storing a digest that is stored already is not an error.
func (m *Manager) StoreVersion(ctx context.Context, b *bundle.Bundle) (api.AgentVersion, error) {
	tgz, err := b.TarGz()
	if err != nil {
		return api.AgentVersion{}, fmt.Errorf("pack bundle: %w", err)
	}
	v, err := m.newVersion(versionRecord{Agent: b.Manifest.Name, Digest: b.Digest, Created: m.now().UTC(),
		Size: len(tgz), Files: len(b.Files), Manifest: b.Manifest}, b)
	if err != nil {
		return api.AgentVersion{}, err
	}
	if v, err = m.storeVersion(ctx, v, tgz); err != nil {
		return api.AgentVersion{}, err
	}
	return v.info(), nil
}

// BuildVersion initialises a stored version under the init limits and
// stores its template image (the post-init heap sessions start from). It
// returns the template's digest ("" for a wasm agent, which has none).
// Building a version that is built already loads the stored template.
func (m *Manager) BuildVersion(ctx context.Context, agent, digest string) (string, error) {
	v, err := m.loadVersion(ctx, agent, digest)
	if err != nil {
		return "", err
	}
	if err := v.check(ctx, m); err != nil {
		return "", deployInitProblem(v, err)
	}
	if v.isWasm() {
		return "", nil
	}
	// The template was just loaded or built: its digest is known, so the
	// stored bytes are not read back (a deploy's build stage).
	if err := v.tmu.lock(ctx); err != nil {
		return "", err
	}
	known := v.tmplSum
	v.tmu.unlock()
	if known != "" {
		return known, nil
	}
	b, err := m.bundles.Get(ctx, "template-"+digest)
	if err != nil {
		return "", fmt.Errorf("template of %s: %w", short(digest), err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// VersionBundle returns a stored version's bundle.
func (m *Manager) VersionBundle(ctx context.Context, agent, digest string) (*bundle.Bundle, error) {
	if _, err := m.versions.Get(ctx, store.Key(agent, digest)); err != nil {
		if isNotFound(err) {
			return nil, api.Errorf(api.KindNotFound, "agent %s has no version %s", agent, short(digest))
		}
		return nil, fmt.Errorf("agent %s version %s: %w", agent, short(digest), err)
	}
	tgz, err := m.bundles.Get(ctx, digest)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", short(digest), err)
	}
	b, err := bundle.LoadTarGz(bytes.NewReader(tgz))
	if err != nil {
		return nil, fmt.Errorf("stored bundle %s: %w", short(digest), err)
	}
	return b, nil
}

// CurrentVersion returns the digest of the agent's current version, read
// from the store; ok is false when the agent is not deployed.
func (m *Manager) CurrentVersion(ctx context.Context, agent string) (digest string, ok bool, err error) {
	cur, err := m.readAgent(ctx, agent)
	if err != nil || !cur.exists {
		return "", false, err
	}
	return cur.rec.Current, true, nil
}

// ErrVersionMoved is returned by SwitchVersion when the agent's current
// version is no longer the one expected.
var ErrVersionMoved = errors.New("the agent's current version changed")

// SwitchVersion makes stored version digest the agent's current version if
// the current one is still expect ("" for an agent never deployed), and
// retires live sessions of other versions. owner is recorded for a new
// agent. Switching to the version already current succeeds (a resumed
// release is idempotent). A moved pointer is ErrVersionMoved, wrapped in a
// conflict problem.
func (m *Manager) SwitchVersion(ctx context.Context, agent, digest, expect, owner string) error {
	if _, err := m.versions.Get(ctx, store.Key(agent, digest)); err != nil {
		return fmt.Errorf("switch %s to %s: %w", agent, short(digest), err)
	}
	cur, err := m.readAgent(ctx, agent)
	if err != nil {
		return err
	}
	if cur.exists && cur.rec.Current == digest {
		m.retireAgent(agent, digest)
		return nil
	}
	have := ""
	if cur.exists {
		have = cur.rec.Current
	}
	if have != expect {
		return fmt.Errorf("%w: %w", api.Errorf(api.KindConflict, "agent %s is at version %s, not %s as when the run started; run it again",
			agent, short(have), short(expect)), ErrVersionMoved)
	}
	now := m.now().UTC()
	ar := agentRecord{Name: agent, Current: digest, Created: now, Updated: now, Owner: owner}
	if cur.exists {
		ar.Created, ar.Owner = cur.rec.Created, cur.rec.Owner
	}
	rec, _ := json.Marshal(ar)
	key := store.Key(agent)
	if cur.exists {
		_, err = m.agents.Update(ctx, key, rec, cur.rev)
	} else {
		_, err = m.agents.Create(ctx, key, rec)
	}
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists) {
		return fmt.Errorf("%w: %w", api.Errorf(api.KindConflict, "agent %s was changed by another deploy; run it again", agent), ErrVersionMoved)
	}
	if err != nil {
		return err
	}
	m.agentCache.put(key, ar)
	m.retireAgent(agent, digest)
	return nil
}

// scratchPrefix starts every scratch session id. "~" is not allowed in a
// session id (api.IDSession), so no route, tool or binding can address a
// scratch session or its state.
const scratchPrefix = "~scratch-"

// Scratch is a fresh session of one stored version that lives outside the
// live-session map: requests reach it only through Call, its durable state
// is kept under a session id no one else can name, it sets no alarms, and
// Close removes its state. The pipeline's test stage runs a bundle's tests
// against it. A Scratch runs one request at a time.
type Scratch struct {
	m  *Manager
	mu sync.Mutex
	s  *session
}

// NewScratch starts a scratch session of version digest of agent. name
// tells scratch sessions apart (the pipeline uses the run id); a leftover
// scratch state of the same name is cleared first.
func (m *Manager) NewScratch(ctx context.Context, agent, digest, name string) (*Scratch, error) {
	if p := api.CheckID("agent", api.IDAgent, agent); p != nil {
		return nil, p
	}
	if name == "" || len(name) > 100 {
		return nil, errors.New("scratch session name must be 1 to 100 bytes")
	}
	v, err := m.loadVersion(ctx, agent, digest)
	if err != nil {
		return nil, err
	}
	k := sessKey{agent: agent, id: scratchPrefix + name}
	sc := &Scratch{m: m, s: &session{key: k, ver: v}}
	if err := sc.clear(ctx); err != nil {
		return nil, err
	}
	iso, err := m.start(ctx, v, k, nil)
	if err != nil {
		return nil, err
	}
	now := m.now().UTC()
	sc.s.iso = iso
	sc.s.meta = Meta{Agent: agent, ID: k.id, Version: digest, Created: now, LastActive: now}
	return sc, nil
}

// Call runs one request in the scratch session under the version's limits.
// Its state writes commit like a session's; an alarm it sets is dropped.
func (sc *Scratch) Call(ctx context.Context, req isolate.Request) (isolate.Response, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	m, s := sc.m, sc.s
	if len(req.Body) > m.MaxBodyBytes() {
		return isolate.Response{}, BodyTooLarge("request body", m.MaxBodyBytes())
	}
	if s.iso == nil {
		iso, err := m.start(ctx, s.ver, s.key, nil)
		if err != nil {
			return isolate.Response{}, err
		}
		s.iso = iso
	}
	h := &callHost{m: m, s: s, ctx: ctx}
	resp, err := s.iso.Fetch(m.limitCtx(ctx, false, s.ver, h), req, h)
	cause := h.endCall()
	if err != nil {
		return isolate.Response{}, sc.failed(err, cause)
	}
	h.alarm = nil
	if err := h.commit(ctx); err != nil {
		return isolate.Response{}, err
	}
	return resp, nil
}

// failed maps an error like a session call does, restarting the isolate
// on the next call when it died.
func (sc *Scratch) failed(err, cause error) error {
	s := sc.s
	iso := s.iso
	perr := sc.m.callFailed(s, err, cause) // may close and drop s.iso
	if s.iso == nil && iso != nil {
		s.gone = false
	}
	return perr
}

// Close stops the scratch session and deletes its state.
func (sc *Scratch) Close(ctx context.Context) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.s.iso != nil {
		_ = sc.s.iso.Close(ctx)
		sc.s.iso = nil
	}
	return sc.clear(ctx)
}

// clear deletes every state key and pending commit of the scratch session.
func (sc *Scratch) clear(ctx context.Context) error {
	k := sc.s.key
	keys, err := sc.m.state.Keys(ctx, store.Key(k.agent, k.id))
	if err != nil {
		return fmt.Errorf("scratch state: %w", err)
	}
	var errs []error
	for _, key := range keys {
		errs = append(errs, sc.m.state.Delete(ctx, key))
	}
	errs = append(errs, sc.m.txns.Delete(ctx, store.Key(k.agent, k.id)))
	sc.m.caches.PurgeName(scratchCacheName(k)) // unreachable once closed
	return errors.Join(errs...)
}
