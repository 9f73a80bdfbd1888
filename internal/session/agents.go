package session

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/bundle"
	"github.com/agentcloud/agentcloud/internal/isolate"
	"github.com/agentcloud/agentcloud/internal/store"
)

// agentRecord is the stored pointer from an agent to its current version.
type agentRecord struct {
	Name    string    `json:"name"`
	Current string    `json:"current"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Owner is the SPIFFE ID of the principal that first deployed the agent.
	Owner string `json:"owner,omitempty"`
	// Canary, when set, serves CanaryPercent of new sessions beside
	// Current, the stable version (routing.go). A deploy clears both.
	Canary        string `json:"canary,omitempty"`
	CanaryPercent int    `json:"canary_percent,omitempty"`
	// Deleting marks an agent being deleted (agentdelete.go): it is not
	// found by anything but DeleteAgent and the deletion resumed at Start.
	Deleting bool `json:"deleting,omitempty"`
}

// versionRecord is one immutable, content-addressed version.
type versionRecord struct {
	Agent    string          `json:"agent"`
	Digest   string          `json:"digest"`
	Created  time.Time       `json:"created"`
	Size     int             `json:"size"`
	Files    int             `json:"files"`
	Manifest bundle.Manifest `json:"manifest"`
}

// version is a loaded agent version: its isolate spec and, once built, the
// post-init template every session of it starts from (for runtime "wasm",
// the module, and whether it was checked to start).
type version struct {
	rec             versionRecord
	spec            isolate.Spec
	wasm            *isolate.WasmSpec // runtime "wasm": the module (spec unused)
	idle, cpu, wall time.Duration

	tmu     ctxMutex // guards tmpl, tmplSum and checked; held while loading or building
	tmpl    *isolate.Template
	tmplSum string // "sha256:" of the stored template's bytes, once loaded or built
	checked bool   // runtime "wasm": the module started once

	srcMap *sourceMap // places uncaught errors in the agent's source
}

// template returns the version's post-init image. Snapshots are deltas
// against it, so it must be the same image on every start and every node: it
// is built once (under the init limits), stored, and loaded from the store
// afterwards. A failure is not kept: the next activation tries again, at
// the cost of one bounded initialisation.
func (v *version) template(ctx context.Context, m *Manager) (*isolate.Template, error) {
	if err := v.tmu.lock(ctx); err != nil {
		return nil, err
	}
	defer v.tmu.unlock()
	if v.tmpl != nil {
		return v.tmpl, nil
	}
	name := "template-" + v.rec.Digest
	// Only a template that is not stored, or unusable, is built: one the
	// store cannot return right now is waited for, since a build put back
	// over it would change the image other nodes' snapshots are deltas of.
	switch b, err := m.bundles.Get(ctx, name); {
	case err == nil:
		if v.tmpl, err = m.cfg.Runtime.LoadTemplate(b); err == nil {
			v.tmplSum = sha256Sum(b)
			return v.tmpl, nil
		}
		m.log.Warn("stored template unusable; rebuilding", "agent", v.rec.Agent, "err", err)
	case !errors.Is(err, store.ErrNotFound):
		return nil, &templateStoreError{op: "load", err: err}
	}
	tmpl, err := initLimited(ctx, m, v, func(ictx context.Context) (*isolate.Template, error) {
		return m.cfg.Runtime.Template(ictx, v.spec)
	})
	if err != nil {
		return nil, err
	}
	b := tmpl.Marshal(m.cfg.Runtime)
	if err := m.bundles.Put(ctx, name, b); err != nil {
		return nil, &templateStoreError{op: "store", err: err}
	}
	v.tmpl, v.tmplSum = tmpl, sha256Sum(b)
	return tmpl, nil
}

// ctxMutex is a lock whose waiters give up when their context ends: the
// activations of a version wait on it while one of them loads the template
// from a store that may take seconds to answer (a cluster member
// restarting), and a caller that has gone should not queue behind that.
// The zero value is unlocked.
type ctxMutex struct {
	once sync.Once
	ch   chan struct{} // one slot: full while held
}

func (l *ctxMutex) slot() chan struct{} {
	l.once.Do(func() { l.ch = make(chan struct{}, 1) })
	return l.ch
}

// lock takes the lock, or returns a problem when ctx ends first: a
// deadline is a 503 to retry, a cancellation a timeout. A free lock is
// taken even with ctx ended.
func (l *ctxMutex) lock(ctx context.Context) error {
	select {
	case l.slot() <- struct{}{}:
		return nil
	default:
	}
	select {
	case l.slot() <- struct{}{}:
		return nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			p := api.Errorf(api.KindUnavailable, "another activation of this agent version is still preparing it: retry in a second")
			p.RetryAfterSeconds = 1
			return fmt.Errorf("%w: %w", p, ctx.Err())
		}
		return fmt.Errorf("%w: %w", api.Errorf(api.KindTimeout,
			"the request ended while another activation of this agent version was preparing it"), ctx.Err())
	}
}

func (l *ctxMutex) unlock() {
	select {
	case <-l.slot():
	default:
		panic("session: unlock of an unlocked ctxMutex")
	}
}

// templateStoreError is a template the store could not return or keep: a
// fault of the store, never of the agent's code, so callers answer it as
// one (storeUnavailable: a 503 with Retry-After when the store cannot answer
// right now, else an internal error) rather than as a failed initialisation.
type templateStoreError struct {
	op  string // "load" or "store"
	err error
}

func (e *templateStoreError) Error() string { return e.op + " template: " + e.err.Error() }
func (e *templateStoreError) Unwrap() error { return e.err }

// sha256Sum is "sha256:" and the hex SHA-256 of b.
func sha256Sum(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func short(digest string) string {
	d := strings.TrimPrefix(digest, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

func (v *version) info() api.AgentVersion {
	return api.AgentVersion{Agent: v.rec.Agent, Digest: v.rec.Digest, Created: v.rec.Created,
		Size: v.rec.Size, Files: v.rec.Files, Runtime: string(v.rec.Manifest.Runtime), Entry: v.rec.Manifest.Entry}
}

// newVersion builds the isolate spec of a bundle.
func (m *Manager) newVersion(rec versionRecord, b *bundle.Bundle) (*version, error) {
	man := b.Manifest
	entry, ok := b.Files[man.Entry]
	if !ok {
		return nil, api.FieldErrorf(api.KindValidation, "entry", "entry file %q is not in the bundle", man.Entry)
	}
	v := &version{
		rec:  rec,
		idle: time.Duration(man.Limits.IdleSeconds) * time.Second,
		cpu:  time.Duration(man.Limits.CPUMs) * time.Millisecond,
		wall: time.Duration(man.Limits.WallMs) * time.Millisecond,
	}
	if man.Runtime == bundle.RuntimeWASM {
		if err := checkWasmMagic(entry); err != nil {
			return nil, api.FieldErrorf(api.KindValidation, "entry", "entry %q: %v", man.Entry, err)
		}
		v.wasm = &isolate.WasmSpec{Agent: man.Name, Module: entry, Env: man.Env, MemoryMiB: man.Limits.MemoryMiB}
		return v, nil
	}
	mods := map[string]string{}
	for p, data := range b.Files {
		if p != man.Entry && (strings.HasSuffix(p, ".js") || strings.HasSuffix(p, ".mjs")) {
			mods[p] = string(data)
			mods["./"+p] = string(data)
			if rel := relTo(man.Entry, p); rel != "" {
				mods[rel] = string(data)
			}
		}
	}
	v.srcMap = newSourceMap(b)
	v.spec = isolate.Spec{Agent: man.Name, Module: string(entry), ModuleName: man.Entry,
		Modules: mods, Env: man.Env, MemoryMiB: man.Limits.MemoryMiB}
	return v, nil
}

func relTo(entry, p string) string {
	dir := path.Dir(entry)
	if dir == "." {
		return "./" + p
	}
	if strings.HasPrefix(p, dir+"/") {
		return "./" + strings.TrimPrefix(p, dir+"/")
	}
	return ""
}

// loadVersion returns a version from the cache or the store.
func (m *Manager) loadVersion(ctx context.Context, agent, digest string) (*version, error) {
	m.vmu.Lock()
	v := m.vcache[digest]
	m.vmu.Unlock()
	if v != nil {
		return v, nil
	}
	if base, ok := previewBase(agent); ok {
		agent = base // a preview runs the agent's own versions
	}
	e, err := m.versions.Get(ctx, store.Key(agent, digest))
	if err != nil {
		return nil, fmt.Errorf("agent %s version %s: %w", agent, short(digest), err)
	}
	var rec versionRecord
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		return nil, fmt.Errorf("agent %s version record: %w", agent, err)
	}
	tgz, err := m.bundles.Get(ctx, digest)
	if err != nil {
		return nil, err
	}
	b, err := bundle.LoadTarGz(bytes.NewReader(tgz))
	if err != nil {
		return nil, fmt.Errorf("stored bundle %s: %w", short(digest), err)
	}
	if v, err = m.newVersion(rec, b); err != nil {
		return nil, err
	}
	m.vmu.Lock()
	if old := m.vcache[digest]; old != nil {
		v = old
	} else {
		m.vcache[digest] = v
	}
	m.vmu.Unlock()
	return v, nil
}

// currentVersion returns the agent's current version.
func (m *Manager) currentVersion(ctx context.Context, agent string) (*version, error) {
	ar, ok, err := m.agentRecord(ctx, agent)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, api.Errorf(api.KindNotFound, "agent %q is not deployed: run agentcloud deploy DIR", agent)
	}
	return m.loadVersion(ctx, agent, ar.Current)
}

// retireAgent closes live sessions of agent not on version digest.
func (m *Manager) retireAgent(agent, digest string) {
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
		if !s.gone && s.ver != nil && s.ver.rec.Digest != digest {
			if s.iso != nil {
				_ = s.iso.Close(context.Background())
				s.iso = nil
			}
			m.forget(s)
		}
		s.mu.Unlock()
	}
}

// Agents lists deployed agents.
func (m *Manager) Agents(ctx context.Context) ([]api.Agent, error) {
	keys, err := m.agents.Keys(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]api.Agent, 0, len(keys))
	for _, k := range keys {
		e, err := m.agents.Get(ctx, k)
		if err != nil {
			continue
		}
		var ar agentRecord
		if json.Unmarshal(e.Value, &ar) != nil || ar.Deleting {
			continue
		}
		if _, preview := previewBase(ar.Name); preview {
			continue
		}
		out = append(out, api.Agent{Name: ar.Name, Current: ar.Current, Created: ar.Created, Updated: ar.Updated})
	}
	return out, nil
}

// Agent returns one agent.
func (m *Manager) Agent(ctx context.Context, name string) (api.Agent, error) {
	v, err := m.currentVersion(ctx, name)
	if err != nil {
		return api.Agent{}, err
	}
	e, err := m.agents.Get(ctx, store.Key(name))
	if err != nil {
		return api.Agent{}, err
	}
	var ar agentRecord
	_ = json.Unmarshal(e.Value, &ar)
	man, _ := json.Marshal(v.rec.Manifest)
	return api.Agent{Name: ar.Name, Current: ar.Current, Created: ar.Created, Updated: ar.Updated, Manifest: man}, nil
}

// AgentInfo is what authorization and egress need to know about an agent.
type AgentInfo struct {
	Owner    string // SPIFFE ID of the deployer ("" if unknown)
	Manifest bundle.Manifest
}

// AgentInfo returns an agent's owner and current manifest; ok is false when
// the agent is not deployed.
func (m *Manager) AgentInfo(ctx context.Context, name string) (info AgentInfo, ok bool, err error) {
	ar, ok, err := m.agentRecord(ctx, name)
	if err == nil && !ok {
		// Never deployed, but previewed: its preview's owner owns the
		// name (the agent stays not found).
		if pr, pok, _ := m.agentRecord(ctx, PreviewName(name)); pok {
			return AgentInfo{Owner: pr.Owner}, false, nil
		}
	}
	if err != nil || !ok {
		return AgentInfo{}, false, err
	}
	v, err := m.loadVersion(ctx, name, ar.Current)
	if err != nil {
		return AgentInfo{Owner: ar.Owner}, true, err
	}
	return AgentInfo{Owner: ar.Owner, Manifest: v.rec.Manifest}, true, nil
}

// Versions lists an agent's versions, oldest first.
func (m *Manager) Versions(ctx context.Context, agent string) ([]api.AgentVersion, error) {
	keys, err := m.versions.Keys(ctx, store.Key(agent))
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, api.Errorf(api.KindNotFound, "agent %q is not deployed", agent)
	}
	out := make([]api.AgentVersion, 0, len(keys))
	for _, k := range keys {
		e, err := m.versions.Get(ctx, k)
		if err != nil {
			continue
		}
		var rec versionRecord
		if json.Unmarshal(e.Value, &rec) != nil {
			continue
		}
		out = append(out, (&version{rec: rec}).info())
	}
	sortVersions(out)
	return out, nil
}
