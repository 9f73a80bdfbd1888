package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/agentcloud/agentcloud/api"
	"github.com/agentcloud/agentcloud/internal/audit"
	"github.com/agentcloud/agentcloud/internal/egress/hostpattern"
	"github.com/agentcloud/agentcloud/internal/policy"
	"github.com/agentcloud/agentcloud/internal/store"
)

// Keys in the security bucket.
var (
	policyCurrentKey = store.Key("policy", "current")
	trustedHostsKey  = store.Key("trusted-hosts")
	privateHostsKey  = store.Key("private-hosts")
)

func policyVersionKey(v uint64) string  { return store.Key("policy-version", strconv.FormatUint(v, 10)) }
func secretOwnerKey(name string) string { return store.Key("secret-owner", name) }
func labelsKey(agent, sess string) string {
	return store.Key("labels", agent, sess)
}

// loadPolicies installs the stored user policy set, if any.
func (s *security) loadPolicies(ctx context.Context) error {
	ps, _, err := s.currentPolicies(ctx)
	if err != nil || ps.Version == 0 {
		return err
	}
	if err := s.engine.Apply(ctx, ps.Version, []byte(ps.Text)); err != nil {
		return fmt.Errorf("stored policies v%d no longer load: %w", ps.Version, err)
	}
	return nil
}

func (s *security) currentPolicies(ctx context.Context) (api.PolicySet, uint64, error) {
	e, err := s.kv.Get(ctx, policyCurrentKey)
	if errors.Is(err, store.ErrNotFound) {
		return api.PolicySet{}, 0, nil
	}
	if err != nil {
		return api.PolicySet{}, 0, fmt.Errorf("load policies: %w", err)
	}
	var ps api.PolicySet
	if err := json.Unmarshal(e.Value, &ps); err != nil {
		return api.PolicySet{}, 0, fmt.Errorf("load policies: %w", err)
	}
	return ps, e.Revision, nil
}

// applyPolicies validates text and makes it the next version, durably.
func (s *security) applyPolicies(ctx context.Context, text, by string) (api.PolicySet, error) {
	cur, rev, err := s.currentPolicies(ctx)
	if err != nil {
		return api.PolicySet{}, err
	}
	if err := policy.Validate([]byte(text)); err != nil {
		return api.PolicySet{}, policyProblem(err)
	}
	next := api.PolicySet{Version: cur.Version + 1, Text: text, Updated: s.now().UTC(), By: by}
	b, _ := json.Marshal(next)
	if _, err := s.kv.Put(ctx, policyVersionKey(next.Version), b); err != nil {
		return api.PolicySet{}, fmt.Errorf("store policies: %w", err)
	}
	if rev == 0 {
		_, err = s.kv.Create(ctx, policyCurrentKey, b)
	} else {
		_, err = s.kv.Update(ctx, policyCurrentKey, b, rev)
	}
	if errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrConflict) {
		return api.PolicySet{}, api.Errorf(api.KindConflict, "policies changed while applying; apply again")
	}
	if err != nil {
		return api.PolicySet{}, fmt.Errorf("store policies: %w", err)
	}
	if err := s.engine.Apply(ctx, next.Version, []byte(text)); err != nil {
		return api.PolicySet{}, policyProblem(err)
	}
	_ = s.audit.Record(ctx, api.AuditEvent{Type: audit.TypePolicy, Principal: by, Action: "policy.apply",
		Outcome: "applied", Detail: map[string]any{"version": next.Version}})
	return next, nil
}

// policyProblem turns a parse or validation error into a 422 naming the
// line and column.
func policyProblem(err error) error {
	var pe *policy.ParseError
	if errors.As(err, &pe) {
		return api.FieldErrorf(api.KindValidation, fmt.Sprintf("line %d column %d", pe.Line, pe.Column),
			"policy syntax error at line %d, column %d: %s", pe.Line, pe.Column, pe.Msg)
	}
	var ve *policy.ValidationError
	if errors.As(err, &ve) {
		return api.FieldErrorf(api.KindValidation, fmt.Sprintf("line %d column %d", ve.Line, ve.Column),
			"policy %s at line %d, column %d does not fit the schema: %s", ve.PolicyID, ve.Line, ve.Column, ve.Msg)
	}
	return api.Errorf(api.KindValidation, "invalid policies: %v", err)
}

// trustedTTL bounds how stale another node's trusted-host change may be here.
const trustedTTL = time.Second

// trustedCache is the last trusted-host list read from the store.
type trustedCache struct {
	hosts []string
	at    time.Time
}

// trustedHosts returns the host patterns marked trusted (cached for
// trustedTTL; changes made on this node apply at once).
func (s *security) trustedHosts(ctx context.Context) ([]string, error) {
	return s.hostList(ctx, trustedHostsKey, &s.trusted)
}

func (s *security) setTrustedHosts(ctx context.Context, hosts []string) error {
	return s.setHostList(ctx, trustedHostsKey, &s.trusted, hosts)
}

// privateHosts returns the host patterns whose data is private: reading a
// response from one raises a session's confidentiality to private.
func (s *security) privateHosts(ctx context.Context) ([]string, error) {
	return s.hostList(ctx, privateHostsKey, &s.private)
}

func (s *security) setPrivateHosts(ctx context.Context, hosts []string) error {
	return s.setHostList(ctx, privateHostsKey, &s.private, hosts)
}

// hostList reads one stored host-pattern list through its cache.
func (s *security) hostList(ctx context.Context, key string, cache *atomic.Pointer[trustedCache]) ([]string, error) {
	if c := cache.Load(); c != nil && s.now().Sub(c.at) < trustedTTL {
		return c.hosts, nil
	}
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		cache.Store(&trustedCache{hosts: []string{}, at: s.now()})
		return []string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	var th api.TrustedHosts
	if err := json.Unmarshal(e.Value, &th); err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	cache.Store(&trustedCache{hosts: th.Hosts, at: s.now()})
	return th.Hosts, nil
}

func (s *security) setHostList(ctx context.Context, key string, cache *atomic.Pointer[trustedCache], hosts []string) error {
	for i, h := range hosts {
		if _, err := hostpattern.ParseHost(strings.ToLower(h)); err != nil {
			return api.FieldErrorf(api.KindValidation, "hosts["+strconv.Itoa(i)+"]", "host pattern %q: %v", h, err)
		}
	}
	if hosts == nil {
		hosts = []string{}
	}
	b, _ := json.Marshal(api.TrustedHosts{Hosts: hosts})
	if _, err := s.kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	cache.Store(&trustedCache{hosts: hosts, at: s.now()})
	return nil
}

// labelStore keeps session labels durably in the security bucket. Labels
// move one way only: updates join with the stored value under
// compare-and-set, so concurrent updates on any node never undo each other;
// only reset (an admin) lowers them.
type labelStore struct {
	kv    store.KV
	audit *audit.Log
	now   func() time.Time
}

func (l *labelStore) load(ctx context.Context, agent, sess string) (policy.Labels, uint64, error) {
	e, err := l.kv.Get(ctx, labelsKey(agent, sess))
	if errors.Is(err, store.ErrNotFound) {
		return policy.Labels{}, 0, nil
	}
	if err != nil {
		return policy.Labels{}, 0, err
	}
	var al api.Labels
	if err := json.Unmarshal(e.Value, &al); err != nil {
		// Fail closed: an unreadable record is the most restrictive label.
		return policy.Labels{Integrity: policy.Untrusted, Confidentiality: policy.SecretData}, e.Revision, nil
	}
	i, err1 := policy.ParseIntegrity(al.Integrity)
	c, err2 := policy.ParseConfidentiality(al.Confidentiality)
	if err1 != nil || err2 != nil {
		return policy.Labels{Integrity: policy.Untrusted, Confidentiality: policy.SecretData}, e.Revision, nil
	}
	return policy.Labels{Integrity: i, Confidentiality: c}, e.Revision, nil
}

func (l *labelStore) get(ctx context.Context, agent, sess string) (policy.Labels, error) {
	lb, _, err := l.load(ctx, agent, sess)
	return lb, err
}

// join makes the session's labels at least as restrictive as with, and
// audits a change with reason.
func (l *labelStore) join(ctx context.Context, agent, sess string, with policy.Labels, reason string) (policy.Labels, error) {
	for range 20 {
		cur, rev, err := l.load(ctx, agent, sess)
		if err != nil {
			return cur, fmt.Errorf("labels of %s/%s: %w", agent, sess, err)
		}
		next := cur.Join(with)
		if next == cur {
			return cur, nil
		}
		b, _ := json.Marshal(api.Labels{Integrity: next.Integrity.String(), Confidentiality: next.Confidentiality.String(), Updated: l.now().UTC()})
		if rev == 0 {
			_, err = l.kv.Create(ctx, labelsKey(agent, sess), b)
		} else {
			_, err = l.kv.Update(ctx, labelsKey(agent, sess), b, rev)
		}
		if errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return cur, fmt.Errorf("labels of %s/%s: %w", agent, sess, err)
		}
		_ = l.audit.Record(ctx, api.AuditEvent{Type: audit.TypeLabel, Session: agent + "/" + sess, Outcome: next.String(),
			Reason: reason, Detail: map[string]any{"from": cur.String(), "to": next.String()}})
		return next, nil
	}
	return policy.Labels{}, fmt.Errorf("labels of %s/%s: too much contention", agent, sess)
}

// reset returns a session to trusted/public (an administrator's decision).
func (l *labelStore) reset(ctx context.Context, agent, sess, by string) error {
	cur, _, err := l.load(ctx, agent, sess)
	if err != nil {
		return err
	}
	if err := l.kv.Delete(ctx, labelsKey(agent, sess)); err != nil {
		return fmt.Errorf("reset labels of %s/%s: %w", agent, sess, err)
	}
	_ = l.audit.Record(ctx, api.AuditEvent{Type: audit.TypeLabel, Principal: by, Session: agent + "/" + sess,
		Outcome: policy.Labels{}.String(), Reason: "reset by administrator", Detail: map[string]any{"from": cur.String()}})
	return nil
}
